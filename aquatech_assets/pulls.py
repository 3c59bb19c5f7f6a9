"""Where pull files live and which pull hour each belongs to.

A pull's file name is its pull time in UTC (`YYYYMMDD-HHMMSS.json`) inside a folder named for its
date. The name, not the file's modification time, decides the hour: files are often copied in
late, and the name is the only time the device itself wrote down.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

PULL_NAME = re.compile(r"(\d{8})-(\d{6})\.json")


@dataclass(frozen=True)
class PullFile:
    path: Path
    source_file: str
    pulled_at: datetime


@dataclass(frozen=True)
class PullListing:
    files: list[PullFile]
    misnamed: list[str]


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
    """The pull files stamped in [start, end), sorted by pull time, and the misnamed ones seen.

    Only the date folders that the window overlaps are listed, so the cost of a partition does not
    grow with the history kept in the folder.
    """
    files: list[PullFile] = []
    misnamed: list[str] = []
    for folder in _date_folders(root, start, end):
        for path in sorted(folder.iterdir()):
            if not path.is_file():
                continue
            relative = path.relative_to(root).as_posix()
            pulled_at = pulled_at_from_name(path.name)
            if pulled_at is None:
                misnamed.append(relative)
            elif start <= pulled_at < end:
                files.append(PullFile(path=path, source_file=relative, pulled_at=pulled_at))
    files.sort(key=lambda pull: (pull.pulled_at, pull.source_file))
    return PullListing(files=files, misnamed=misnamed)


def pull_hours(root: Path) -> list[datetime]:
    """Every pull hour that has at least one correctly named file, oldest first."""
    hours = set()
    if root.is_dir():
        for folder in root.iterdir():
            if folder.is_dir():
                for path in folder.iterdir():
                    pulled_at = pulled_at_from_name(path.name)
                    if pulled_at is not None and path.is_file():
                        hours.add(pulled_at.replace(minute=0, second=0))
    return sorted(hours)


def _date_folders(root: Path, start: datetime, end: datetime) -> Iterator[Path]:
    day = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    while day <= last:
        folder = root / day.isoformat()
        if folder.is_dir():
            yield folder
        day += timedelta(days=1)
