"""The folder the device pulls into."""

from datetime import datetime
from pathlib import Path

import dagster as dg

from aquatech_assets import settings
from aquatech_assets.pulls import PullListing, PullScan, list_pulls, scan_pulls


class PullStore(dg.ConfigurableResource):
    """Pull files under a folder, `<root>/YYYY-MM-DD/YYYYMMDD-HHMMSS.json`.

    `root` defaults to AQUATECH_RAW_DATA, read when a run uses the store.
    """

    root: str | None = None

    def resolved_root(self) -> Path:
        location = self.root or settings.raw_data_location()
        if location.startswith("gs://"):
            raise settings.SettingsError(
                f"AQUATECH_RAW_DATA={location} is a GCS bucket; reading pulls from GCS is not "
                "built yet. Copy the pulls to a local folder and point AQUATECH_RAW_DATA at it."
            )
        return Path(location).expanduser().resolve()

    def pulls_between(self, start: datetime, end: datetime) -> PullListing:
        return list_pulls(self.resolved_root(), start, end)

    def scan(self) -> PullScan:
        return scan_pulls(self.resolved_root())
