"""Deterministic sample pulls of PostHog-style app events for local runs and tests.

A device pulls newly ingested events every few minutes and stores each pull as
``raw_data/YYYY-MM-DD/YYYYMMDD-HHMMSS.json`` (UTC pull date and pull stamp). The generator
reproduces the awkward parts of real exports - late arrivals that cross dates, redeliveries,
ids written as numbers, mixed timestamp encodings - so downstream assets meet realistic input
while every byte stays reproducible from the seed alone.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["SampleSummary", "write_sample_pulls"]

_EPOCH = datetime(1970, 1, 1)
_EPOCH_DATE = date(1970, 1, 1)
_SECOND_US = 1_000_000
_HOUR_S = 3_600
_DAY_S = 86_400
_DAY_US = _DAY_S * _SECOND_US

_SLOT_S = 300
_SLOTS_PER_HOUR = _HOUR_S // _SLOT_S
_MISSED_SLOTS = ((0, 1, 2), (70, 22, 8))
_DOUBLED_SLOTS = ((0, 1, 2), (80, 16, 4))

_LATE_SHARE = 0.03
_LOG_MIN_DELAY_S = math.log(_HOUR_S)
_LOG_MAX_DELAY_S = math.log(21 * _DAY_S)
_REDELIVERY_SHARE = 0.01
_SAME_FILE_REDELIVERY_SHARE = 0.5
_NUMERIC_ID_SHARE = 0.02
_MS_Z_TIMESTAMP_SHARE = 0.10
_SECONDS_Z_TIMESTAMP_SHARE = 0.05
_USER_WEIGHT_SIGMA = 1.2

_EVENTS = (
    "$pageview",
    "$autocapture",
    "$pageleave",
    "$identify",
    "pool_checkin",
    "swim_session_logged",
    "lesson_booked",
    "membership_renewed",
)
_EVENT_CUM_WEIGHTS = tuple(itertools.accumulate((34, 24, 14, 4, 9, 8, 5, 2)))

# Relative activity by local hour of day: early-morning and after-work swims dominate.
_LOCAL_HOUR_ACTIVITY = (
    0.15, 0.08, 0.05, 0.04, 0.06, 0.25, 0.70, 1.00, 0.90, 0.70, 0.60, 0.60,
    0.70, 0.60, 0.60, 0.70, 0.90, 1.00, 1.00, 0.90, 0.70, 0.50, 0.35, 0.25,
)  # fmt: skip


class _City(NamedTuple):
    geo: dict[str, Any]
    weight: float
    utc_offset_h: int


def _city(
    name: str,
    country: str,
    country_code: str,
    continent: str,
    continent_code: str,
    latitude: float,
    longitude: float,
    time_zone: str,
    subdivision_code: str,
    subdivision_name: str,
    *,
    weight: float,
    utc_offset_h: int,
) -> _City:
    """Keep the geoip key order of a real export in one place."""
    geo = {
        "$geoip_city_name": name,
        "$geoip_country_name": country,
        "$geoip_country_code": country_code,
        "$geoip_continent_name": continent,
        "$geoip_continent_code": continent_code,
        "$geoip_latitude": latitude,
        "$geoip_longitude": longitude,
        "$geoip_time_zone": time_zone,
        "$geoip_subdivision_1_code": subdivision_code,
        "$geoip_subdivision_1_name": subdivision_name,
    }
    return _City(geo, weight, utc_offset_h)


# UTC offsets are October approximations; they only shape the diurnal curve.
_CITIES = (
    _city("Jakarta", "Indonesia", "ID", "Asia", "AS", -6.2146, 106.8451, "Asia/Jakarta",
          "JK", "Jakarta", weight=30, utc_offset_h=7),
    _city("Surabaya", "Indonesia", "ID", "Asia", "AS", -7.2492, 112.7508, "Asia/Jakarta",
          "JI", "East Java", weight=12, utc_offset_h=7),
    _city("Bandung", "Indonesia", "ID", "Asia", "AS", -6.9039, 107.6186, "Asia/Jakarta",
          "JB", "West Java", weight=10, utc_offset_h=7),
    _city("Denpasar", "Indonesia", "ID", "Asia", "AS", -8.65, 115.2167, "Asia/Makassar",
          "BA", "Bali", weight=5, utc_offset_h=8),
    _city("Singapore", "Singapore", "SG", "Asia", "AS", 1.2897, 103.8501, "Asia/Singapore",
          "01", "Central Singapore", weight=8, utc_offset_h=8),
    _city("Kuala Lumpur", "Malaysia", "MY", "Asia", "AS", 3.1412, 101.6865,
          "Asia/Kuala_Lumpur", "14", "Kuala Lumpur", weight=4, utc_offset_h=8),
    _city("Tokyo", "Japan", "JP", "Asia", "AS", 35.6893, 139.6899, "Asia/Tokyo",
          "13", "Tokyo", weight=4, utc_offset_h=9),
    _city("Sydney", "Australia", "AU", "Oceania", "OC", -33.8715, 151.2006,
          "Australia/Sydney", "NSW", "New South Wales", weight=6, utc_offset_h=11),
    _city("Melbourne", "Australia", "AU", "Oceania", "OC", -37.8159, 144.9669,
          "Australia/Melbourne", "VIC", "Victoria", weight=4, utc_offset_h=11),
    _city("London", "United Kingdom", "GB", "Europe", "EU", 51.5088, -0.126, "Europe/London",
          "ENG", "England", weight=4, utc_offset_h=1),
    _city("Berlin", "Germany", "DE", "Europe", "EU", 52.5196, 13.4069, "Europe/Berlin",
          "BE", "Land Berlin", weight=2, utc_offset_h=2),
    _city("Düsseldorf", "Germany", "DE", "Europe", "EU", 51.2217, 6.7762, "Europe/Berlin",
          "NW", "North Rhine-Westphalia", weight=1, utc_offset_h=2),
    _city("São Paulo", "Brazil", "BR", "South America", "SA", -23.5475, -46.6361,
          "America/Sao_Paulo", "SP", "São Paulo", weight=3, utc_offset_h=-3),
    _city("Bogotá", "Colombia", "CO", "South America", "SA", 4.6097, -74.0818,
          "America/Bogota", "DC", "Bogotá D.C.", weight=1, utc_offset_h=-5),
    _city("New York", "United States", "US", "North America", "NA", 40.7143, -74.006,
          "America/New_York", "NY", "New York", weight=3, utc_offset_h=-4),
    _city("Montréal", "Canada", "CA", "North America", "NA", 45.5088, -73.5878,
          "America/Toronto", "QC", "Quebec", weight=1, utc_offset_h=-4),
    _city("San Francisco", "United States", "US", "North America", "NA", 37.7749, -122.4194,
          "America/Los_Angeles", "CA", "California", weight=2, utc_offset_h=-7),
)  # fmt: skip
_CITY_CUM_WEIGHTS = tuple(itertools.accumulate(city.weight for city in _CITIES))

_PLATFORMS = (
    {"$os": "Android", "$browser": "Chrome", "$lib": "web"},
    {"$os": "iOS", "$browser": "Mobile Safari", "$lib": "web"},
    {"$os": "Windows", "$browser": "Chrome", "$lib": "web"},
    {"$os": "Mac OS X", "$browser": "Safari", "$lib": "web"},
    {"$os": "Mac OS X", "$browser": "Chrome", "$lib": "web"},
    {"$os": "Windows", "$browser": "Microsoft Edge", "$lib": "web"},
    {"$os": "Linux", "$browser": "Firefox", "$lib": "web"},
)
_PLATFORM_CUM_WEIGHTS = tuple(itertools.accumulate((30, 25, 18, 10, 8, 5, 4)))

# (tag_name, attr__class, $el_text, extra attributes) of elements a user clicks on.
_CLICKED = (
    ("button", "btn btn-primary", "Book lesson", {"attr__id": "book"}),
    ("button", "btn btn-success", "Check in", {"attr__id": "checkin"}),
    ("button", "btn btn-outline-primary", "Renew membership", {"attr__id": "renew"}),
    ("button", "btn btn-primary", "Save session", {"attr__id": "save-session"}),
    ("a", "nav-link", "Schedule", {"attr__href": "/schedule"}),
    ("a", "nav-link", "Membership", {"attr__href": "/membership"}),
    ("span", "badge badge-info", "Log swim", {}),
)
_PARENTS = (
    ("div", "card-body", {}),
    ("form", "booking-form", {"attr__id": "booking"}),
    ("li", "nav-item", {}),
    ("div", "container", {}),
)


@dataclass(frozen=True)
class SampleSummary:
    """Counts of what was written, so callers can check loaders against ground truth."""

    files: int
    records: int
    events: int
    late_records: int
    redelivered: int


class _User(NamedTuple):
    distinct_id: str
    city: int
    properties: dict[str, str]


_Entry = tuple[int, int, dict[str, Any]]


def write_sample_pulls(
    root: Path,
    start: date,
    days: int,
    *,
    users: int = 5000,
    events_per_day: int = 20000,
    seed: int = 0,
) -> SampleSummary:
    """Write pulls for every hour of ``[start, start + days)`` under ``root / "raw_data"``.

    ``days * events_per_day`` distinct events are spread over the pulls; about 3% arrive
    1 hour to 21 days late and about 1% are delivered a second time. Existing files with
    the same names are overwritten and nothing else is removed.
    """
    _validate(days, users, events_per_day)
    rng = random.Random(seed)
    range_start_s = (start - _EPOCH_DATE).days * _DAY_S
    pulls = _pull_stamps(rng, range_start_s, days)
    population, user_cum_weights = _make_users(rng, users)
    batches = _generate_events(
        rng, population, user_cum_weights, pulls, range_start_s, days * events_per_day
    )
    redelivered = _add_redeliveries(rng, batches, pulls)
    records, late_records = _write_pulls(root / "raw_data", pulls, batches)
    return SampleSummary(
        files=len(pulls),
        records=records,
        events=days * events_per_day,
        late_records=late_records,
        redelivered=redelivered,
    )


def _validate(days: int, users: int, events_per_day: int) -> None:
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    if events_per_day < 0:
        raise ValueError(f"events_per_day must not be negative, got {events_per_day}")


def _pull_stamps(rng: random.Random, range_start_s: int, days: int) -> list[int]:
    """Pull times in epoch seconds; every hour gets 10-14 pulls so no hour is ever empty."""
    return [
        range_start_s + hour * _HOUR_S + offset
        for hour in range(days * 24)
        for offset in _hour_offsets(rng)
    ]


def _hour_offsets(rng: random.Random) -> list[int]:
    """One pull per 5-minute slot with jitter; a device sometimes misses or repeats a pull."""
    missed = set(rng.sample(range(_SLOTS_PER_HOUR), rng.choices(*_MISSED_SLOTS)[0]))
    kept = [slot for slot in range(_SLOTS_PER_HOUR) if slot not in missed]
    doubled = set(rng.sample(kept, rng.choices(*_DOUBLED_SLOTS)[0]))
    offsets: list[int] = []
    for slot in kept:
        base = slot * _SLOT_S
        if slot in doubled:
            offsets.append(base + rng.randint(2, 140))
            offsets.append(base + rng.randint(160, _SLOT_S - 3))
        else:
            offsets.append(base + rng.randint(2, _SLOT_S - 3))
    return offsets


def _make_users(rng: random.Random, users: int) -> tuple[list[_User], list[float]]:
    """Users with a home city, a device and a lognormal activity weight (a few heavy users)."""
    id_space = range(10_000, max(100_000, 10_000 + 20 * users))
    ids = rng.sample(id_space, users)
    population: list[_User] = []
    weights: list[float] = []
    for number in ids:
        city = rng.choices(range(len(_CITIES)), cum_weights=_CITY_CUM_WEIGHTS)[0]
        platform = rng.choices(_PLATFORMS, cum_weights=_PLATFORM_CUM_WEIGHTS)[0]
        population.append(_User(str(number), city, platform))
        weights.append(rng.lognormvariate(0.0, _USER_WEIGHT_SIGMA))
    return population, list(itertools.accumulate(weights))


def _generate_events(
    rng: random.Random,
    population: list[_User],
    user_cum_weights: list[float],
    pulls: list[int],
    range_start_s: int,
    total: int,
) -> list[list[_Entry]]:
    """Per pull, entries of (event time in us, sequence, record) sorted by event time.

    Pulls are chosen per home city so each user's activity follows their local day.
    """
    picks = rng.choices(range(len(population)), cum_weights=user_cum_weights, k=total)
    by_city: list[list[int]] = [[] for _ in _CITIES]
    for user_index in picks:
        by_city[population[user_index].city].append(user_index)
    previous = [range_start_s, *pulls[:-1]]
    batches: list[list[_Entry]] = [[] for _ in pulls]
    sequence = 0
    for city, user_indices in zip(_CITIES, by_city, strict=True):
        if not user_indices:
            continue
        pull_cum_weights = _pull_cum_weights(pulls, previous, city.utc_offset_h)
        targets = rng.choices(range(len(pulls)), cum_weights=pull_cum_weights, k=len(user_indices))
        for user_index, pull_index in zip(user_indices, targets, strict=True):
            event_us = _event_time_us(rng, previous[pull_index], pulls[pull_index])
            record = _make_record(rng, population[user_index], city, event_us)
            batches[pull_index].append((event_us, sequence, record))
            sequence += 1
    for batch in batches:
        batch.sort(key=lambda entry: (entry[0], entry[1]))
    return batches


def _pull_cum_weights(pulls: list[int], previous: list[int], utc_offset_h: int) -> list[float]:
    """A pull carries the events of its window, so weight = window length x local activity."""
    weights = (
        (pull_s - prev_s) * _LOCAL_HOUR_ACTIVITY[(pull_s // _HOUR_S + utc_offset_h) % 24]
        for pull_s, prev_s in zip(pulls, previous, strict=True)
    )
    return list(itertools.accumulate(weights))


def _event_time_us(rng: random.Random, prev_s: int, pull_s: int) -> int:
    """On time: strictly between the previous pull and this one, even after truncating to
    whole seconds. Late: log-uniform delay, so mostly hours but sometimes weeks."""
    if rng.random() < _LATE_SHARE:
        delay_s = math.exp(rng.uniform(_LOG_MIN_DELAY_S, _LOG_MAX_DELAY_S))
        return pull_s * _SECOND_US - int(delay_s * _SECOND_US)
    return (prev_s + 1) * _SECOND_US + rng.randrange((pull_s - prev_s - 1) * _SECOND_US)


def _make_record(rng: random.Random, user: _User, city: _City, event_us: int) -> dict[str, Any]:
    event = rng.choices(_EVENTS, cum_weights=_EVENT_CUM_WEIGHTS)[0]
    distinct_id: str | int = user.distinct_id
    if rng.random() < _NUMERIC_ID_SHARE:
        distinct_id = int(user.distinct_id)
    elements = _elements(rng) if event == "$autocapture" else []
    timestamp = _format_timestamp(rng, event_us)
    event_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return {
        "distinct_id": distinct_id,
        "elements": elements,
        "event": event,
        "timestamp": timestamp,
        "uuid": event_uuid,
        **city.geo,
        "properties": user.properties,
    }


def _format_timestamp(rng: random.Random, event_us: int) -> str:
    """SDKs disagree on precision and UTC suffix, so loaders must accept all three forms."""
    moment = _EPOCH + timedelta(microseconds=event_us)
    whole = f"{moment:%Y-%m-%dT%H:%M:%S}"
    draw = rng.random()
    if draw < _SECONDS_Z_TIMESTAMP_SHARE:
        return f"{whole}Z"
    if draw < _SECONDS_Z_TIMESTAMP_SHARE + _MS_Z_TIMESTAMP_SHARE:
        return f"{whole}.{moment.microsecond // 1000:03d}Z"
    return f"{whole}.{moment.microsecond:06d}+00:00"


def _elements(rng: random.Random) -> list[dict[str, Any]]:
    """The clicked element first, then up to two ancestors, as autocapture reports them."""
    tag, css, text, extra = rng.choice(_CLICKED)
    chain = [_element(rng, tag, css, {"$el_text": text, **extra})]
    for tag, css, extra in rng.sample(_PARENTS, rng.randint(0, 2)):
        chain.append(_element(rng, tag, css, extra))
    return chain


def _element(rng: random.Random, tag: str, css: str, extra: dict[str, str]) -> dict[str, Any]:
    nth_child = rng.randint(1, 6)
    return {
        "tag_name": tag,
        "nth_child": nth_child,
        "nth_of_type": rng.randint(1, nth_child),
        "attr__class": css,
        "classes": css.split(),
        **extra,
    }


def _add_redeliveries(rng: random.Random, batches: list[list[_Entry]], pulls: list[int]) -> int:
    """Append identical copies of ~1% of entries to the same pull or a pull within a day."""
    extras: list[list[_Entry]] = [[] for _ in pulls]
    count = 0
    for pull_index, batch in enumerate(batches):
        for entry in batch:
            if rng.random() < _REDELIVERY_SHARE:
                extras[_redelivery_target(rng, pulls, pull_index)].append(entry)
                count += 1
    for batch, extra in zip(batches, extras, strict=True):
        batch.extend(extra)
    return count


def _redelivery_target(rng: random.Random, pulls: list[int], pull_index: int) -> int:
    last_within_day = bisect.bisect_right(pulls, pulls[pull_index] + _DAY_S) - 1
    if last_within_day == pull_index or rng.random() < _SAME_FILE_REDELIVERY_SHARE:
        return pull_index
    return rng.randint(pull_index + 1, last_within_day)


def _write_pulls(raw_root: Path, pulls: list[int], batches: list[list[_Entry]]) -> tuple[int, int]:
    """Write one JSON array per pull, empty pulls included; return (records, late records)."""
    records = late_records = 0
    created: set[Path] = set()
    for pull_s, batch in zip(pulls, batches, strict=True):
        stamp = _EPOCH + timedelta(seconds=pull_s)
        folder = raw_root / f"{stamp:%Y-%m-%d}"
        if folder not in created:
            folder.mkdir(parents=True, exist_ok=True)
            created.add(folder)
        payload = json.dumps([record for _, _, record in batch], ensure_ascii=False)
        (folder / f"{stamp:%Y%m%d-%H%M%S}.json").write_bytes(payload.encode("utf-8"))
        pull_day = pull_s // _DAY_S
        records += len(batch)
        late_records += sum(1 for event_us, _, _ in batch if event_us // _DAY_US < pull_day)
    return records, late_records
