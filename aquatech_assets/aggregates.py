"""The one definition of each aggregate over event_data; only the dialect varies by warehouse.

Every aggregate reads all of event_data for its time range, whichever pull carried the rows, so
a record of any lateness counts once it is stored. The range is bound as parameters on
`event_time` (an instant), and the day or month is taken in UTC, so the answer does not depend on
the machine's or the session's time zone.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    event_date: str
    event_month: str
    start: str
    end: str


DUCKDB = Dialect(
    event_date="CAST(timezone('UTC', event_time) AS DATE)",
    event_month="CAST(date_trunc('month', timezone('UTC', event_time)) AS DATE)",
    start="$start",
    end="$end",
)

BIGQUERY = Dialect(
    event_date="DATE(event_time, 'UTC')",
    event_month="DATE_TRUNC(DATE(event_time, 'UTC'), MONTH)",
    start="@start",
    end="@end",
)

_SELECTS = {
    "dau": "{event_date} AS event_date, COUNT(DISTINCT distinct_id) AS dau",
    "mau": "{event_month} AS event_month, COUNT(DISTINCT distinct_id) AS mau",
    "event_activity": (
        "{event_date} AS event_date, event, COUNT(DISTINCT uuid) AS events, "
        "COUNT(DISTINCT distinct_id) AS users"
    ),
}
_GROUP_BY = {"dau": "1", "mau": "1", "event_activity": "1, 2"}

AGGREGATES = tuple(_SELECTS)


def aggregate_sql(name: str, dialect: Dialect, event_data: str) -> str:
    """SELECT for aggregate `name` over the table `event_data` (an already checked name)."""
    if name not in _SELECTS:
        raise ValueError(f"unknown aggregate {name!r}; known: {', '.join(AGGREGATES)}")
    select = _SELECTS[name].format(event_date=dialect.event_date, event_month=dialect.event_month)
    return (
        f"SELECT {select} FROM {event_data} "
        f"WHERE event_time >= {dialect.start} AND event_time < {dialect.end} "
        f"GROUP BY {_GROUP_BY[name]} ORDER BY {_GROUP_BY[name]}"
    )
