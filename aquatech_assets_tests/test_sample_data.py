"""The sample pulls hold what the summary claims and carry the quirks of real device pulls."""

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aquatech_assets.sample_data import SampleSummary, write_sample_pulls

START = date(2022, 10, 1)
DAYS = 2
PULL_NAME = re.compile(r"^(\d{8})-(\d{6})\.json$")
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
RECORD_KEYS = [
    "distinct_id",
    "elements",
    "event",
    "timestamp",
    "uuid",
    "$geoip_city_name",
    "$geoip_country_name",
    "$geoip_country_code",
    "$geoip_continent_name",
    "$geoip_continent_code",
    "$geoip_latitude",
    "$geoip_longitude",
    "$geoip_time_zone",
    "$geoip_subdivision_1_code",
    "$geoip_subdivision_1_name",
    "properties",
]


@dataclass(frozen=True)
class Pull:
    path: Path
    pulled_at: datetime
    records: list[dict[str, Any]]


@dataclass(frozen=True)
class Sample:
    root: Path
    summary: SampleSummary
    pulls: list[Pull]

    @property
    def records(self) -> list[tuple[Pull, dict[str, Any]]]:
        return [(pull, record) for pull in self.pulls for record in pull.records]


def read_pulls(root: Path) -> list[Pull]:
    pulls = []
    for path in sorted((root / "raw_data").glob("*/*")):
        match = PULL_NAME.match(path.name)
        assert match, f"not a pull stamp: {path.name}"
        pulled_at = datetime.strptime(match[1] + match[2], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        records = json.loads(path.read_text(encoding="utf-8"))
        pulls.append(Pull(path=path, pulled_at=pulled_at, records=records))
    return sorted(pulls, key=lambda pull: pull.pulled_at)


def event_time(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))


def file_bytes(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*.json"))
    }


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    root = tmp_path_factory.mktemp("sample")
    summary = write_sample_pulls(root, START, DAYS, users=1500, events_per_day=5000, seed=7)
    return Sample(root=root, summary=summary, pulls=read_pulls(root))


def test_summary_counts_what_the_files_hold(sample: Sample) -> None:
    uuids = [record["uuid"] for _, record in sample.records]
    late = sum(
        1 for pull, record in sample.records if event_time(record).date() < pull.pulled_at.date()
    )

    assert sample.summary.files == len(sample.pulls)
    assert sample.summary.records == len(uuids)
    assert sample.summary.events == len(set(uuids)) == DAYS * 5000
    assert sample.summary.redelivered == len(uuids) - len(set(uuids)) > 0
    assert sample.summary.late_records == late > 0


def test_files_are_named_by_pull_stamp_in_the_folder_of_their_date(sample: Sample) -> None:
    stamps = [pull.pulled_at for pull in sample.pulls]

    assert len(set(stamps)) == len(stamps)
    for pull in sample.pulls:
        assert pull.path.parent.name == pull.pulled_at.date().isoformat()
        assert pull.path.parent.parent == sample.root / "raw_data"
        assert START <= pull.pulled_at.date() < START + timedelta(days=DAYS)
    assert any(stamp.second not in (0, 30) for stamp in stamps)


def test_every_hour_has_about_a_dozen_pulls(sample: Sample) -> None:
    per_hour = Counter(pull.pulled_at.replace(minute=0, second=0) for pull in sample.pulls)
    first_hour = datetime(START.year, START.month, START.day, tzinfo=UTC)
    expected_hours = {first_hour + timedelta(hours=hour) for hour in range(DAYS * 24)}

    assert set(per_hour) == expected_hours
    assert all(10 <= count <= 14 for count in per_hour.values())
    assert 11.5 <= len(sample.pulls) / len(expected_hours) <= 12.5
    assert {hour.hour for hour in per_hour} == set(range(24))


def test_late_records_are_a_few_percent_and_some_weeks_late(sample: Sample) -> None:
    lateness = [pull.pulled_at - event_time(record) for pull, record in sample.records]

    assert 0.015 <= sample.summary.late_records / sample.summary.records <= 0.05
    assert max(lateness) > timedelta(days=7)
    assert max(lateness) <= timedelta(days=22)
    assert min(lateness) > timedelta(0)
    assert any(event_time(record).date() < START for _, record in sample.records)


def test_on_time_events_are_in_the_first_pull_after_them(sample: Sample) -> None:
    seen: set[str] = set()
    previous = datetime(START.year, START.month, START.day, tzinfo=UTC)
    on_time = 0
    for pull in sample.pulls:
        for record in pull.records:
            moment = event_time(record)
            redelivery = record["uuid"] in seen
            seen.add(record["uuid"])
            if previous < moment < pull.pulled_at:
                on_time += 1
            else:
                assert redelivery or pull.pulled_at - moment >= timedelta(hours=1), record
        previous = pull.pulled_at

    assert on_time / sample.summary.records > 0.95


def test_redeliveries_repeat_the_identical_record_within_a_day(sample: Sample) -> None:
    first_seen: dict[str, tuple[Pull, int, dict[str, Any]]] = {}
    same_file = later_file = 0
    for pull in sample.pulls:
        for index, record in enumerate(pull.records):
            if record["uuid"] not in first_seen:
                first_seen[record["uuid"]] = (pull, index, record)
                continue
            first_pull, first_index, first_record = first_seen[record["uuid"]]
            assert record == first_record
            if first_pull is pull:
                assert index > first_index
                same_file += 1
            else:
                assert timedelta(0) < pull.pulled_at - first_pull.pulled_at <= timedelta(days=1)
                later_file += 1

    assert same_file > 0
    assert later_file > 0


def test_distinct_ids_are_numeric_and_sometimes_json_numbers(sample: Sample) -> None:
    ids = [record["distinct_id"] for _, record in sample.records]
    numbers = [value for value in ids if isinstance(value, int)]

    assert all(isinstance(value, int) or value.isdigit() for value in ids)
    assert not any(isinstance(value, bool | float) for value in ids)
    assert 0.01 <= len(numbers) / len(ids) <= 0.04
    as_text = {value for value in ids if isinstance(value, str)}
    assert sum(str(number) in as_text for number in numbers) > len(numbers) / 2


def test_each_user_has_one_home_city(sample: Sample) -> None:
    cities: defaultdict[str, set[str]] = defaultdict(set)
    for _, record in sample.records:
        cities[str(record["distinct_id"])].add(record["$geoip_city_name"])

    assert all(len(names) == 1 for names in cities.values())
    assert len({name for names in cities.values() for name in names}) >= 12


def test_records_look_like_a_real_export(sample: Sample) -> None:
    records = [record for _, record in sample.records]
    formats = Counter(
        "micro" if ts.endswith("+00:00") else "milli-z" if "." in ts else "seconds-z"
        for ts in (record["timestamp"] for record in records)
    )

    assert all(list(record) == RECORD_KEYS for record in records)
    assert formats["micro"] > formats["milli-z"] > 0
    assert formats["seconds-z"] > 0
    assert all(UUID4.fullmatch(record["uuid"]) for record in records)
    assert {record["event"] for record in records} >= {
        "$identify",
        "$pageview",
        "$autocapture",
        "$pageleave",
        "lesson_booked",
        "pool_checkin",
        "swim_session_logged",
        "membership_renewed",
    }
    for record in records:
        assert isinstance(record["$geoip_latitude"], float)
        assert isinstance(record["$geoip_longitude"], float)
        assert set(record["properties"]) == {"$os", "$browser", "$lib"}
        if record["event"] != "$autocapture":
            assert record["elements"] == []
            continue
        assert 1 <= len(record["elements"]) <= 3
        clicked = record["elements"][0]
        assert clicked["$el_text"]
        assert clicked["classes"] == clicked["attr__class"].split()
        assert 1 <= clicked["nth_of_type"] <= clicked["nth_child"]


def test_files_are_utf8_json_with_non_ascii_kept(sample: Sample) -> None:
    raw = b"".join(pull.path.read_bytes() for pull in sample.pulls)

    assert "São Paulo".encode() in raw
    assert b"\\u00e3" not in raw


def test_defaults_give_a_daily_active_user_count_in_the_thousands(tmp_path: Path) -> None:
    write_sample_pulls(tmp_path, START, 1)
    per_user = Counter(
        str(record["distinct_id"])
        for pull in read_pulls(tmp_path)
        for record in pull.records
        if event_time(record).date() == START
    )

    assert 1000 <= len(per_user) < 5000
    assert max(per_user.values()) > 10 * (sum(per_user.values()) / len(per_user))


def test_same_seed_writes_identical_bytes(tmp_path: Path) -> None:
    first = write_sample_pulls(tmp_path / "a", START, 1, users=300, events_per_day=2000, seed=3)
    second = write_sample_pulls(tmp_path / "b", START, 1, users=300, events_per_day=2000, seed=3)

    assert first == second
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")


def test_different_seeds_write_different_data(tmp_path: Path) -> None:
    write_sample_pulls(tmp_path / "a", START, 1, users=300, events_per_day=2000, seed=1)
    write_sample_pulls(tmp_path / "b", START, 1, users=300, events_per_day=2000, seed=2)
    uuids_a = {r["uuid"] for pull in read_pulls(tmp_path / "a") for r in pull.records}
    uuids_b = {r["uuid"] for pull in read_pulls(tmp_path / "b") for r in pull.records}

    assert file_bytes(tmp_path / "a").keys() != file_bytes(tmp_path / "b").keys()
    assert not uuids_a & uuids_b


@pytest.mark.parametrize(
    ("days", "users", "events_per_day"), [(0, 10, 10), (1, 0, 10), (1, 10, -1)]
)
def test_rejects_impossible_arguments(
    tmp_path: Path, days: int, users: int, events_per_day: int
) -> None:
    with pytest.raises(ValueError):
        write_sample_pulls(tmp_path, START, days, users=users, events_per_day=events_per_day)
