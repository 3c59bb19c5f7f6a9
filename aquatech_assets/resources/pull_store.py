"""The place the device pulls into: a local folder or a GCS bucket, read by the same rules."""

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import dagster as dg

from aquatech_assets import settings
from aquatech_assets.pulls import (
    PullFile,
    PullListing,
    PullScan,
    StoredFile,
    date_folders,
    list_pulls,
    local_entries,
    pulls_in_window,
    scan,
)

GCS_LISTING_FIELDS = "items(name,size,generation),nextPageToken"


class PullStore(dg.ConfigurableResource):
    """Pull files under `<root>/YYYY-MM-DD/YYYYMMDD-HHMMSS.json`; `root` may be `gs://bucket/p`.

    `root` defaults to AQUATECH_RAW_DATA, read when a run or a sensor tick uses the store.
    GCS is reached with google-cloud-storage and the usual Google credentials; when
    STORAGE_EMULATOR_HOST is set (tests), anonymously at that emulator.
    """

    root: str | None = None

    def location(self) -> str:
        return self.root or settings.raw_data_location()

    def is_gcs(self) -> bool:
        return self.location().startswith("gs://")

    def resolved_root(self) -> Path:
        if self.is_gcs():
            raise settings.SettingsError(f"{self.location()} is a bucket, not a local folder")
        return Path(self.location()).expanduser().resolve()

    def exists(self) -> bool:
        if self.is_gcs():
            bucket, _ = _split_gcs(self.location())
            return _gcs_client().bucket(bucket).exists()
        return self.resolved_root().is_dir()

    def entries(self, folders: Iterable[str] | None = None) -> Iterator[StoredFile]:
        """Everything stored (or only the named date folders), as the pull rules see it."""
        if not self.is_gcs():
            yield from local_entries(self.resolved_root(), folders)
            return
        bucket, prefix = _split_gcs(self.location())
        client = _gcs_client()
        prefixes = [prefix] if folders is None else [f"{prefix}{name}/" for name in folders]
        for listed in prefixes:
            for blob in client.list_blobs(bucket, prefix=listed, fields=GCS_LISTING_FIELDS):
                yield StoredFile(blob.name[len(prefix) :], blob.size or 0, str(blob.generation))

    def scan(self) -> PullScan:
        return scan(self.entries())

    @contextmanager
    def fetch(self, start: datetime, end: datetime) -> Iterator[PullListing]:
        """The pulls stamped in [start, end) as local files, downloaded first from a bucket."""
        if not self.is_gcs():
            yield list_pulls(self.resolved_root(), start, end)
            return
        found, skipped = pulls_in_window(self.entries(date_folders(start, end)), start, end)
        bucket_name, prefix = _split_gcs(self.location())
        bucket = _gcs_client().bucket(bucket_name)
        with TemporaryDirectory(prefix="aquatech-pulls-") as folder:
            files = []
            for entry, pulled_at in found:
                path = Path(folder) / entry.relative
                path.parent.mkdir(parents=True, exist_ok=True)
                bucket.blob(prefix + entry.relative).download_to_filename(str(path))
                files.append(PullFile(path, entry.relative, pulled_at))
            yield PullListing(files, skipped)


def _split_gcs(location: str) -> tuple[str, str]:
    """`gs://bucket/some/prefix` to ("bucket", "some/prefix/"); the prefix may be empty."""
    bucket, _, prefix = location.removeprefix("gs://").partition("/")
    if not bucket:
        raise settings.SettingsError(f"{location!r} names no bucket: use gs://bucket/prefix")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def _gcs_client():
    # Imported here: a local folder, the default, should not pay for loading the GCS client.
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return storage.Client(project="aquatech-emulator", credentials=AnonymousCredentials())
    return storage.Client()
