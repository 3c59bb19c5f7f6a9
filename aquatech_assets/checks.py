"""Asset checks: what must hold across the tables, and what is worth a warning.

The checks are not partitioned: in dagster 1.13 a partitioned check run inside a range run (a
backfill, a week of pull hours) records one result with no partition, so per-partition results
would be missing exactly where most data lands. What a result covers is its `scope` instead,
in its metadata and at the head of its description:

- The checks of event_data and rejected_events, inside a run aimed at pull hours (one hourly
  key in `dagster/partition`, or a range in the `RANGE_START`/`RANGE_END` tags), read only the
  rows of those hours (`pulled_at` in the window), so three of them cost what the run's pulls
  cost, not what the history costs. uuid_unique looks for the window's uuids in the whole of
  event_data, so a uuid stored again in another hour is still found: a semi-join that scans
  the uuid column, so it still grows with the history, but about 7x more slowly than counting
  every uuid (on DuckDB 0.016 s against 0.10-0.13 s per million stored rows). A problem stored
  only in other hours is not reported by the run: the run that stored it reported it.
- Run with no partition (the UI's *Execute checks*), or in a run aimed at other partitions,
  they read the whole table, as do the checks of the aggregates (one row a day) always.

The offending partitions and rows are in the result's metadata (how many, and the first few).
Dagster 1.13 still plans an unpartitioned check once per partition of a partitioned run; those
planned rows never get a result and the check's history lists them as skipped (test_checks pins
this), while its status is the one result of the run.

The checks of event_data and rejected_events run at the end of every ingest run; those of
the aggregates in the run that recounts them, after both tables they compare. None blocks:
the rows are already stored when a check runs, and a check that failed a run would fail every
later run too, until someone repairs the table. An invariant of the pipeline that is broken
(a uuid stored twice, a day with more users than its month) fails with ERROR; doubtful input
(a mostly rejected hour, an event time the device cannot have meant) warns.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import dagster as dg

from aquatech_assets import check_queries as sql
from aquatech_assets.assets import WAREHOUSE_POOL
from aquatech_assets.partitions import RANGE_END, RANGE_START, Partitions
from aquatech_assets.resources import Warehouse

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
# The run tag of a run aimed at one partition (dagster's PARTITION_NAME_TAG).
PARTITION_TAG = "dagster/partition"
WHOLE_TABLE = "whole table"
# Appended to each ingest check's description: what its results cover.
_SCOPED = (
    " In a run of pull hours (an ingest run) it covers those hours' rows only; from Execute "
    "checks, the whole table. Each result's `scope` says which."
)


@dataclass(frozen=True)
class Scope:
    """What a check reads: the rows of a window of pull hours, or (no window) the whole table."""

    start: datetime | None = None
    end: datetime | None = None

    @property
    def windowed(self) -> bool:
        return self.start is not None

    @property
    def label(self) -> str:
        if self.start is None or self.end is None:
            return WHOLE_TABLE
        return f"pull hours {_minute(self.start)} .. {_minute(self.end)} UTC"

    def params(self, **others) -> dict | None:
        """The bound parameters of a query of this scope, beside the query's own."""
        if self.windowed:
            others |= {sql.WINDOW_START: self.start, sql.WINDOW_END: self.end}
        return others or None

    def describe(self, text: str) -> str:
        return f"{self.label}: {text}"


def run_scope(tags: Mapping[str, str], hourly: dg.TimeWindowPartitionsDefinition) -> Scope:
    """The window of pull hours a run is aimed at, from its tags; the whole table when it is
    aimed at no partition, or at keys that are not pull hours."""
    if RANGE_START in tags and RANGE_END in tags:
        first, last = tags[RANGE_START], tags[RANGE_END]
    elif PARTITION_TAG in tags:
        first = last = tags[PARTITION_TAG]
    else:
        return Scope()
    try:
        start = hourly.time_window_for_partition_key(first).start
        end = hourly.time_window_for_partition_key(last).end
    except ValueError:
        return Scope()
    return Scope(start.astimezone(UTC), end.astimezone(UTC)) if start < end else Scope()


def build_checks(partitions: Partitions) -> list[dg.AssetChecksDefinition]:
    return [_build_ingest_checks(partitions), _dau_not_above_mau, _users_not_above_dau]


def _build_ingest_checks(partitions: Partitions) -> dg.AssetChecksDefinition:
    start = partitions.daily.start
    hourly = partitions.hourly

    @dg.multi_asset_check(
        name="ingest_checks",
        specs=[
            dg.AssetCheckSpec(
                UUID_UNIQUE,
                asset=EVENT_DATA,
                description=(
                    "No uuid is stored twice in event_data, in one pull hour or across. In a run "
                    "of pull hours (an ingest run) it checks the uuids those hours stored, "
                    "against the whole table; from Execute checks, every uuid. Each result's "
                    "`scope` says which."
                ),
            ),
            dg.AssetCheckSpec(
                NOT_BEFORE_START,
                asset=EVENT_DATA,
                description=(
                    "Warns of stored events timed before AQUATECH_START_DATE: they are kept but "
                    "no dau, mau or event_activity partition counts them." + _SCOPED
                ),
            ),
            dg.AssetCheckSpec(
                NOT_AFTER_PULL,
                asset=EVENT_DATA,
                description=(
                    "Warns of stored events timed after the pull that delivered them (a device "
                    "clock ahead): they are kept and counted on the day they claim." + _SCOPED
                ),
            ),
            dg.AssetCheckSpec(
                REJECTED_SHARE,
                asset=REJECTED_EVENTS,
                description=(
                    f"Warns of pull hours that rejected more than {REJECTED_SHARE_WARN:.0%} of "
                    "what they read (records, and files that gave none)." + _SCOPED
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

        Aimed at pull hours, the checks read those hours' rows (see the module's docstring).
        One query counts what all three event_data checks need; the queries naming the
        offending partitions and rows run only for a check that does not pass.
        """
        selected = {key.name for key in context.selected_asset_check_keys}
        dialect = _dialect(warehouse)
        scope = run_scope(context.run.tags, hourly)
        event_checks = sorted(selected - {REJECTED_SHARE})
        if event_checks and not warehouse.table_exists("event_data"):
            for name in event_checks:
                yield _nothing_to_check(EVENT_DATA, name, "event_data", scope)
        elif event_checks:
            event_data = warehouse.qualified("event_data")
            summary = warehouse.query(
                sql.event_data_summary(dialect, event_data, scope.windowed),
                scope.params(start=start),
            ).row(0, named=True)
            counts = {name: int(value or 0) for name, value in summary.items()}
            if UUID_UNIQUE in selected:
                yield _uuid_unique(warehouse, dialect, event_data, counts, scope)
            for name, what in (
                (NOT_BEFORE_START, f"before {start:%Y-%m-%d}"),
                (NOT_AFTER_PULL, "after their pull"),
            ):
                if name in selected:
                    yield _event_times(
                        warehouse, dialect, event_data, start, counts, name, what, scope
                    )
        if REJECTED_SHARE in selected:
            yield _rejected_share(warehouse, dialect, scope)

    return ingest_checks


def _uuid_unique(
    warehouse: Warehouse,
    dialect: sql.CheckDialect,
    event_data: str,
    counts: dict[str, int],
    scope: Scope,
) -> dg.AssetCheckResult:
    """Whole table: the summary's distinct uuids tell whether any is stored twice, and the
    costlier queries run only then. Windowed, the window's uuids are looked up in the whole
    table every time (the window alone cannot tell)."""
    total = counts["rows_count"]
    hours: dict[str, int] = {}
    sample: list[tuple] = []
    if total and (scope.windowed or total > counts["uuids"]):
        sample = warehouse.query(
            sql.duplicated_uuid_sample(dialect, event_data, scope.windowed), scope.params()
        ).rows()
    if sample:
        hours = _hour_counts(
            warehouse.query(
                sql.duplicated_uuid_hours(dialect, event_data, scope.windowed), scope.params()
            ).rows()
        )
    duplicated = int(sample[0][2]) if sample else 0
    extra = int(sample[0][3]) - duplicated if sample else 0
    if not extra:
        text = (
            f"all {total} rows have uuids stored once in event_data"
            if scope.windowed
            else f"all {total} rows have distinct uuids"
        )
    else:
        stored = " in these pull hours" if scope.windowed else ""
        text = (
            f"{duplicated} uuids{stored} are stored more than once ({extra} rows too many), in "
            f"{len(hours)} pull hours"
        )
    return dg.AssetCheckResult(
        asset_key=EVENT_DATA,
        check_name=UUID_UNIQUE,
        passed=extra == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=scope.describe(text),
        metadata={
            "scope": scope.label,
            "rows_checked": total,
            "duplicated_uuids": duplicated,
            "rows_too_many": extra,
            "rows_with_duplicated_uuid": sum(hours.values()),
            **_listed_hours(hours),
            "duplicated_uuid_sample": dg.MetadataValue.json(
                [{"uuid": uuid, "copies": int(copies)} for uuid, copies, *_ in sample]
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
    scope: Scope,
) -> dg.AssetCheckResult:
    total = counts["rows_count"]
    events = counts[name]
    hours: dict[str, int] = {}
    sample: list[dict] = []
    if events:
        condition = sql.event_time_conditions(dialect)[name]
        params = scope.params(start=start) if name == NOT_BEFORE_START else scope.params()
        hours = _hour_counts(
            warehouse.query(
                sql.offending_event_hours(dialect, event_data, condition, scope.windowed), params
            ).rows()
        )
        sample = warehouse.query(
            sql.offending_event_sample(dialect, event_data, condition, scope.windowed), params
        ).to_dicts()
    return dg.AssetCheckResult(
        asset_key=EVENT_DATA,
        check_name=name,
        passed=events == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=scope.describe(
            f"no event of {total} is timed {what}"
            if not events
            else f"{events} of {total} stored events are timed {what} (kept, not dropped)"
        ),
        metadata={
            "scope": scope.label,
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


def _rejected_share(
    warehouse: Warehouse, dialect: sql.CheckDialect, scope: Scope
) -> dg.AssetCheckResult:
    if not (warehouse.table_exists("rejected_events") and warehouse.table_exists("raw_events")):
        return _nothing_to_check(
            REJECTED_EVENTS, REJECTED_SHARE, "rejected_events or raw_events", scope
        )
    rows = warehouse.query(
        sql.rejections_by_hour(
            dialect,
            warehouse.qualified("raw_events"),
            warehouse.qualified("rejected_events"),
            scope.windowed,
        ),
        scope.params(),
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
        description=scope.describe(
            f"no pull hour rejected more than {REJECTED_SHARE_WARN:.0%} of what it read"
            if not above
            else f"{len(above)} pull hours rejected more than {REJECTED_SHARE_WARN:.0%} of what "
            f"they read, the worst {max(hour['share'] for hour in above):.0%}"
        ),
        metadata={
            "scope": scope.label,
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
        "after mau is recounted, so that a month is never compared before its recount. Reads "
        "the whole of dau and mau (one row a day) in every run."
    ),
)
def _dau_not_above_mau(warehouse: Warehouse) -> dg.AssetCheckResult:
    key = dg.AssetKey("mau")
    if not (warehouse.table_exists("dau") and warehouse.table_exists("mau")):
        return _nothing_to_check(key, DAU_NOT_ABOVE_MAU, "dau or mau", Scope())
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
            "scope": WHOLE_TABLE,
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
        "day in event_activity has a dau. Runs after both are recounted. Reads the whole of "
        "event_activity and dau (a few rows a day) in every run."
    ),
)
def _users_not_above_dau(warehouse: Warehouse) -> dg.AssetCheckResult:
    key = dg.AssetKey("event_activity")
    if not (warehouse.table_exists("event_activity") and warehouse.table_exists("dau")):
        return _nothing_to_check(key, USERS_NOT_ABOVE_DAU, "event_activity or dau", Scope())
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
            "scope": WHOLE_TABLE,
            "rows_checked": checked,
            "rows_failing": len(rows),
            "days_failing": len({row["event_date"] for row in rows}),
            "failing_rows": dg.MetadataValue.json(rows[:LISTED_KEYS]),
        },
    )


def _dialect(warehouse: Warehouse) -> sql.CheckDialect:
    return sql.DIALECTS[warehouse.dialect]


def _nothing_to_check(
    key: dg.AssetKey, name: str, tables: str, scope: Scope
) -> dg.AssetCheckResult:
    """Passes: no stored row breaks the rule when there are no rows, and the result says so."""
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=True,
        description=f"nothing to check: {tables} not materialized yet",
        metadata={"scope": scope.label, "rows_checked": 0},
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


def _minute(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


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
