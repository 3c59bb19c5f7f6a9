"""Where pull files live and which pull hour each belongs to.

A pull's file name is its pull time in UTC (`YYYYMMDD-HHMMSS.json`) inside a folder named for its
date. The name, not the file's modification time, decides the hour: files are often copied in
late, and the name is the only time the device itself wrote down.

The rules here work on what a store lists (`StoredFile`: a path relative to the store's root,
its size and a version that changes when the content does), so a local folder and a GCS bucket
are read by the same rules.
"""

import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

PULL_NAME = re.compile(r"(\d{8})-(\d{6})\.json")


HOUR_KEY = "%Y-%m-%d-%H:00"


@dataclass(frozen=True)
class StoredFile:
    """A file (or a folder, `relative` ending in "/") as a store lists it."""

    relative: str
    size: int = 0
    version: str = ""


@dataclass(frozen=True)
class PullFile:
    path: Path
    source_file: str
    pulled_at: datetime


@dataclass(frozen=True)
class SkippedPath:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


@dataclass(frozen=True)
class PullListing:
    files: list[PullFile]
    skipped: list[SkippedPath]


@dataclass(frozen=True)
class PullScan:
    hours: list[datetime]
    skipped: list[SkippedPath]
    fingerprints: dict[str, str] = field(default_factory=dict)


def pulled_at_from_name(name: str) -> datetime | None:
    """The UTC pull time a file name stands for, or None when the name is not a pull stamp."""
    match = PULL_NAME.fullmatch(name)
    if match is None:
        return None
    try:
        stamp = datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC)


def classify(entry: StoredFile) -> datetime | SkippedPath:
    """The pull time of a stored file, or why a partition run will not read it."""
    parts = entry.relative.rstrip("/").split("/")
    is_folder = entry.relative.endswith("/")
    folder_date = _folder_date(parts[0]) if len(parts) > 1 or is_folder else None
    if len(parts) == 1 and not is_folder:
        return SkippedPath(entry.relative, "not in a date folder")
    if folder_date is None:
        return SkippedPath(parts[0] + "/", "not a YYYY-MM-DD folder")
    if len(parts) > 2 or (is_folder and len(parts) == 2):
        return SkippedPath("/".join(parts[:2]) + "/", "a folder inside a date folder")
    pulled_at = pulled_at_from_name(parts[1])
    if pulled_at is None:
        return SkippedPath(entry.relative, "name is not a pull stamp YYYYMMDD-HHMMSS.json")
    if pulled_at.date() != folder_date:
        return SkippedPath(entry.relative, "stamped for another day than its folder")
    return pulled_at


def pulls_in_window(
    entries: Iterable[StoredFile], start: datetime, end: datetime
) -> tuple[list[tuple[StoredFile, datetime]], list[SkippedPath]]:
    """The entries stamped in [start, end), by pull time, and what was skipped among them."""
    found, skipped = [], []
    for entry in entries:
        kind = classify(entry)
        if isinstance(kind, SkippedPath):
            _add_once(skipped, kind)
        elif start <= kind < end:
            found.append((entry, kind))
    found.sort(key=lambda pair: (pair[1], pair[0].relative))
    return found, skipped


def scan(entries: Iterable[StoredFile]) -> PullScan:
    """Every pull hour with a file a partition run will read, with a fingerprint of its files.

    A fingerprint changes when a file of the hour is added, removed, or rewritten (its size or
    version changes), so comparing fingerprints tells which hours need to run again.
    """
    by_hour: dict[str, list[str]] = defaultdict(list)
    skipped: list[SkippedPath] = []
    for entry in entries:
        kind = classify(entry)
        if isinstance(kind, SkippedPath):
            _add_once(skipped, kind)
        else:
            by_hour[kind.strftime(HOUR_KEY)].append(
                f"{entry.relative}|{entry.size}|{entry.version}"
            )
    fingerprints = {
        hour: hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()[:16]
        for hour, lines in by_hour.items()
    }
    hours = sorted(datetime.strptime(hour, HOUR_KEY).replace(tzinfo=UTC) for hour in by_hour)
    return PullScan(hours=hours, skipped=skipped, fingerprints=fingerprints)


def date_folders(start: datetime, end: datetime) -> Iterator[str]:
    """The names of the date folders a window [start, end) overlaps."""
    day = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    while day <= last:
        yield day.isoformat()
        day += timedelta(days=1)


def local_entries(root: Path, folders: Iterable[str] | None = None) -> Iterator[StoredFile]:
    """What a local folder holds, two levels deep; only the named date folders when given.

    The version is the file's change time (ctime), which a copy that keeps an old modification
    time still moves.
    """
    if folders is None:
        if not root.is_dir():
            return
        tops = sorted(os.scandir(root), key=lambda entry: entry.name)
        for top in tops:
            if top.is_dir() and _folder_date(top.name) is not None:
                yield from _folder_entries(root, top.name)
            elif top.is_dir():
                yield StoredFile(top.name + "/")
            else:
                yield _stored(top.name, top)
        return
    for name in folders:
        if (root / name).is_dir():
            yield from _folder_entries(root, name)


def list_pulls(root: Path, start: datetime, end: datetime) -> PullListing:
    """The local pull files stamped in [start, end), listing only the window's date folders."""
    found, skipped = pulls_in_window(local_entries(root, date_folders(start, end)), start, end)
    files = [
        PullFile(root / entry.relative, entry.relative, pulled_at) for entry, pulled_at in found
    ]
    return PullListing(files=files, skipped=skipped)


def scan_pulls(root: Path) -> PullScan:
    return scan(local_entries(root))


def _folder_entries(root: Path, name: str) -> Iterator[StoredFile]:
    for child in sorted(os.scandir(root / name), key=lambda entry: entry.name):
        relative = f"{name}/{child.name}"
        yield StoredFile(relative + "/") if child.is_dir() else _stored(relative, child)


def _stored(relative: str, entry: os.DirEntry) -> StoredFile:
    stat = entry.stat()
    return StoredFile(relative, stat.st_size, str(stat.st_ctime_ns))


def _add_once(skipped: list[SkippedPath], path: SkippedPath) -> None:
    if not skipped or skipped[-1] != path:
        skipped.append(path)


def _folder_date(name: str) -> date | None:
    try:
        return date.fromisoformat(name) if len(name) == 10 else None
    except ValueError:
        return None
