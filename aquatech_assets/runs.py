"""The runs `aquatech materialize` launches: pull hours first, then what they touched.

The same rule as the late-data sensor decides the second step, so a range materialized from the
command line ends in the same tables as one left to the sensor.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import dagster as dg

from aquatech_assets.jobs import INGEST_JOB
from aquatech_assets.partitions import Partitions, hour_chunks, run_target
from aquatech_assets.sensors import EVENT_DATA, aggregate_run_requests, event_dates_of

# The runs' own INFO lines (files read, rows written) without Dagster's step-by-step DEBUG.
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


@dataclass
class MaterializeSummary:
    runs: list[tuple[str, str, bool]] = field(default_factory=list)
    event_dates: set[date] = field(default_factory=set)
    dates_outside_partitions: list[date] = field(default_factory=list)
    hours_outside_partitions: list[datetime] = field(default_factory=list)

    @property
    def failed(self) -> list[tuple[str, str, bool]]:
        return [run for run in self.runs if not run[2]]


def requested_hours(
    found: list[datetime], start: datetime | None, end: datetime | None
) -> list[datetime]:
    """The pull hours to run: those with files, or every hour of an explicit range.

    An explicit range includes its hours without files, so that re-running an hour whose files
    were deleted clears what they had stored.
    """
    if start is None and end is None:
        return found
    first = start or (found[0] if found else None)
    last = end or (found[-1] if found else None)
    if first is None or last is None:
        return []
    hours = []
    hour = first.replace(minute=0, second=0, microsecond=0)
    while hour <= last:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def materialize(
    defs: dg.Definitions,
    partitions: Partitions,
    instance: dg.DagsterInstance,
    hours: list[datetime],
    report: Callable[[str], None],
) -> MaterializeSummary:
    """Ingests the pull hours, then recounts every day and month their events fall on."""
    summary = MaterializeSummary()
    ingest = defs.resolve_job_def(INGEST_JOB)
    chunks, summary.hours_outside_partitions = hour_chunks(hours, partitions)
    for chunk in chunks:
        result = _execute(ingest, chunk, instance)
        summary.runs.append((INGEST_JOB, _label(chunk), result.success))
        report(f"{INGEST_JOB} {_label(chunk)}: {'ok' if result.success else 'FAILED'}")
        for materialization in result.asset_materializations_for_node("pulls"):
            if materialization.asset_key == EVENT_DATA:
                summary.event_dates |= event_dates_of(materialization.metadata)

    requests, summary.dates_outside_partitions = aggregate_run_requests(
        summary.event_dates, partitions
    )
    for request in requests:
        key_range = request.partition_key_range or dg.PartitionKeyRange(
            request.partition_key, request.partition_key
        )
        result = _execute(defs.resolve_job_def(request.job_name), key_range, instance)
        summary.runs.append((request.job_name, _label(key_range), result.success))
        report(f"{request.job_name} {_label(key_range)}: {'ok' if result.success else 'FAILED'}")
    return summary


def _execute(
    job: dg.JobDefinition, key_range: dg.PartitionKeyRange, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    return job.execute_in_process(
        run_config=RUN_CONFIG, instance=instance, raise_on_error=False, **run_target(key_range)
    )


def _label(key_range: dg.PartitionKeyRange) -> str:
    if key_range.start == key_range.end:
        return key_range.start
    return f"{key_range.start}...{key_range.end}"
