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
    """What a set of pull files holds: one row a record, plus what could not be read.

    `rejected` has a row for each file that could not be read (`record_index` null) and for
    each line of newline-delimited JSON that did not parse.
    """

    records: pl.DataFrame
    rejected: pl.DataFrame
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
    rejected = schemas.conform(
        pl.DataFrame(rejected, schema=schemas.REJECTED_EVENTS), schemas.REJECTED_EVENTS
    )
    return RawPulls(records=records, rejected=rejected, files_read=len(files))


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

_NUMBERS = "('UBIGINT', 'BIGINT', 'DOUBLE')"


def _kind(json_type: str) -> str:
    """SQL naming a JSON value's type for a person: 'a number', 'an array', 'null'."""
    return (
        f"CASE {json_type} WHEN 'OBJECT' THEN 'an object' WHEN 'ARRAY' THEN 'an array' "
        "WHEN 'VARCHAR' THEN 'a string' WHEN 'BOOLEAN' THEN 'a boolean' "
        "WHEN 'NULL' THEN 'null' ELSE 'a number' END"
    )


# A record's parts as JSON, and their JSON types. `distinct_id` may sit in `properties`, as
# posthog-js sends it.
_PARTS_SQL = """
SELECT *,
    json_type(j) AS shape,
    json_type(j->'$.uuid') AS uuid_type,
    json_type(user_id) AS user_type,
    json_type(j->'$.timestamp') AS timestamp_type,
    j->>'$.timestamp' AS timestamp_text
FROM (
    SELECT *,
        CASE WHEN coalesce(json_type(j->'$.distinct_id'), 'NULL') <> 'NULL'
            THEN j->'$.distinct_id' ELSE j->'$.properties.distinct_id' END AS user_id
    FROM (SELECT *, CAST(raw AS JSON) AS j FROM raw_records)
)
"""

# Text ids are trimmed; a whole number (21920 or 21920.0) is the same user as its digits.
# Numbers in `timestamp` are epoch seconds, or epoch milliseconds when too large to be seconds.
_FIELDS_SQL = f"""
SELECT
    source_file, pulled_at, record_index, raw, shape, uuid_type, user_type,
    timestamp_type, timestamp_text,
    CASE WHEN uuid_type = 'VARCHAR' THEN nullif(trim(j->>'$.uuid'), '') END AS uuid,
    CASE
        WHEN user_type = 'VARCHAR' THEN nullif(trim(user_id->>'$'), '')
        WHEN user_type IN ('UBIGINT', 'BIGINT') THEN user_id->>'$'
        WHEN user_type = 'DOUBLE' AND CAST(user_id AS DOUBLE) = floor(CAST(user_id AS DOUBLE))
            AND abs(CAST(user_id AS DOUBLE)) < 1e15
            THEN CAST(CAST(CAST(user_id AS DOUBLE) AS BIGINT) AS VARCHAR)
    END AS distinct_id,
    j->>'$.event' AS event,
    CASE
        WHEN timestamp_type = 'VARCHAR' THEN try_cast(timestamp_text AS TIMESTAMPTZ)
        WHEN timestamp_type IN {_NUMBERS} AND CAST(timestamp_text AS DOUBLE) > 1e11
            THEN try(to_timestamp(CAST(timestamp_text AS DOUBLE) / 1000))
        WHEN timestamp_type IN {_NUMBERS} THEN try(to_timestamp(CAST(timestamp_text AS DOUBLE)))
    END AS event_time,
    CASE WHEN coalesce(json_type(j->'$.elements'), 'NULL') <> 'NULL'
        THEN CAST(j->'$.elements' AS VARCHAR) END AS elements,
    CASE WHEN coalesce(json_type(j->'$.properties'), 'NULL') <> 'NULL'
        THEN CAST(j->'$.properties' AS VARCHAR) END AS properties,
    {_GEOIP_COLUMNS}
FROM ({_PARTS_SQL})
"""

_EXTRACT_SQL = f"""
SELECT *,
    CASE
        WHEN shape <> 'OBJECT' THEN 'record is not a JSON object but ' || {_kind("shape")}
        WHEN coalesce(uuid_type, 'NULL') = 'NULL' THEN 'missing uuid'
        WHEN uuid_type <> 'VARCHAR' THEN 'uuid is not a string but ' || {_kind("uuid_type")}
        WHEN uuid IS NULL THEN 'missing uuid'
        WHEN coalesce(user_type, 'NULL') = 'NULL' THEN 'missing distinct_id'
        WHEN user_type NOT IN ('VARCHAR', 'UBIGINT', 'BIGINT', 'DOUBLE')
            THEN 'distinct_id is not a string or a whole number but ' || {_kind("user_type")}
        WHEN user_type = 'VARCHAR' AND distinct_id IS NULL THEN 'missing distinct_id'
        WHEN distinct_id IS NULL THEN 'distinct_id is a number but not a whole one'
        WHEN coalesce(timestamp_type, 'NULL') = 'NULL' THEN 'missing timestamp'
        WHEN event_time IS NULL
            THEN 'unreadable timestamp "' || left(timestamp_text, 100) || '"'
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
    """Reads a file DuckDB refused, with ijson value by value, or line by line.

    DuckDB refuses whole files for some shapes that are still JSON (a bare number on a line of
    newline-delimited objects); those are read in full and not rejected. In newline-delimited
    JSON only the lines that do not parse are rejected. Any other file that breaks keeps the
    complete records in front of the break and is rejected with DuckDB's reason.
    """
    data = pull.path.read_bytes()
    if data.startswith(BOM):
        data = data[len(BOM) :]
    prefix = "item" if json_format == "array" else ""
    kept: list[str] = []
    try:
        for record in ijson.items(io.BytesIO(data), prefix, multiple_values=True, use_float=True):
            kept.append(json.dumps(record, ensure_ascii=False))
    except Exception:  # ijson raises several unrelated types; DuckDB's message says more
        lines = _read_lines(pull, data) if json_format == "unstructured" else None
        if lines is not None:
            kept, bad_lines = lines
            rejected.extend(bad_lines)
            return _raw_frame(pull, kept)
        reason = f"file does not parse: {problem}"
        if kept:
            reason += f"; the {len(kept)} complete records before the break were kept"
        rejected.append(_file_rejection(pull, reason + "; nothing after it was read", data))
    return _raw_frame(pull, kept)


def _read_lines(pull: PullFile, data: bytes) -> tuple[list[str], list[dict]] | None:
    """Newline-delimited records, each line on its own; None when no line is JSON at all."""
    kept: list[str] = []
    bad: list[dict] = []
    lines = [line for line in data.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        try:
            kept.append(json.dumps(json.loads(line), ensure_ascii=False))
        except ValueError as error:
            reason = f"line {index + 1} is not JSON: {str(error).splitlines()[0]}"
            bad.append(_file_rejection(pull, reason, line) | {"record_index": index})
            kept.append(None)
    if len(lines) < 2 or len(bad) == len(lines):
        return None
    return kept, bad


def _raw_frame(pull: PullFile, kept: list[str | None]) -> pl.DataFrame:
    """Records of one file with their positions; a None holds the place of a rejected line."""
    frame = pl.DataFrame(
        {
            "source_file": [pull.source_file] * len(kept),
            "pulled_at": [pull.pulled_at] * len(kept),
            "record_index": list(range(len(kept))),
            "raw": kept,
        },
        schema=schemas.RAW_EVENTS,
    )
    return frame.filter(pl.col("raw").is_not_null())


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
