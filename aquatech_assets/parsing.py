"""Pull files to typed event rows, with every record that cannot be used kept with a reason.

DuckDB's JSON reader does the work: it reads many files per call, keeps each record as JSON
text, and the fields are then pulled out with fixed casts. No column's type is ever inferred
from the data, so an hour of odd records cannot change the table's schema. When a batch fails,
the files are read one at a time to find the broken ones; only those are set aside.
"""

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import ijson
import polars as pl

from aquatech_assets import schemas
from aquatech_assets.pulls import PullFile

BOM = b"\xef\xbb\xbf"
RAW_PREVIEW_CHARS = 2000
_PEEK_BYTES = 65536


@dataclass(frozen=True)
class RawPulls:
    """What a set of pull files holds: one row a record, plus the files that could not be read."""

    records: pl.DataFrame
    rejected_files: pl.DataFrame
    files_read: int


@dataclass(frozen=True)
class ParsedEvents:
    events: pl.DataFrame
    rejected: pl.DataFrame
    duplicates_dropped: int


def parse_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for parsing; UTC so that a zone-less timestamp is read as UTC."""
    connection = duckdb.connect(":memory:")
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def read_pull_files(files: Sequence[PullFile]) -> RawPulls:
    """Every record of the files, in file order, as JSON text; broken files become rejections.

    A JSON array (what the device writes), newline-delimited objects and a single object are all
    read, with or without a UTF-8 byte order mark.
    """
    rejected: list[dict] = []
    by_format: dict[str, list[PullFile]] = {"array": [], "unstructured": []}
    for pull in files:
        shape = _json_shape(pull)
        if shape in by_format:
            by_format[shape].append(pull)
        else:
            rejected.append(_file_rejection(pull, shape))

    frames = []
    with parse_connection() as connection:
        for json_format, group in by_format.items():
            if group:
                frames.append(_read_group(connection, json_format, group, rejected))
    records = pl.concat(frames) if frames else schemas.RAW_EVENTS.to_frame()
    records = schemas.conform(records, schemas.RAW_EVENTS).sort(
        "pulled_at", "source_file", "record_index"
    )
    rejected_files = schemas.conform(
        pl.DataFrame(rejected, schema=schemas.REJECTED_EVENTS), schemas.REJECTED_EVENTS
    )
    return RawPulls(records=records, rejected_files=rejected_files, files_read=len(files))


def parse_events(records: pl.DataFrame) -> ParsedEvents:
    """Typed events from raw records, first delivery of each uuid, and the records rejected.

    Within the batch the first delivery is the earliest pull, then the earliest position in the
    file; the warehouse applies the same rule against earlier and later pulls.
    """
    with parse_connection() as connection:
        connection.register("raw_records", records.to_arrow())
        connection.execute(f"CREATE TEMP TABLE extracted AS {_EXTRACT_SQL}")
        valid = connection.sql("SELECT count(*) FROM extracted WHERE reason IS NULL")
        valid_count = valid.fetchall()[0][0]
        events = pl.from_arrow(
            connection.sql(
                f"""
                SELECT {", ".join(schemas.EVENT_DATA.names())} FROM extracted
                WHERE reason IS NULL
                QUALIFY row_number() OVER (
                    PARTITION BY uuid ORDER BY pulled_at, source_file, record_index
                ) = 1
                ORDER BY pulled_at, source_file, record_index
                """
            ).to_arrow_table()
        )
        rejected = pl.from_arrow(
            connection.sql(
                """
                SELECT source_file, reason, raw, pulled_at, record_index FROM extracted
                WHERE reason IS NOT NULL
                ORDER BY pulled_at, source_file, record_index
                """
            ).to_arrow_table()
        )
    return ParsedEvents(
        events=schemas.conform(events, schemas.EVENT_DATA),
        rejected=schemas.conform(rejected, schemas.REJECTED_EVENTS),
        duplicates_dropped=valid_count - events.height,
    )


def _geoip(field: str, cast: str | None = None) -> str:
    value = f"""j->>'$."$geoip_{field}"'"""
    expression = f"try_cast({value} AS {cast})" if cast else value
    return f"{expression} AS geoip_{field}"


_GEOIP_COLUMNS = ",\n".join(
    [_geoip(field) for field in schemas.GEOIP_TEXT_FIELDS]
    + [_geoip(field, "DOUBLE") for field in schemas.GEOIP_NUMBER_FIELDS]
)

# Numbers in `timestamp` are epoch seconds, or epoch milliseconds when too large to be seconds.
_FIELDS_SQL = f"""
SELECT
    source_file, pulled_at, record_index, raw,
    json_type(j) AS shape,
    nullif(trim(j->>'$.uuid'), '') AS uuid,
    nullif(trim(coalesce(j->>'$.distinct_id', j->>'$.properties.distinct_id')), '')
        AS distinct_id,
    j->>'$.event' AS event,
    json_type(j->'$.timestamp') AS timestamp_type,
    j->>'$.timestamp' AS timestamp_text,
    CASE json_type(j->'$.timestamp')
        WHEN 'VARCHAR' THEN try_cast(j->>'$.timestamp' AS TIMESTAMPTZ)
        WHEN 'UBIGINT' THEN try(to_timestamp(CAST(j->>'$.timestamp' AS DOUBLE)))
        WHEN 'BIGINT' THEN try(to_timestamp(CAST(j->>'$.timestamp' AS DOUBLE)))
        WHEN 'DOUBLE' THEN try(to_timestamp(CAST(j->>'$.timestamp' AS DOUBLE)))
    END AS parsed_time,
    CASE WHEN coalesce(json_type(j->'$.elements'), 'NULL') <> 'NULL'
        THEN CAST(j->'$.elements' AS VARCHAR) END AS elements,
    CASE WHEN coalesce(json_type(j->'$.properties'), 'NULL') <> 'NULL'
        THEN CAST(j->'$.properties' AS VARCHAR) END AS properties,
    {_GEOIP_COLUMNS}
FROM (SELECT *, CAST(raw AS JSON) AS j FROM raw_records)
"""

_EXTRACT_SQL = f"""
SELECT *,
    CASE WHEN timestamp_type IN ('UBIGINT', 'BIGINT', 'DOUBLE')
            AND CAST(timestamp_text AS DOUBLE) > 1e11
        THEN try(to_timestamp(CAST(timestamp_text AS DOUBLE) / 1000))
        ELSE parsed_time END AS event_time,
    CASE
        WHEN shape <> 'OBJECT' THEN 'record is not a JSON object but ' || CASE shape
            WHEN 'ARRAY' THEN 'an array' WHEN 'VARCHAR' THEN 'a string'
            WHEN 'BOOLEAN' THEN 'a boolean' WHEN 'NULL' THEN 'null' ELSE 'a number' END
        WHEN uuid IS NULL THEN 'missing uuid'
        WHEN distinct_id IS NULL THEN 'missing distinct_id'
        WHEN coalesce(timestamp_type, 'NULL') = 'NULL' THEN 'missing timestamp'
        WHEN parsed_time IS NULL THEN 'unreadable timestamp ' || left(timestamp_text, 100)
    END AS reason
FROM ({_FIELDS_SQL})
"""


def _json_shape(pull: PullFile) -> str:
    """'array' or 'unstructured' (objects) from the first byte that is not blank, else a reason."""
    with pull.path.open("rb") as handle:
        head = handle.read(_PEEK_BYTES)
        if head.startswith(BOM):
            head = head[len(BOM) :]
        while head and not head.strip():
            head = handle.read(_PEEK_BYTES)
    first = head.lstrip()[:1]
    if not first:
        return "empty file: no JSON value in it"
    if first == b"[":
        return "array"
    if first == b"{":
        return "unstructured"
    return f"not JSON: a pull starts with '[' or '{{', this one with {first!r}"


def _read_group(
    connection: duckdb.DuckDBPyConnection,
    json_format: str,
    group: list[PullFile],
    rejected: list[dict],
) -> pl.DataFrame:
    try:
        return _read_json(connection, json_format, group)
    except duckdb.Error as error:
        if len(group) == 1:
            problem = _first_line(error).replace(str(group[0].path), group[0].source_file)
            return _salvage(json_format, group[0], problem, rejected)
    return pl.concat([_read_group(connection, json_format, [pull], rejected) for pull in group])


def _read_json(
    connection: duckdb.DuckDBPyConnection, json_format: str, group: list[PullFile]
) -> pl.DataFrame:
    # json_format is one of this module's two literals, never text from outside.
    files = pl.DataFrame(
        {
            "filename": [str(pull.path) for pull in group],
            "source_file": [pull.source_file for pull in group],
            "pulled_at": [pull.pulled_at for pull in group],
        },
        schema={"filename": pl.String, "source_file": pl.String, "pulled_at": schemas.UTC_TIME},
    )
    connection.register("pull_files", files.to_arrow())
    result = connection.sql(
        f"""
        SELECT f.source_file, f.pulled_at,
            row_number() OVER (PARTITION BY r.filename ORDER BY r.ordinality) - 1
                AS record_index,
            coalesce(CAST(r.raw AS VARCHAR), 'null') AS raw
        FROM read_json(
            $files, format = '{json_format}', records = false,
            columns = {{'raw': 'JSON'}}, filename = true
        ) WITH ORDINALITY AS r
        JOIN pull_files AS f USING (filename)
        """,
        params={"files": files["filename"].to_list()},
    )
    frame = pl.from_arrow(result.to_arrow_table())
    connection.unregister("pull_files")
    return frame


def _salvage(json_format: str, pull: PullFile, problem: str, rejected: list[dict]) -> pl.DataFrame:
    """Reads a file DuckDB refused with ijson, value by value.

    DuckDB refuses whole files for some shapes that are still JSON (a bare number on a line of
    newline-delimited objects); those are read in full and not rejected. A file that really
    breaks keeps the complete records in front of the break and is rejected with DuckDB's reason.
    """
    data = pull.path.read_bytes()
    if data.startswith(BOM):
        data = data[len(BOM) :]
    prefix = "item" if json_format == "array" else ""
    kept: list[str] = []
    records = ijson.items(io.BytesIO(data), prefix, multiple_values=True, use_float=True)
    try:
        for record in records:
            kept.append(json.dumps(record, ensure_ascii=False))
    except Exception:  # ijson raises several unrelated types; DuckDB's message says more
        reason = f"file does not parse: {problem}"
        if kept:
            reason += f"; the {len(kept)} complete records before the break were kept"
        rejected.append(_file_rejection(pull, reason, data))
    return pl.DataFrame(
        {
            "source_file": [pull.source_file] * len(kept),
            "pulled_at": [pull.pulled_at] * len(kept),
            "record_index": list(range(len(kept))),
            "raw": kept,
        },
        schema=schemas.RAW_EVENTS,
    )


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0].removeprefix("Invalid Input Error: ")


def _file_rejection(pull: PullFile, reason: str, data: bytes | None = None) -> dict:
    if data is None:
        with pull.path.open("rb") as handle:
            data = handle.read(RAW_PREVIEW_CHARS * 4)
    return {
        "source_file": pull.source_file,
        "reason": reason,
        "raw": data.decode("utf-8", errors="replace")[:RAW_PREVIEW_CHARS],
        "pulled_at": pull.pulled_at,
        "record_index": None,
    }
