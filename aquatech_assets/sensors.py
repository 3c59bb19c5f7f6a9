"""The late-data sensor: new event_data partitions to exactly the aggregates they changed.

Each event_data materialization records the event dates its rows fall on, and the dates of the
rows it removed (a re-run that lost a file, a later copy of an event replaced by its first).
The sensor reads the materializations stored since its cursor (a storage id, so none is ever
skipped, however many land between ticks) and requests those days of dau and event_activity
and their months of mau.
"""

from collections.abc import Iterable
from datetime import date

import dagster as dg

from aquatech_assets.assets import EVENT_DATES
from aquatech_assets.io_managers import EVENT_DATES_REMOVED
from aquatech_assets.jobs import DAILY_JOB, MONTHLY_JOB
from aquatech_assets.partitions import Partitions, day_start, key_ranges

EVENT_DATA = dg.AssetKey("event_data")
MATERIALIZATIONS_PER_TICK = 1000


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
        minimum_interval_seconds=30,
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
    if key_range.start == key_range.end:
        return dg.RunRequest(run_key=run_key, job_name=job, partition_key=key_range.start)
    return dg.RunRequest(
        run_key=run_key,
        job_name=job,
        tags={
            "dagster/asset_partition_range_start": key_range.start,
            "dagster/asset_partition_range_end": key_range.end,
        },
    )
