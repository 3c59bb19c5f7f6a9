"""Partitions: pull hours for ingestion, event days and months for the aggregates.

All three start at AQUATECH_START_DATE and end one partition past now (`end_offset=1`), so the
current hour, day and month can be materialized while the device is still pulling into them.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import groupby

import dagster as dg

# Lineage only: how long after its event day a record may still arrive. The aggregates always
# read all of event_data; this decides which event_data partitions the UI draws as upstream.
LATENESS_DAYS = 30
# Pull hours one run covers, from the UI's backfills (the backfill policy) and the CLI alike: a
# 30-day backfill is five runs. Memory does not grow with it: a run stages its range in a
# DuckDB that spills to disk.
PULL_HOURS_PER_RUN = 168
MAX_GAP_HOURS = 12
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


@dataclass(frozen=True)
class Partitions:
    hourly: dg.HourlyPartitionsDefinition
    daily: dg.DailyPartitionsDefinition
    monthly: dg.MonthlyPartitionsDefinition


def build_partitions(start: date) -> Partitions:
    start_text = start.isoformat()
    return Partitions(
        hourly=dg.HourlyPartitionsDefinition(start_date=f"{start_text}-00:00", end_offset=1),
        daily=dg.DailyPartitionsDefinition(start_date=start_text, end_offset=1),
        monthly=dg.MonthlyPartitionsDefinition(
            start_date=start.replace(day=1).isoformat(), end_offset=1
        ),
    )


def key_ranges(
    instants: Iterable[datetime], partitions_def: dg.TimeWindowPartitionsDefinition
) -> tuple[list[dg.PartitionKeyRange], list[datetime]]:
    """The partitions holding the instants, as runs of adjacent keys, and the instants outside.

    Adjacent keys become one range so that a late pull touching days 3, 4 and 9 costs two runs,
    while still requesting exactly those days and no day in between.
    """
    keys: set[str] = set()
    outside: list[datetime] = []
    first = partitions_def.start
    last_window = partitions_def.get_last_partition_window()
    for instant in instants:
        if instant < first or last_window is None or instant >= last_window.end:
            outside.append(instant)
        else:
            keys.add(partitions_def.get_partition_key_for_timestamp(instant.timestamp()))

    ranges: list[dg.PartitionKeyRange] = []
    for key in sorted(keys):
        previous = ranges[-1] if ranges else None
        if previous is not None and partitions_def.get_next_partition_key(previous.end) == key:
            ranges[-1] = dg.PartitionKeyRange(previous.start, key)
        else:
            ranges.append(dg.PartitionKeyRange(key, key))
    return ranges, outside


def hour_chunks(
    hours: list[datetime], partitions: Partitions
) -> tuple[list[dg.PartitionKeyRange], list[datetime]]:
    """Runs of up to a week of pull hours, from first to last hour; and hours with no partition.

    Hours in between without files are included (materializing them stores nothing) unless
    more than `MAX_GAP_HOURS` separate two pulls: each included hour costs Dagster three stored
    events, a new run about a second, so a long gap is cheaper as a second run.
    """
    inside, outside = [], []
    hours_in = []
    for hour in sorted(hours):
        ranges, beyond = key_ranges([hour], partitions.hourly)
        outside.extend(beyond)
        if ranges:
            hours_in.append(hour.replace(minute=0, second=0, microsecond=0))
    chunk: list[datetime] = []
    for hour in hours_in:
        if chunk and (
            hour - chunk[0] >= timedelta(hours=PULL_HOURS_PER_RUN)
            or hour - chunk[-1] > timedelta(hours=MAX_GAP_HOURS)
        ):
            inside.append(_hour_range(chunk, partitions))
            chunk = []
        chunk.append(hour)
    if chunk:
        inside.append(_hour_range(chunk, partitions))
    return inside, outside


def _hour_range(chunk: list[datetime], partitions: Partitions) -> dg.PartitionKeyRange:
    first, last = (
        partitions.hourly.get_partition_key_for_timestamp(hour.timestamp())
        for hour in (chunk[0], chunk[-1])
    )
    return dg.PartitionKeyRange(first, last)


def exact_hour_ranges(
    hours: list[datetime], partitions: Partitions
) -> tuple[list[dg.PartitionKeyRange], list[datetime]]:
    """Runs of adjacent pull hours, each cut at UTC midnight; and the hours with no partition.

    Unlike `hour_chunks`, no hour outside `hours` is included, so nothing unchanged runs again.
    """
    ranges, outside = key_ranges(hours, partitions.hourly)
    pieces = []
    for key_range in ranges:
        keys = partitions.hourly.get_partition_keys_in_range(key_range)
        for _, day_keys in groupby(keys, key=lambda key: key[:10]):
            day_keys = list(day_keys)
            pieces.append(dg.PartitionKeyRange(day_keys[0], day_keys[-1]))
    return pieces, outside


def run_target(key_range: dg.PartitionKeyRange) -> dict:
    """The keyword arguments that aim a run (a RunRequest or an in-process run) at the keys."""
    if key_range.start == key_range.end:
        return {"partition_key": key_range.start}
    return {"tags": {RANGE_START: key_range.start, RANGE_END: key_range.end}}


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
