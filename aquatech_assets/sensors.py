"""The two sensors that keep the tables up to date on their own.

`pull_sensor` turns new or changed pull files into ingest runs of their pull hours.
`late_data_sensor` turns new event_data partitions into exactly the aggregates they changed.

Each event_data materialization records the event dates its rows fall on, and the dates of the
rows it removed (a re-run that lost a file, a later copy of an event replaced by its first).
The sensor reads the materializations stored since its cursor (a storage id, so none is ever
skipped, however many land between ticks) and requests those days of dau and event_activity
and their months of mau.
"""

import base64
import hashlib
import json
import zlib
from collections.abc import Iterable
from datetime import UTC, date, datetime

import dagster as dg

from aquatech_assets.assets import EVENT_DATES
from aquatech_assets.io_managers import EVENT_DATES_REMOVED
from aquatech_assets.jobs import DAILY_JOB, INGEST_JOB, MONTHLY_JOB
from aquatech_assets.partitions import (
    Partitions,
    day_start,
    exact_hour_ranges,
    key_ranges,
    run_target,
)
from aquatech_assets.pulls import HOUR_KEY
from aquatech_assets.resources import PullStore

EVENT_DATA = dg.AssetKey("event_data")
RAW_EVENTS = dg.AssetKey("raw_events")
MATERIALIZATIONS_PER_TICK = 1000
# The device pulls every minute; a 15 s tick lands a pull within a minute, and listing even
# 100,000 files costs about a second (benchmarks/pull_scan.py).
SENSOR_INTERVAL_SECONDS = 15


def event_dates_of(metadata: dict) -> set[date]:
    """The event dates an event_data materialization changed: of rows written or removed."""
    days: set[date] = set()
    for key in (EVENT_DATES, EVENT_DATES_REMOVED):
        value = metadata.get(key)
        dates = value.value if isinstance(value, dg.JsonMetadataValue) else value
        days.update(date.fromisoformat(day) for day in dates or [])
    return days


def aggregate_run_requests(
    dates: Iterable[date], partitions: Partitions, run_key_prefix: str | None = None
) -> tuple[list[dg.RunRequest], list[date]]:
    """Runs recounting the days of `dates` and their months; also the dates with no partition."""
    starts = [day_start(day) for day in sorted(set(dates))]
    daily, outside = key_ranges(starts, partitions.daily)
    monthly, _ = key_ranges(starts, partitions.monthly)
    requests = [
        _run_request(job, key_range, run_key_prefix)
        for job, ranges in ((DAILY_JOB, daily), (MONTHLY_JOB, monthly))
        for key_range in ranges
    ]
    return requests, [instant.date() for instant in outside]


def build_late_data_sensor(partitions: Partitions, jobs: dict) -> dg.SensorDefinition:
    @dg.sensor(
        name="late_data_sensor",
        jobs=[jobs[DAILY_JOB], jobs[MONTHLY_JOB]],
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Recounts exactly the dau/event_activity days and mau months that new event_data "
            "rows fall on, late records included."
        ),
    )
    def late_data_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        after = int(context.cursor) if context.cursor else None
        result = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=EVENT_DATA, after_storage_id=after),
            limit=MATERIALIZATIONS_PER_TICK,
            ascending=True,
        )
        if not result.records:
            return dg.SkipReason("no new event_data materializations since the last tick")
        dates: set[date] = set()
        for record in result.records:
            materialization = record.asset_materialization
            if materialization is not None:
                dates |= event_dates_of(materialization.metadata)
        newest = result.records[-1].storage_id
        requests, outside = aggregate_run_requests(dates, partitions, f"event_data-{newest}")
        if outside:
            context.log.warning(
                "no aggregate partition for event dates "
                f"{', '.join(day.isoformat() for day in outside)} (before AQUATECH_START_DATE "
                "or in the future); those rows are stored in event_data but not counted"
            )
        context.log.info(
            f"{len(result.records)} event_data materializations up to storage id {newest} "
            f"touched {len(dates)} event dates; requesting {len(requests)} runs"
        )
        return dg.SensorResult(run_requests=requests, cursor=str(newest))

    return late_data_sensor


def _run_request(
    job: str, key_range: dg.PartitionKeyRange, run_key_prefix: str | None
) -> dg.RunRequest:
    run_key = (
        f"{run_key_prefix}:{job}:{key_range.start}..{key_range.end}" if run_key_prefix else None
    )
    return dg.RunRequest(run_key=run_key, job_name=job, **run_target(key_range))


def encode_fingerprints(fingerprints: dict[str, str]) -> str:
    """The pull sensor's cursor: every pull hour's fingerprint, compressed (~30 bytes an hour)."""
    text = json.dumps({"v": 1, "hours": fingerprints}, sort_keys=True, separators=(",", ":"))
    return base64.b64encode(zlib.compress(text.encode(), 9)).decode()


def decode_fingerprints(cursor: str | None) -> dict[str, str] | None:
    if not cursor:
        return None
    return json.loads(zlib.decompress(base64.b64decode(cursor)))["hours"]


def changed_hours(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    """Pull hours whose files were added, removed or rewritten since `previous` was taken."""
    return sorted(
        hour for hour in previous.keys() | current.keys() if previous.get(hour) != current.get(hour)
    )


def pull_run_requests(
    hours: list[str],
    previous: dict[str, str],
    current: dict[str, str],
    partitions: Partitions,
) -> tuple[list[dg.RunRequest], list[str]]:
    """Ingest runs for exactly these hours, adjacent ones of a day in one run; and the outsiders.

    The run key names the hours' files before and after the change, so a tick repeated after a
    crash asks for nothing twice, while new files in an hour already run make a new key.
    """
    instants = [datetime.strptime(hour, HOUR_KEY).replace(tzinfo=UTC) for hour in hours]
    chunks, outside = exact_hour_ranges(instants, partitions)
    requests = []
    for chunk in chunks:
        keys = partitions.hourly.get_partition_keys_in_range(chunk)
        change = "|".join(f"{key}:{previous.get(key)}>{current.get(key)}" for key in keys)
        digest = hashlib.sha256(change.encode()).hexdigest()[:16]
        requests.append(
            dg.RunRequest(
                run_key=f"pulls:{chunk.start}..{chunk.end}:{digest}",
                job_name=INGEST_JOB,
                **run_target(chunk),
            )
        )
    return requests, [instant.strftime(HOUR_KEY) for instant in outside]


def build_pull_sensor(partitions: Partitions, jobs: dict) -> dg.SensorDefinition:
    @dg.sensor(
        name="pull_sensor",
        jobs=[jobs[INGEST_JOB]],
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Ingests the pull hours whose files are new, rewritten or removed since the last tick; "
            "late_data_sensor then recounts what they touched."
        ),
    )
    def pull_sensor(
        context: dg.SensorEvaluationContext, pull_store: PullStore
    ) -> dg.SensorResult | dg.SkipReason:
        scanned = pull_store.scan()
        current = scanned.fingerprints
        previous = decode_fingerprints(context.cursor)
        if previous is None:
            # First tick: hours materialized before the sensor ran (by the CLI or the UI) are
            # taken as they are; every other hour with files is new.
            done = context.instance.get_materialized_partitions(RAW_EVENTS)
            previous = {hour: fingerprint for hour, fingerprint in current.items() if hour in done}
        hours = changed_hours(previous, current)
        for skipped in scanned.skipped[:20]:
            context.log.warning(f"not read: {skipped}")
        if not hours:
            return dg.SkipReason(
                f"no pull hour changed among {len(current)} hours under {pull_store.location()}"
            )
        requests, outside = pull_run_requests(hours, previous, current, partitions)
        if outside:
            context.log.warning(
                f"{len(outside)} pull hours have no partition (before AQUATECH_START_DATE or "
                f"in the future) and are not read: {', '.join(outside[:20])}"
            )
        context.log.info(
            f"{len(hours)} pull hours changed under {pull_store.location()}: "
            f"{', '.join(hours[:20])}{' ...' if len(hours) > 20 else ''}; "
            f"requesting {len(requests)} runs"
        )
        return dg.SensorResult(run_requests=requests, cursor=encode_fingerprints(current))

    return pull_sensor
