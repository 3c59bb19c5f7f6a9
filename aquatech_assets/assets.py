"""The assets: pulls to raw_events, event_data and rejected_events; then dau, mau, activity.

Pull hours are parsed once into all three hourly tables, so a backfill pays for reading each
file once. The aggregates are computed in the warehouse over all of event_data for their day or
month: a record that arrives weeks late counts as soon as it is stored.
"""

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from aquatech_assets import schemas
from aquatech_assets.io_managers import COMPRESSED, DATES_OF, PARTITION_EXPR, UNIQUE_KEY
from aquatech_assets.parsing import StagedPulls, stage_pulls
from aquatech_assets.partitions import LATENESS_DAYS, PULL_HOURS_PER_RUN, Partitions
from aquatech_assets.pulls import PullListing
from aquatech_assets.resources import PullStore, Warehouse
from aquatech_assets.staging import StagedTable, staging_connection

# Every asset here writes the warehouse; the pool makes runs take turns (DuckDB allows one writer
# process, and BigQuery aborts one of two transactions that change a table at once).
WAREHOUSE_POOL = "aquatech_warehouse"
EVENT_DATES = "event_dates"
FILES_LISTED_IN_METADATA = 50
COLUMN_SCHEMA = "dagster/column_schema"


def build_assets(partitions: Partitions) -> list[dg.AssetsDefinition]:
    # backfill_policy is beta in dagster 1.13 and would warn at every code load; the pin in
    # pyproject.toml and the range-run tests stand behind its use here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _build_assets(partitions)


def _build_assets(partitions: Partitions) -> list[dg.AssetsDefinition]:
    return [
        _build_pulls(partitions),
        _build_aggregate(
            "dau",
            partitions.daily,
            dg.TimeWindowPartitionMapping(end_offset=LATENESS_DAYS),
            "event_date",
            schemas.DAU,
            "One row per event day (UTC): distinct users with any stored event that day.",
        ),
        _build_aggregate(
            "event_activity",
            partitions.daily,
            dg.TimeWindowPartitionMapping(end_offset=LATENESS_DAYS),
            "event_date",
            schemas.EVENT_ACTIVITY,
            "One row per (event day, event name): distinct events and distinct users.",
        ),
        _build_aggregate(
            "mau",
            partitions.monthly,
            dg.TimeWindowPartitionMapping(end_offset=1),
            "event_month",
            schemas.MAU,
            "One row per event month (UTC): distinct users with any stored event that month.",
        ),
    ]


def _build_pulls(partitions: Partitions) -> dg.AssetsDefinition:
    hourly = partitions.hourly

    @dg.multi_asset(
        name="pulls",
        specs=[
            dg.AssetSpec(
                "raw_events",
                description="One row per record as pulled, as JSON text, by pull hour.",
                partitions_def=hourly,
                metadata={
                    PARTITION_EXPR: "pulled_at",
                    COMPRESSED: ["raw"],
                    COLUMN_SCHEMA: schemas.column_schema(schemas.RAW_EVENTS),
                },
            ).with_io_manager_key("io_manager"),
            dg.AssetSpec(
                "event_data",
                description=(
                    "One row per event (uuid), from its first delivery, with `timestamp` "
                    "as `event_time`; partitioned by the pull hour that delivered it."
                ),
                deps=["raw_events"],
                partitions_def=hourly,
                metadata={
                    PARTITION_EXPR: "pulled_at",
                    UNIQUE_KEY: "uuid",
                    DATES_OF: "event_time",
                    COLUMN_SCHEMA: schemas.column_schema(schemas.EVENT_DATA),
                },
            ).with_io_manager_key("io_manager"),
            dg.AssetSpec(
                "rejected_events",
                description="One row per record or file that could not be ingested, and why.",
                deps=["raw_events"],
                partitions_def=hourly,
                metadata={
                    PARTITION_EXPR: "pulled_at",
                    COLUMN_SCHEMA: schemas.column_schema(schemas.REJECTED_EVENTS),
                },
            ).with_io_manager_key("io_manager"),
        ],
        pool=WAREHOUSE_POOL,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=PULL_HOURS_PER_RUN),
    )
    def pulls(context: dg.AssetExecutionContext, pull_store: PullStore):
        """Reads the pull hours' files once and splits them into the three hourly tables.

        The tables are staged in a local DuckDB until the IO manager has stored all three, so
        the range's records never sit in Python memory.
        """
        window = context.partition_time_window
        with staging_connection() as connection:
            with pull_store.fetch(window.start, window.end) as listing:
                staged = stage_pulls(connection, listing.files)
            yield from _pulls_outputs(context, listing, staged)

    return pulls


def _pulls_outputs(
    context: dg.AssetExecutionContext, listing: PullListing, staged: StagedPulls
) -> Iterator[dg.Output]:
    window = context.partition_time_window
    for skipped in listing.skipped:
        context.log.warning(f"skipped {skipped}")
    unreadable_files = staged.rejected_events.connection.sql(
        f"SELECT source_file, reason FROM {staged.rejected_events.sql_name} "
        "WHERE record_index IS NULL ORDER BY source_file"
    ).fetchall()
    for source_file, reason in unreadable_files:
        context.log.warning(f"rejected file {source_file}: {reason}")
    rejected = staged.rejected_events.height
    events = staged.event_data.height
    event_summary = summarize_events(staged.event_data)
    context.log.info(
        f"pulls {window.start:%Y-%m-%d %H:%M} .. {window.end:%Y-%m-%d %H:%M}: "
        f"{staged.files_read} files, {staged.records_read} records; {events} distinct uuids, "
        f"{rejected} rejected, {staged.duplicates_dropped} repeats within these pulls "
        f"dropped, {event_summary['late_records']} late; event dates "
        f"{', '.join(event_summary[EVENT_DATES]) or 'none'}"
    )
    # Dagster copies a range run's output metadata onto every hour's materialization, so the
    # counts say which window they are for, and the file list is kept to one-hour runs.
    hours = len(context.partition_keys)
    shared = {
        "run_window": f"{window.start:%Y-%m-%d %H:%M} .. {window.end:%Y-%m-%d %H:%M} UTC",
        "pull_hours_in_run": hours,
        "files_read": staged.files_read,
        "files_skipped": len(listing.skipped),
        "files_rejected": staged.files_rejected,
        "records_read": staged.records_read,
        "records_rejected": rejected,
    }
    if listing.skipped:
        shared["skipped_files"] = dg.MetadataValue.json([str(path) for path in listing.skipped])
    raw_metadata = dict(shared)
    if listing.files and hours == 1:
        raw_metadata["files"] = dg.MetadataValue.json(
            [pull.source_file for pull in listing.files[:FILES_LISTED_IN_METADATA]]
        )
    yield dg.Output(staged.raw_events, output_name="raw_events", metadata=raw_metadata)
    yield dg.Output(
        staged.event_data,
        output_name="event_data",
        metadata={
            **shared,
            "duplicates_dropped": staged.duplicates_dropped,
            "late_records": event_summary["late_records"],
            EVENT_DATES: dg.MetadataValue.json(event_summary[EVENT_DATES]),
            "event_time_min": event_summary["event_time_min"],
            "event_time_max": event_summary["event_time_max"],
        },
    )
    yield dg.Output(staged.rejected_events, output_name="rejected_events", metadata=shared)


def summarize_events(events: StagedTable) -> dict:
    """The event dates a batch touches, how many records are late, and its event-time range.

    A record is late when its event day (UTC) is before the day it was pulled: it changes a
    day's DAU after that day's own pulls were processed.
    """
    late, low, high = events.connection.sql(
        "SELECT count(*) FILTER (CAST(event_time AS DATE) < CAST(pulled_at AS DATE)), "
        f"min(event_time), max(event_time) FROM {events.sql_name}"
    ).fetchall()[0]
    dates = events.connection.sql(
        f"SELECT DISTINCT CAST(event_time AS DATE) AS day FROM {events.sql_name} ORDER BY day"
    ).fetchall()
    return {
        "late_records": int(late),
        EVENT_DATES: [day.isoformat() for (day,) in dates],
        "event_time_min": low.astimezone(UTC).isoformat() if low else "",
        "event_time_max": high.astimezone(UTC).isoformat() if high else "",
    }


def _build_aggregate(
    name: str,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    mapping: dg.TimeWindowPartitionMapping,
    partition_column: str,
    schema: pl.Schema,
    description: str,
) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        description=description,
        partitions_def=partitions_def,
        deps=[dg.AssetDep("event_data", partition_mapping=mapping)],
        metadata={PARTITION_EXPR: partition_column, COLUMN_SCHEMA: schemas.column_schema(schema)},
        pool=WAREHOUSE_POOL,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def aggregate(context: dg.AssetExecutionContext, warehouse: Warehouse) -> pl.DataFrame:
        window = context.partition_time_window
        if not warehouse.table_exists("event_data"):
            context.log.warning("event_data does not exist yet: materialize pulls first")
            return schema.to_frame()
        frame = schemas.conform(warehouse.aggregate(name, window.start, window.end), schema)
        context.log.info(
            f"{name} for {window.start:%Y-%m-%d} .. {window.end:%Y-%m-%d}: {frame.height} rows "
            f"computed over event_data in the warehouse"
        )
        context.add_output_metadata(
            {"partitions_touched": len(context.partition_keys), "computed_at": _now()}
        )
        return frame

    return aggregate


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
