"""Asset checks: what must hold across the tables, and what is worth a warning.

Each check reads a whole table in the warehouse, whichever partitions its run covered, and
passes or fails on the whole: the checks are not partitioned. In dagster 1.13 a partitioned
check run inside a range run (a backfill, a week of pull hours) records one result with no
partition, so per-partition results would be missing exactly where most data lands. A check
of the whole table says something true however it was launched: by a job, or by the UI's
*Execute checks*. The offending partitions and rows are in the result's metadata (how many,
and the first few). Dagster 1.13 still plans an unpartitioned check once per partition of a
partitioned run; those planned rows never get a result and the check's history lists them as
skipped (test_checks pins this), while its status is the one result of the run.

The checks of event_data and rejected_events run at the end of every ingest run; those of
the aggregates in the run that recounts them, after both tables they compare. None blocks:
the rows are already stored when a check runs, and a check that failed a run would fail every
later run too, until someone repairs the table. An invariant of the pipeline that is broken
(a uuid stored twice, a day with more users than its month) fails with ERROR; doubtful input
(a mostly rejected hour, an event time the device cannot have meant) warns.
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

import dagster as dg

from aquatech_assets import check_queries as sql
from aquatech_assets.assets import WAREHOUSE_POOL
from aquatech_assets.partitions import Partitions
from aquatech_assets.resources import DuckDBWarehouse, Warehouse

REJECTED_SHARE_WARN = 0.05
"""An hour that rejects more than 5% of what it read warns.

The device writes whole JSON arrays of events it built itself, so on a healthy day nothing but
the odd truncated file is rejected; an hour above 5% means a changed format, a broken export or
a clock gone wrong, and is worth a look before its days' dau are trusted.
"""

# How many offending partitions a check lists by key in its metadata, beside their count.
LISTED_KEYS = 20

EVENT_DATA = dg.AssetKey("event_data")
REJECTED_EVENTS = dg.AssetKey("rejected_events")
UUID_UNIQUE = "uuid_unique"
NOT_BEFORE_START = "event_time_not_before_start_date"
NOT_AFTER_PULL = "event_time_not_after_pull"
REJECTED_SHARE = "rejected_share_per_pull_hour"
DAU_NOT_ABOVE_MAU = "dau_not_above_mau"
USERS_NOT_ABOVE_DAU = "users_not_above_dau"


def build_checks(partitions: Partitions) -> list[dg.AssetChecksDefinition]:
    return [_build_ingest_checks(partitions.daily.start), _dau_not_above_mau, _users_not_above_dau]


def _build_ingest_checks(start: datetime) -> dg.AssetChecksDefinition:
    @dg.multi_asset_check(
        name="ingest_checks",
        specs=[
            dg.AssetCheckSpec(
                UUID_UNIQUE,
                asset=EVENT_DATA,
                description="No uuid is stored twice in event_data, in one pull hour or across.",
            ),
            dg.AssetCheckSpec(
                NOT_BEFORE_START,
                asset=EVENT_DATA,
                description=(
                    "Warns of stored events timed before AQUATECH_START_DATE: they are kept but "
                    "no dau, mau or event_activity partition counts them."
                ),
            ),
            dg.AssetCheckSpec(
                NOT_AFTER_PULL,
                asset=EVENT_DATA,
                description=(
                    "Warns of stored events timed after the pull that delivered them (a device "
                    "clock ahead): they are kept and counted on the day they claim."
                ),
            ),
            dg.AssetCheckSpec(
                REJECTED_SHARE,
                asset=REJECTED_EVENTS,
                description=(
                    f"Warns of pull hours that rejected more than {REJECTED_SHARE_WARN:.0%} of "
                    "what they read (records, and files that gave none)."
                ),
            ),
        ],
        can_subset=True,
        pool=WAREHOUSE_POOL,
    )
    def ingest_checks(
        context: dg.AssetCheckExecutionContext, warehouse: Warehouse
    ) -> Iterator[dg.AssetCheckResult]:
        """One step after the pulls are stored; from the UI, any of the four alone.

        One query counts what all three event_data checks need; the queries naming the
        offending partitions and rows run only for a check that does not pass.
        """
        selected = {key.name for key in context.selected_asset_check_keys}
        dialect = _dialect(warehouse)
        event_checks = sorted(selected - {REJECTED_SHARE})
        if event_checks and not warehouse.table_exists("event_data"):
            for name in event_checks:
                yield _nothing_to_check(EVENT_DATA, name, "event_data")
        elif event_checks:
            event_data = warehouse.qualified("event_data")
            summary = warehouse.query(
                sql.event_data_summary(dialect, event_data), {"start": start}
            ).row(0, named=True)
            counts = {name: int(value or 0) for name, value in summary.items()}
            if UUID_UNIQUE in selected:
                yield _uuid_unique(warehouse, dialect, event_data, counts)
            for name, what in (
                (NOT_BEFORE_START, f"before {start:%Y-%m-%d}"),
                (NOT_AFTER_PULL, "after their pull"),
            ):
                if name in selected:
                    yield _event_times(warehouse, dialect, event_data, start, counts, name, what)
        if REJECTED_SHARE in selected:
            yield _rejected_share(warehouse, dialect)

    return ingest_checks


def _uuid_unique(
    warehouse: Warehouse, dialect: sql.CheckDialect, event_data: str, counts: dict[str, int]
) -> dg.AssetCheckResult:
    total = counts["rows_count"]
    extra = total - counts["uuids"]
    hours: dict[str, int] = {}
    sample: list[tuple] = []
    if extra:
        sample = warehouse.query(sql.duplicated_uuid_sample(dialect, event_data)).rows()
        hours = _hour_counts(warehouse.query(sql.duplicated_uuid_hours(dialect, event_data)).rows())
    duplicated = int(sample[0][2]) if sample else 0
    return dg.AssetCheckResult(
        asset_key=EVENT_DATA,
        check_name=UUID_UNIQUE,
        passed=extra == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"all {total} rows have distinct uuids"
            if not extra
            else f"{duplicated} uuids are stored more than once ({extra} rows too many), in "
            f"{len(hours)} pull hours"
        ),
        metadata={
            "rows_checked": total,
            "duplicated_uuids": duplicated,
            "rows_too_many": extra,
            "rows_with_duplicated_uuid": sum(hours.values()),
            **_listed_hours(hours),
            "duplicated_uuid_sample": dg.MetadataValue.json(
                [{"uuid": uuid, "copies": int(copies)} for uuid, copies, _ in sample]
            ),
        },
    )


def _event_times(
    warehouse: Warehouse,
    dialect: sql.CheckDialect,
    event_data: str,
    start: datetime,
    counts: dict[str, int],
    name: str,
    what: str,
) -> dg.AssetCheckResult:
    total = counts["rows_count"]
    events = counts[name]
    hours: dict[str, int] = {}
    sample: list[dict] = []
    if events:
        condition = sql.event_time_conditions(dialect)[name]
        params = {"start": start} if name == NOT_BEFORE_START else None
        hours = _hour_counts(
            warehouse.query(
                sql.offending_event_hours(dialect, event_data, condition), params
            ).rows()
        )
        sample = warehouse.query(
            sql.offending_event_sample(event_data, condition), params
        ).to_dicts()
    return dg.AssetCheckResult(
        asset_key=EVENT_DATA,
        check_name=name,
        passed=events == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"no event of {total} is timed {what}"
            if not events
            else f"{events} of {total} stored events are timed {what} (kept, not dropped)"
        ),
        metadata={
            "rows_checked": total,
            "events": events,
            **_listed_hours(hours),
            "event_sample": dg.MetadataValue.json(
                [
                    {
                        "uuid": row["uuid"],
                        "event_time": _iso(row["event_time"]),
                        "pulled_at": _iso(row["pulled_at"]),
                        "source_file": row["source_file"],
                    }
                    for row in sample
                ]
            ),
        },
    )


def _rejected_share(warehouse: Warehouse, dialect: sql.CheckDialect) -> dg.AssetCheckResult:
    if not (warehouse.table_exists("rejected_events") and warehouse.table_exists("raw_events")):
        return _nothing_to_check(REJECTED_EVENTS, REJECTED_SHARE, "rejected_events or raw_events")
    rows = warehouse.query(
        sql.rejections_by_hour(
            dialect, warehouse.qualified("raw_events"), warehouse.qualified("rejected_events")
        )
    ).rows()
    above = []
    for hour, rejected, not_in_raw, raw_rows in rows:
        read = int(raw_rows) + int(not_in_raw)
        share = int(rejected) / read
        if share > REJECTED_SHARE_WARN:
            above.append(
                {
                    "pull_hour": _hour_key(hour),
                    "rejected": int(rejected),
                    "read": read,
                    "share": round(share, 4),
                }
            )
    return dg.AssetCheckResult(
        asset_key=REJECTED_EVENTS,
        check_name=REJECTED_SHARE,
        passed=not above,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"no pull hour rejected more than {REJECTED_SHARE_WARN:.0%} of what it read"
            if not above
            else f"{len(above)} pull hours rejected more than {REJECTED_SHARE_WARN:.0%} of what "
            f"they read, the worst {max(hour['share'] for hour in above):.0%}"
        ),
        metadata={
            "threshold": REJECTED_SHARE_WARN,
            "hours_with_rejections": len(rows),
            "hours_above_threshold": len(above),
            "hours_above": dg.MetadataValue.json(above[:LISTED_KEYS]),
        },
    )


@dg.asset_check(
    asset="mau",
    name=DAU_NOT_ABOVE_MAU,
    additional_deps=["dau"],
    pool=WAREHOUSE_POOL,
    description=(
        "No day's dau exceeds the mau of its month, and every day with a dau has a mau. Runs "
        "after mau is recounted, so that a month is never compared before its recount."
    ),
)
def _dau_not_above_mau(warehouse: Warehouse) -> dg.AssetCheckResult:
    key = dg.AssetKey("mau")
    if not (warehouse.table_exists("dau") and warehouse.table_exists("mau")):
        return _nothing_to_check(key, DAU_NOT_ABOVE_MAU, "dau or mau")
    dau, mau = warehouse.qualified("dau"), warehouse.qualified("mau")
    rows = warehouse.query(sql.dau_with_mau(_dialect(warehouse), dau, mau)).to_dicts()
    days = [
        {"event_date": _iso(row["event_date"]), "dau": int(row["dau"]), "mau": _int(row["mau"])}
        for row in rows
        if row["mau"] is None or row["dau"] > row["mau"]
    ]
    checked = len(rows)
    return dg.AssetCheckResult(
        check_name=DAU_NOT_ABOVE_MAU,
        passed=not days,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"all {checked} days have dau <= the mau of their month"
            if not days
            else f"{len(days)} of {checked} days have dau above their month's mau, or no mau"
        ),
        metadata={
            "days_checked": checked,
            "days_failing": len(days),
            "failing_days": dg.MetadataValue.json(days[:LISTED_KEYS]),
        },
    )


@dg.asset_check(
    asset="event_activity",
    name=USERS_NOT_ABOVE_DAU,
    additional_deps=["dau"],
    pool=WAREHOUSE_POOL,
    description=(
        "No (day, event) row of event_activity has more users than that day's dau, and every "
        "day in event_activity has a dau. Runs after both are recounted."
    ),
)
def _users_not_above_dau(warehouse: Warehouse) -> dg.AssetCheckResult:
    key = dg.AssetKey("event_activity")
    if not (warehouse.table_exists("event_activity") and warehouse.table_exists("dau")):
        return _nothing_to_check(key, USERS_NOT_ABOVE_DAU, "event_activity or dau")
    activity = warehouse.qualified("event_activity")
    bad = warehouse.query(sql.users_above_dau(activity, warehouse.qualified("dau")))
    checked = int(bad["rows_count"][0]) if bad.height else _count(warehouse, activity)
    rows = [
        {
            "event_date": _iso(row["event_date"]),
            "event": row["event"],
            "users": int(row["users"]),
            "dau": _int(row["dau"]),
        }
        for row in bad.to_dicts()
    ]
    return dg.AssetCheckResult(
        check_name=USERS_NOT_ABOVE_DAU,
        passed=not rows,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"all {checked} (day, event) rows have users <= the day's dau"
            if not rows
            else f"{len(rows)} of {checked} (day, event) rows have more users than the day's "
            "dau, or no dau"
        ),
        metadata={
            "rows_checked": checked,
            "rows_failing": len(rows),
            "days_failing": len({row["event_date"] for row in rows}),
            "failing_rows": dg.MetadataValue.json(rows[:LISTED_KEYS]),
        },
    )


def _dialect(warehouse: Warehouse) -> sql.CheckDialect:
    return sql.DUCKDB if isinstance(warehouse, DuckDBWarehouse) else sql.BIGQUERY


def _nothing_to_check(key: dg.AssetKey, name: str, tables: str) -> dg.AssetCheckResult:
    """Passes: no stored row breaks the rule when there are no rows, and the result says so."""
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=True,
        description=f"nothing to check: {tables} not materialized yet",
        metadata={"rows_checked": 0},
    )


def _count(warehouse: Warehouse, table: str) -> int:
    return int(warehouse.query(sql.row_count(table)).item())


def _hour_counts(rows: Sequence[tuple]) -> dict[str, int]:
    return {_hour_key(hour): int(count) for hour, count in rows}


def _listed_hours(hours: dict[str, int]) -> dict:
    """How many pull hours (event_data partitions) hold offending rows, and the first ones."""
    return {
        "pull_hours": len(hours),
        "first_pull_hours": dg.MetadataValue.json(
            [{"pull_hour": hour, "rows": rows} for hour, rows in list(hours.items())[:LISTED_KEYS]]
        ),
    }


def _hour_key(value: datetime) -> str:
    """The hourly partition key of a truncated pull time (naive values are UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d-%H:00")


def _iso(value: datetime | date) -> str:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).isoformat()
    return value.isoformat()


def _int(value) -> int | None:
    return None if value is None else int(value)
