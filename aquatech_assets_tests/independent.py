"""An independent count of the answers, with the standard library only, for well-formed pulls.

It shares no code with the pipeline: files are read with `json`, times with `datetime`, and the
first delivery of a uuid is the one in the earliest-named file, earliest in that file.
"""

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path


@dataclass
class Answers:
    dau: dict[date, int]
    mau: dict[date, int]
    activity: dict[tuple[date, str], tuple[int, int]]
    events: int


def count(raw_data: Path) -> Answers:
    first: dict[str, dict] = {}
    for path in sorted(raw_data.glob("*/*.json"), key=lambda path: path.name):
        for record in json.loads(path.read_text(encoding="utf-8")):
            first.setdefault(record["uuid"], record)
    day_users: dict[date, set] = defaultdict(set)
    month_users: dict[date, set] = defaultdict(set)
    activity_events: dict[tuple[date, str], set] = defaultdict(set)
    activity_users: dict[tuple[date, str], set] = defaultdict(set)
    for uuid, record in first.items():
        moment = datetime.fromisoformat(record["timestamp"])
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        day = moment.astimezone(UTC).date()
        user = str(record["distinct_id"])
        day_users[day].add(user)
        month_users[day.replace(day=1)].add(user)
        activity_events[(day, record["event"])].add(uuid)
        activity_users[(day, record["event"])].add(user)
    return Answers(
        dau={day: len(users) for day, users in day_users.items()},
        mau={month: len(users) for month, users in month_users.items()},
        activity={
            key: (len(activity_events[key]), len(activity_users[key])) for key in activity_events
        },
        events=len(first),
    )
