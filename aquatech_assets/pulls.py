"""Where pull files live and which pull hour each belongs to.

A pull's file name is its pull time in UTC (`YYYYMMDD-HHMMSS.json`) inside a folder named for its
date. The name, not the file's modification time, decides the hour: files are often copied in
late, and the name is the only time the device itself wrote down.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

PULL_NAME = re.compile(r"(\d{8})-(\d{6})\.json")


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


def list_pulls(root: Path, start: datetime, end: datetime) -> PullListing:
    """The pull files stamped in [start, end), sorted by pull time, and what was skipped.

    Only the date folders that the window overlaps are listed, so the cost of a partition does not
    grow with the history kept in the folder.
    """
    files: list[PullFile] = []
    skipped: list[SkippedPath] = []
    for folder in _date_folders(root, start, end):
        for path in sorted(folder.iterdir()):
            pulled_at = _pull_time(root, folder, path, skipped)
            if pulled_at is not None and start <= pulled_at < end:
                relative = path.relative_to(root).as_posix()
                files.append(PullFile(path=path, source_file=relative, pulled_at=pulled_at))
    files.sort(key=lambda pull: (pull.pulled_at, pull.source_file))
    return PullListing(files=files, skipped=skipped)


def scan_pulls(root: Path) -> PullScan:
    """Every pull hour that has a file a partition run will read, and everything else found.

    The same rule as `list_pulls` decides, so an hour found here is an hour whose run reads it.
    """
    hours: set[datetime] = set()
    skipped: list[SkippedPath] = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        relative = folder.relative_to(root).as_posix()
        if not folder.is_dir():
            skipped.append(SkippedPath(relative, "not in a date folder"))
        elif _folder_date(folder) is None:
            skipped.append(SkippedPath(relative + "/", "not a YYYY-MM-DD folder"))
        else:
            for path in sorted(folder.iterdir()):
                pulled_at = _pull_time(root, folder, path, skipped)
                if pulled_at is not None:
                    hours.add(pulled_at.replace(minute=0, second=0))
    return PullScan(hours=sorted(hours), skipped=skipped)


def _pull_time(root: Path, folder: Path, path: Path, skipped: list[SkippedPath]) -> datetime | None:
    """The pull time of a file of a date folder, or None with the reason it is skipped."""
    relative = path.relative_to(root).as_posix()
    pulled_at = pulled_at_from_name(path.name)
    if path.is_dir():
        skipped.append(SkippedPath(relative + "/", "a folder inside a date folder"))
    elif pulled_at is None:
        skipped.append(SkippedPath(relative, "name is not a pull stamp YYYYMMDD-HHMMSS.json"))
    elif pulled_at.date() != _folder_date(folder):
        skipped.append(SkippedPath(relative, "stamped for another day than its folder"))
    else:
        return pulled_at
    return None


def _folder_date(folder: Path) -> date | None:
    try:
        return date.fromisoformat(folder.name) if len(folder.name) == 10 else None
    except ValueError:
        return None


def _date_folders(root: Path, start: datetime, end: datetime) -> Iterator[Path]:
    day = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    while day <= last:
        folder = root / day.isoformat()
        if folder.is_dir():
            yield folder
        day += timedelta(days=1)
