"""The column types of every table, fixed in code.

Each asset casts its output to one of these before writing, so a column's type never depends on
which records happened to be in a batch (an hour of nulls must not turn a column into text).
The IO manager adds `dl_updated_at` to every table.
"""

import dagster as dg
import polars as pl

UTC_TIME = pl.Datetime("us", "UTC")

GEOIP_TEXT_FIELDS = (
    "city_name",
    "country_name",
    "country_code",
    "continent_name",
    "continent_code",
    "time_zone",
    "subdivision_1_code",
    "subdivision_1_name",
)
GEOIP_NUMBER_FIELDS = ("latitude", "longitude")

RAW_EVENTS = pl.Schema(
    {
        "source_file": pl.String,
        "pulled_at": UTC_TIME,
        "record_index": pl.Int64,
        "raw": pl.String,
    }
)

EVENT_DATA = pl.Schema(
    {
        "uuid": pl.String,
        "distinct_id": pl.String,
        "event": pl.String,
        "event_time": UTC_TIME,
        "elements": pl.String,
        "geoip_city_name": pl.String,
        "geoip_country_name": pl.String,
        "geoip_country_code": pl.String,
        "geoip_continent_name": pl.String,
        "geoip_continent_code": pl.String,
        "geoip_latitude": pl.Float64,
        "geoip_longitude": pl.Float64,
        "geoip_time_zone": pl.String,
        "geoip_subdivision_1_code": pl.String,
        "geoip_subdivision_1_name": pl.String,
        "properties": pl.String,
        "source_file": pl.String,
        "pulled_at": UTC_TIME,
        "record_index": pl.Int64,
    }
)

REJECTED_EVENTS = pl.Schema(
    {
        "source_file": pl.String,
        "reason": pl.String,
        "raw": pl.String,
        "pulled_at": UTC_TIME,
        "record_index": pl.Int64,
    }
)

DAU = pl.Schema({"event_date": pl.Date, "dau": pl.Int64})
MAU = pl.Schema({"event_month": pl.Date, "mau": pl.Int64})
EVENT_ACTIVITY = pl.Schema(
    {"event_date": pl.Date, "event": pl.String, "events": pl.Int64, "users": pl.Int64}
)


def conform(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """The frame with exactly the schema's columns, in its order and types."""
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())


_TYPE_NAMES = {
    pl.String: "text",
    pl.Int64: "integer",
    pl.Float64: "double",
    pl.Date: "date",
    UTC_TIME: "timestamp (UTC)",
}


def column_schema(schema: pl.Schema) -> dg.TableSchema:
    """The table's columns for the UI, with the `dl_updated_at` the IO manager adds."""
    columns = [dg.TableColumn(name, _TYPE_NAMES[dtype]) for name, dtype in schema.items()]
    return dg.TableSchema(columns=[*columns, dg.TableColumn("dl_updated_at", "timestamp (UTC)")])
