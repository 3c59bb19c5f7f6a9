"""The SQL of the asset checks, one definition each; only the dialect varies by warehouse.

The queries of event_data, raw_events and rejected_events take `windowed`: true, they read only
the rows of a window of pull hours (`pulled_at` in [`window_start`, `window_end`), bound
parameters), which is what an ingest run stored; false, the whole table. A windowed uuid query
still looks for the window's uuids in the whole of event_data, so a uuid stored again in
another hour is found. The queries of the aggregates always read the whole (small) tables.
Each returns few rows: counts grouped by pull hour or day, or a sample with a LIMIT. Table names
are passed in already checked and qualified.
"""

from dataclasses import dataclass

# How many offending rows (uuids, events) a query returns as examples for the check's metadata.
SAMPLE_ROWS = 10


@dataclass(frozen=True)
class CheckDialect:
    pull_hour: str
    month_of: str
    after_pull: str
    parameter: str


DUCKDB = CheckDialect(
    pull_hour="date_trunc('hour', timezone('UTC', {column}))",
    month_of="CAST(date_trunc('month', {column}) AS DATE)",
    after_pull="event_time >= pulled_at + INTERVAL 1 SECOND",
    parameter="${name}",
)

BIGQUERY = CheckDialect(
    pull_hour="TIMESTAMP_TRUNC({column}, HOUR, 'UTC')",
    month_of="DATE_TRUNC({column}, MONTH)",
    after_pull="event_time >= TIMESTAMP_ADD(pulled_at, INTERVAL 1 SECOND)",
    parameter="@{name}",
)

# By `Warehouse.dialect`.
DIALECTS = {"duckdb": DUCKDB, "bigquery": BIGQUERY}


# The bound parameters of a window of pull hours, start included and end excluded.
WINDOW_START = "window_start"
WINDOW_END = "window_end"


def _hour(dialect: CheckDialect, column: str) -> str:
    return dialect.pull_hour.format(column=column)


def in_window(dialect: CheckDialect, column: str = "pulled_at") -> str:
    """The column's rows in the window of pull hours."""
    start = dialect.parameter.format(name=WINDOW_START)
    end = dialect.parameter.format(name=WINDOW_END)
    return f"{column} >= {start} AND {column} < {end}"


def _where(*conditions: str | None) -> str:
    kept = [f"({condition})" for condition in conditions if condition]
    return f" WHERE {' AND '.join(kept)}" if kept else ""


def _duplicated_uuids(dialect: CheckDialect, event_data: str, windowed: bool) -> str:
    """Every uuid stored more than once, and how often; windowed, only the window's uuids
    (still counted over the whole table: a semi-join, not a scan of the window alone)."""
    window_uuids = (
        f"uuid IN (SELECT uuid FROM {event_data}{_where(in_window(dialect))})" if windowed else None
    )
    return (
        f"SELECT uuid, COUNT(*) AS copies FROM {event_data}{_where(window_uuids)} "
        "GROUP BY uuid HAVING COUNT(*) > 1"
    )


def duplicated_uuid_hours(dialect: CheckDialect, event_data: str, windowed: bool) -> str:
    """Per pull hour (any hour, also outside a window), the rows of the duplicated uuids."""
    return (
        f"SELECT {_hour(dialect, 'pulled_at')} AS pull_hour, COUNT(*) AS rows_count "
        f"FROM {event_data} WHERE uuid IN ("
        f"SELECT uuid FROM ({_duplicated_uuids(dialect, event_data, windowed)}) AS duplicated) "
        "GROUP BY 1 ORDER BY 1"
    )


def duplicated_uuid_sample(dialect: CheckDialect, event_data: str, windowed: bool) -> str:
    """The first duplicated uuids and how often each is stored; on every row, how many uuids
    are duplicated and how many rows hold them."""
    return (
        "SELECT uuid, copies, COUNT(*) OVER () AS duplicated_uuids, "
        "SUM(copies) OVER () AS rows_with_duplicated_uuid FROM ("
        f"{_duplicated_uuids(dialect, event_data, windowed)}"
        f") AS duplicated ORDER BY uuid LIMIT {SAMPLE_ROWS}"
    )


def event_time_conditions(dialect: CheckDialect) -> dict[str, str]:
    """Where an event's time cannot be right, by check name: before the first partition, or
    after its pull. The pull time is the file's name, stamped to the second, so an event within
    that second is not after its pull. `start` is a bound parameter.
    """
    return {
        "event_time_not_before_start_date": (
            f"event_time < {dialect.parameter.format(name='start')}"
        ),
        "event_time_not_after_pull": dialect.after_pull,
    }


def event_data_summary(dialect: CheckDialect, event_data: str, windowed: bool) -> str:
    """Rows, distinct uuids, and rows meeting each event-time condition, in one scan (of the
    window's rows when windowed; its distinct uuids then say nothing of other hours)."""
    flagged = ", ".join(
        f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) AS {name}"
        for name, condition in event_time_conditions(dialect).items()
    )
    return (
        f"SELECT COUNT(*) AS rows_count, COUNT(DISTINCT uuid) AS uuids, {flagged} "
        f"FROM {event_data}{_where(in_window(dialect) if windowed else None)}"
    )


def offending_event_hours(
    dialect: CheckDialect, event_data: str, condition: str, windowed: bool
) -> str:
    where = _where(condition, in_window(dialect) if windowed else None)
    return (
        f"SELECT {_hour(dialect, 'pulled_at')} AS pull_hour, COUNT(*) AS rows_count "
        f"FROM {event_data}{where} GROUP BY 1 ORDER BY 1"
    )


def offending_event_sample(
    dialect: CheckDialect, event_data: str, condition: str, windowed: bool
) -> str:
    where = _where(condition, in_window(dialect) if windowed else None)
    return (
        f"SELECT uuid, event_time, pulled_at, source_file FROM {event_data}{where} "
        f"ORDER BY pulled_at, uuid LIMIT {SAMPLE_ROWS}"
    )


def rejections_by_hour(
    dialect: CheckDialect, raw_events: str, rejected_events: str, windowed: bool
) -> str:
    """Per pull hour with rejections: rows rejected, of those not in raw_events, and raw rows.

    A rejection with no raw_events row (a file that did not parse, a line of newline-delimited
    JSON that is not JSON) is something read that raw_events does not count, so what the hour
    read is its raw_events rows plus those. Windowed, both tables are read for the window only.
    """
    window = _where(in_window(dialect) if windowed else None)
    return f"""
        WITH raw_rows AS (
            SELECT pulled_at, source_file, record_index FROM {raw_events}{window}
        ),
        rejected AS (
            SELECT {_hour(dialect, "x.pulled_at")} AS pull_hour, COUNT(*) AS rejected,
                SUM(CASE WHEN r.pulled_at IS NULL THEN 1 ELSE 0 END) AS not_in_raw
            FROM (SELECT pulled_at, source_file, record_index FROM {rejected_events}{window})
                AS x
            LEFT JOIN raw_rows AS r
                ON r.pulled_at = x.pulled_at AND r.source_file = x.source_file
                AND r.record_index = x.record_index
            GROUP BY 1
        ),
        raw AS (
            SELECT {_hour(dialect, "pulled_at")} AS pull_hour, COUNT(*) AS raw_rows
            FROM raw_rows GROUP BY 1
        )
        SELECT rejected.pull_hour, rejected.rejected, rejected.not_in_raw,
            COALESCE(raw.raw_rows, 0) AS raw_rows
        FROM rejected LEFT JOIN raw ON raw.pull_hour = rejected.pull_hour
        ORDER BY 1
    """


def dau_with_mau(dialect: CheckDialect, dau: str, mau: str) -> str:
    """Every day's dau beside the mau of its month (null when the month has no row).

    One row a day, so the whole table comes back; the check compares them.
    """
    month = dialect.month_of.format(column="d.event_date")
    return (
        f"SELECT d.event_date, d.dau, m.mau FROM {dau} AS d "
        f"LEFT JOIN {mau} AS m ON m.event_month = {month} ORDER BY d.event_date"
    )


def users_above_dau(event_activity: str, dau: str) -> str:
    """(day, event) rows with more users than the day's dau, or with no dau row; and how many
    rows event_activity has, on every row."""
    return (
        f"SELECT a.event_date, a.event, a.users, d.dau, "
        f"(SELECT COUNT(*) FROM {event_activity}) AS rows_count FROM {event_activity} AS a "
        f"LEFT JOIN {dau} AS d ON d.event_date = a.event_date "
        "WHERE d.dau IS NULL OR a.users > d.dau ORDER BY a.event_date, a.event"
    )


def row_count(table: str) -> str:
    return f"SELECT COUNT(*) AS rows_count FROM {table}"
