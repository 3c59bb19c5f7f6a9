"""Pull files to typed event rows, with every record that cannot be used kept with a reason.

DuckDB does the work in a staging connection (see `staging`): `read_json_objects` reads many
files per call straight into a table, each record kept as its JSON text, and one pass then
pulls every field out of each record with a single parse (`json_extract` with a list of
paths) and fixed casts. No column's type is ever inferred from the data, so an hour of odd
records cannot change the table's schema. When a batch of files fails, its files are read
one at a time to find the broken ones; only those are set aside.
"""

import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import duckdb
import ijson
import polars as pl

from aquatech_assets import schemas
from aquatech_assets.pulls import PullFile
from aquatech_assets.staging import StagedTable

BOM = b"\xef\xbb\xbf"
RAW_PREVIEW_CHARS = 2000
_PEEK_BYTES = 65536
# Files per read_json_objects call: enough that DuckDB's per-call cost vanishes, few enough
# that one broken file costs a handful of retries to find.
FILES_PER_READ = 512
BYTES_PER_READ = 256 * 2**20


@dataclass(frozen=True)
class StagedPulls:
    """The three hourly tables of a set of pull files, staged, and what reading them found.

    `rejected_events` holds a row for each file that could not be read (`record_index` null),
    each line of newline-delimited JSON that did not parse, and each record that is not a
    usable event.
    """

    raw_events: StagedTable
    event_data: StagedTable
    rejected_events: StagedTable
    files_read: int
    files_rejected: int
    records_read: int
    duplicates_dropped: int


def stage_pulls(connection: duckdb.DuckDBPyConnection, files: Sequence[PullFile]) -> StagedPulls:
    """Reads the files into tables raw_events, event_data and rejected_events of `connection`.

    A JSON array (what the device writes), newline-delimited objects and a single object are all
    read, with or without a UTF-8 byte order mark. Within the files the first delivery of a
    uuid is the earliest pull, then the earliest position in its file; the warehouse applies
    the same rule against earlier and later pulls.
    """
    connection.execute(f"CREATE TABLE raw_events ({_ddl(schemas.RAW_EVENTS)})")
    connection.execute(f"CREATE TABLE read_rejections ({_ddl(schemas.REJECTED_EVENTS)})")
    rejected: list[dict] = []
    by_format: dict[str, list[PullFile]] = {"array": [], "unstructured": []}
    for pull in files:
        shape = _json_shape(pull)
        if shape in by_format:
            by_format[shape].append(pull)
        else:
            rejected.append(_file_rejection(pull, shape))
    for json_format, group in by_format.items():
        for batch in _batches(group):
            _read_group(connection, json_format, batch, rejected)
    if rejected:
        _insert_frame(
            connection, "read_rejections", pl.DataFrame(rejected, schema=schemas.REJECTED_EVENTS)
        )

    connection.execute(f"CREATE TABLE extracted AS {_EXTRACT_SQL}")
    connection.execute(
        f"""
        CREATE TABLE event_data AS
        SELECT {", ".join(schemas.EVENT_DATA.names())} FROM extracted
        WHERE reason IS NULL
        QUALIFY row_number() OVER (
            PARTITION BY uuid ORDER BY pulled_at, source_file, record_index
        ) = 1
        """
    )
    connection.execute(
        f"""
        CREATE TABLE rejected_events AS
        SELECT {", ".join(schemas.REJECTED_EVENTS.names())} FROM read_rejections
        UNION ALL
        SELECT e.source_file, e.reason, r.raw, e.pulled_at, e.record_index
        FROM extracted AS e JOIN raw_events AS r ON r.rowid = e.raw_row
        WHERE e.reason IS NOT NULL
        """
    )
    counts = connection.sql(
        """
        SELECT
            (SELECT count(*) FROM extracted WHERE reason IS NULL),
            (SELECT count(*) FROM extracted),
            (SELECT count(*) FROM read_rejections WHERE record_index IS NULL),
            (SELECT count(*) FROM read_rejections WHERE record_index IS NOT NULL)
        """
    ).fetchall()[0]
    valid, records, files_rejected, lines_rejected = counts
    connection.execute("DROP TABLE extracted")
    event_data = StagedTable(connection, "event_data")
    return StagedPulls(
        raw_events=StagedTable(connection, "raw_events"),
        event_data=event_data,
        rejected_events=StagedTable(connection, "rejected_events"),
        files_read=len(files),
        files_rejected=files_rejected,
        records_read=records + lines_rejected,
        duplicates_dropped=valid - event_data.height,
    )


def _ddl(schema: pl.Schema) -> str:
    types = {pl.String: "VARCHAR", pl.Int64: "BIGINT", schemas.UTC_TIME: "TIMESTAMPTZ"}
    return ", ".join(f"{name} {types[dtype]}" for name, dtype in schema.items())


def _batches(group: list[PullFile]) -> Iterator[list[PullFile]]:
    batch: list[PullFile] = []
    size = 0
    for pull in group:
        file_size = pull.path.stat().st_size
        if batch and (len(batch) == FILES_PER_READ or size + file_size > BYTES_PER_READ):
            yield batch
            batch, size = [], 0
        batch.append(pull)
        size += file_size
    if batch:
        yield batch


def _insert_frame(connection: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    # table is one of this module's own table names, never text from outside.
    connection.register("frame_arrow", frame.to_arrow())
    try:
        connection.execute(f"INSERT INTO {table} BY NAME SELECT * FROM frame_arrow")
    finally:
        connection.unregister("frame_arrow")


# Every path a record is read at, parsed once per record by one json_extract call. `distinct_id`
# may sit in `properties`, as posthog-js sends it.
_PATHS = (
    ("uuid_json", "$.uuid"),
    ("top_user_id", "$.distinct_id"),
    ("properties_user_id", "$.properties.distinct_id"),
    ("timestamp_json", "$.timestamp"),
    ("event_json", "$.event"),
    ("elements_json", "$.elements"),
    ("properties_json", "$.properties"),
) + tuple(
    (f"geoip_{field}_json", f'$."$geoip_{field}"')
    for field in schemas.GEOIP_TEXT_FIELDS + schemas.GEOIP_NUMBER_FIELDS
)
_PATH_LIST = "[" + ", ".join(f"'{path}'" for _, path in _PATHS) + "]"
_PART_COLUMNS = ",\n    ".join(
    f"parts[{position}] AS {name}" for position, (name, _) in enumerate(_PATHS, start=1)
)

_NUMBERS = "('BIGINT', 'DOUBLE')"


def _kind(json_type: str) -> str:
    """SQL naming a JSON value's type for a person: 'a number', 'an array', 'null'."""
    return (
        f"CASE {json_type} WHEN 'OBJECT' THEN 'an object' WHEN 'ARRAY' THEN 'an array' "
        "WHEN 'VARCHAR' THEN 'a string' WHEN 'BOOLEAN' THEN 'a boolean' "
        "WHEN 'NULL' THEN 'null' ELSE 'a number' END"
    )


# json_extract hands each part back as minified JSON text, so its type shows in its first
# character and a string without escapes is its text between the quotes. Reading parts that
# way, rather than parsing each one again, is most of what makes extraction fast.
def _type_of(part: str) -> str:
    """SQL: the JSON type of an extracted part, as json_type names it; NULL when missing."""
    return (
        f"CASE WHEN {part} IS NULL THEN NULL "
        f"WHEN left({part}, 1) = '\"' THEN 'VARCHAR' "
        f"WHEN left({part}, 1) = '{{' THEN 'OBJECT' WHEN left({part}, 1) = '[' THEN 'ARRAY' "
        f"WHEN {part} IN ('true', 'false') THEN 'BOOLEAN' WHEN {part} = 'null' THEN 'NULL' "
        f"WHEN regexp_matches({part}, '[.eE]') THEN 'DOUBLE' ELSE 'BIGINT' END"
    )


def _text_of(part: str) -> str:
    """SQL: an extracted part as text (a string unquoted, anything else as its JSON)."""
    return (
        f"CASE WHEN {part} IS NULL OR {part} = 'null' THEN NULL "
        f"WHEN left({part}, 1) = '\"' AND NOT contains({part}, '\\') "
        f"THEN substr({part}, 2, length({part}) - 2) "
        f"WHEN left({part}, 1) = '\"' THEN CAST({part} AS JSON)->>'$' ELSE {part} END"
    )


def _present(part: str) -> str:
    """SQL: the extracted part is there and is not JSON null."""
    return f"({part} IS NOT NULL AND {part} <> 'null')"


# A record's shape comes from its first character (the reader has already checked that it is
# JSON), which spares parsing the whole record a second time.
_PARTS_SQL = f"""
SELECT *,
    CASE left(ltrim(raw, ' \t\n\r'), 1)
        WHEN '{{' THEN 'OBJECT' WHEN '[' THEN 'ARRAY' WHEN '"' THEN 'VARCHAR'
        WHEN 't' THEN 'BOOLEAN' WHEN 'f' THEN 'BOOLEAN' WHEN 'n' THEN 'NULL' ELSE 'DOUBLE'
    END AS shape,
    {_type_of("uuid_json")} AS uuid_type,
    {_type_of("user_id")} AS user_type,
    {_type_of("timestamp_json")} AS timestamp_type,
    {_text_of("timestamp_json")} AS timestamp_text
FROM (
    SELECT *,
        CASE WHEN {_present("top_user_id")} THEN top_user_id ELSE properties_user_id END
            AS user_id
    FROM (
        SELECT source_file, pulled_at, record_index, raw, raw_row,
            {_PART_COLUMNS}
        FROM (
            SELECT *, rowid AS raw_row,
                CAST(json_extract(raw, {_PATH_LIST}) AS VARCHAR[]) AS parts
            FROM raw_events
        )
    )
)
"""


def _geoip(field: str, cast: str | None = None) -> str:
    value = _text_of(f"geoip_{field}_json")
    expression = f"try_cast({value} AS {cast})" if cast else value
    return f"{expression} AS geoip_{field}"


_GEOIP_COLUMNS = ",\n    ".join(
    [_geoip(field) for field in schemas.GEOIP_TEXT_FIELDS]
    + [_geoip(field, "DOUBLE") for field in schemas.GEOIP_NUMBER_FIELDS]
)

# Text ids are trimmed; a whole number (21920 or 21920.0) is the same user as its digits.
# Numbers in `timestamp` are epoch seconds, or epoch milliseconds when too large to be seconds.
_FIELDS_SQL = f"""
SELECT
    source_file, pulled_at, record_index, raw_row, shape, uuid_type, user_type,
    timestamp_type, timestamp_text,
    CASE WHEN uuid_type = 'VARCHAR' THEN nullif(trim({_text_of("uuid_json")}), '') END AS uuid,
    CASE
        WHEN user_type = 'VARCHAR' THEN nullif(trim({_text_of("user_id")}), '')
        WHEN user_type = 'BIGINT' THEN user_id
        WHEN user_type = 'DOUBLE' AND CAST(user_id AS DOUBLE) = floor(CAST(user_id AS DOUBLE))
            AND abs(CAST(user_id AS DOUBLE)) < 1e15
            THEN CAST(CAST(CAST(user_id AS DOUBLE) AS BIGINT) AS VARCHAR)
    END AS distinct_id,
    {_text_of("event_json")} AS event,
    CASE
        WHEN timestamp_type = 'VARCHAR' THEN try_cast(timestamp_text AS TIMESTAMPTZ)
        WHEN timestamp_type IN {_NUMBERS} AND CAST(timestamp_text AS DOUBLE) > 1e11
            THEN try(to_timestamp(CAST(timestamp_text AS DOUBLE) / 1000))
        WHEN timestamp_type IN {_NUMBERS} THEN try(to_timestamp(CAST(timestamp_text AS DOUBLE)))
    END AS event_time,
    CASE WHEN {_present("elements_json")} THEN elements_json END AS elements,
    CASE WHEN {_present("properties_json")} THEN properties_json END AS properties,
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
        WHEN user_type NOT IN ('VARCHAR', 'BIGINT', 'DOUBLE')
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
) -> None:
    """Reads the files into raw_events; a batch that fails is read again file by file."""
    try:
        _read_json(connection, json_format, group)
        return
    except duckdb.Error as error:
        if len(group) == 1:
            problem = _first_line(error).replace(str(group[0].path), group[0].source_file)
            kept = _salvage(json_format, group[0], problem, rejected)
            _insert_frame(connection, "raw_events", kept)
            return
    for pull in group:
        _read_group(connection, json_format, [pull], rejected)


def _read_json(
    connection: duckdb.DuckDBPyConnection, json_format: str, group: list[PullFile]
) -> None:
    # json_format is one of this module's two literals, never text from outside; the file
    # names are bound as a parameter.
    files = pl.DataFrame(
        {
            "filename": [str(pull.path) for pull in group],
            "source_file": [pull.source_file for pull in group],
            "pulled_at": [pull.pulled_at for pull in group],
        },
        schema={"filename": pl.String, "source_file": pl.String, "pulled_at": schemas.UTC_TIME},
    )
    connection.register("pull_files", files.to_arrow())
    try:
        connection.execute(
            f"""
            INSERT INTO raw_events
            SELECT f.source_file, f.pulled_at,
                row_number() OVER (PARTITION BY r.filename ORDER BY r.ordinality) - 1,
                CAST(r.json AS VARCHAR)
            FROM read_json_objects(
                $files, format = '{json_format}', filename = true
            ) WITH ORDINALITY AS r
            JOIN pull_files AS f USING (filename)
            """,
            {"files": files["filename"].to_list()},
        )
    finally:
        connection.unregister("pull_files")


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
