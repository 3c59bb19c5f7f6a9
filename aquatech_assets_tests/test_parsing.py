"""Pull files to raw records and typed events, with every unusable file and record kept."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from aquatech_assets import schemas
from aquatech_assets.parsing import stage_pulls
from aquatech_assets.pulls import PullFile
from aquatech_assets.staging import StagedTable, staging_connection
from aquatech_assets_tests.conftest import write_file

BOM = b"\xef\xbb\xbf"
PULLED_AT = datetime(2022, 10, 13, 3, 5, tzinfo=UTC)
EVENT_TIME = "2022-10-13T03:01:29Z"


def event(uuid: str, **fields) -> dict:
    """A valid record; keyword fields replace or add keys ($-keys through **{...})."""
    base = {"uuid": uuid, "distinct_id": "alice", "event": "$pageview", "timestamp": EVENT_TIME}
    return {**base, **fields}


def ndjson(*records) -> str:
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in records)


def as_written(value) -> str:
    """A record's text as `write_file` wrote it, which is what raw and rejected_events keep."""
    return json.dumps(value, ensure_ascii=False)


def write_pull(
    folder: Path, name: str, content: bytes | str | list | dict, pulled_at: datetime = PULLED_AT
) -> PullFile:
    """Writes the file (see `write_file`) and returns it as a pull."""
    path = folder / name
    write_file(path, content)
    return PullFile(path=path, source_file=f"2022-10-13/{name}", pulled_at=pulled_at)


@dataclass(frozen=True)
class RawPulls:
    """What reading found: every record, and the files and lines that could not be read."""

    records: pl.DataFrame
    rejected: pl.DataFrame
    files_read: int


@dataclass(frozen=True)
class ParsedEvents:
    """What parsing the records found: the events, and the records that are not usable."""

    events: pl.DataFrame
    rejected: pl.DataFrame
    duplicates_dropped: int


ORDER = ("pulled_at", "source_file", "record_index")


def parse(*pulls: PullFile) -> tuple[RawPulls, ParsedEvents]:
    """Stages the pulls and splits rejected_events into file/line and record rejections."""
    with staging_connection() as connection:
        staged = stage_pulls(connection, list(pulls))
        read_rejections = StagedTable(connection, "read_rejections")
        connection.execute(
            "CREATE TABLE record_rejections AS SELECT * FROM rejected_events "
            "EXCEPT ALL SELECT * FROM read_rejections"
        )
        raw = RawPulls(
            records=staged.raw_events.to_polars().sort(ORDER),
            rejected=read_rejections.to_polars().sort(ORDER),
            files_read=staged.files_read,
        )
        parsed = ParsedEvents(
            events=staged.event_data.to_polars().sort(ORDER),
            rejected=StagedTable(connection, "record_rejections").to_polars().sort(ORDER),
            duplicates_dropped=staged.duplicates_dropped,
        )
        assert staged.rejected_events.height == raw.rejected.height + parsed.rejected.height
        lines_rejected = raw.rejected.filter(pl.col("record_index").is_not_null()).height
        assert staged.records_read == raw.records.height + lines_rejected
    return raw, parsed


def uuids_by_index(records: pl.DataFrame) -> list[tuple[str, int, str]]:
    return [
        (source, index, json.loads(raw)["uuid"])
        for source, index, raw in records.select("source_file", "record_index", "raw").rows()
    ]


def only_event(*pulls: PullFile) -> dict:
    _, parsed = parse(*pulls)
    assert parsed.rejected.height == 0, parsed.rejected.rows()
    assert parsed.events.height == 1
    return parsed.events.row(0, named=True)


# --- file formats ---------------------------------------------------------------------------

FORMATS = {
    "json array": json.dumps([event("r-0"), event("r-1"), event("r-2")]).encode(),
    "newline-delimited objects": ndjson(event("r-0"), event("r-1"), event("r-2")).encode(),
    "array with a bom": BOM + json.dumps([event("r-0"), event("r-1"), event("r-2")]).encode(),
    "ndjson with a bom": BOM + ndjson(event("r-0"), event("r-1"), event("r-2")).encode(),
}


@pytest.mark.parametrize("content", FORMATS.values(), ids=FORMATS.keys())
def test_every_record_of_each_file_format_is_read_and_counted_from_zero(tmp_path, content):
    raw, parsed = parse(write_pull(tmp_path, "20221013-030500.json", content))

    assert uuids_by_index(raw.records) == [
        ("2022-10-13/20221013-030500.json", 0, "r-0"),
        ("2022-10-13/20221013-030500.json", 1, "r-1"),
        ("2022-10-13/20221013-030500.json", 2, "r-2"),
    ]
    assert raw.rejected.height == 0
    assert parsed.events["uuid"].to_list() == ["r-0", "r-1", "r-2"]
    assert parsed.rejected.height == 0


def test_a_single_pretty_printed_object_is_one_record(tmp_path):
    pretty = json.dumps(event("only", elements=[{"tag_name": "a"}]), indent=4)
    assert pretty.count("\n") > 5
    raw, parsed = parse(write_pull(tmp_path, "20221013-030500.json", pretty))

    assert uuids_by_index(raw.records) == [("2022-10-13/20221013-030500.json", 0, "only")]
    assert raw.rejected.height == 0
    assert parsed.events["uuid"].to_list() == ["only"]


def test_record_index_counts_from_zero_within_each_file_of_a_mixed_batch(tmp_path):
    pulls = [
        write_pull(tmp_path, "a.json", [event("a-0"), event("a-1")]),
        write_pull(tmp_path, "b.json", ndjson(event("b-0"), event("b-1"), event("b-2"))),
        write_pull(tmp_path, "c.json", BOM + json.dumps([event("c-0")]).encode()),
        write_pull(tmp_path, "d.json", json.dumps(event("d-0"), indent=2)),
    ]
    raw, parsed = parse(*pulls)

    assert uuids_by_index(raw.records) == [
        ("2022-10-13/a.json", 0, "a-0"),
        ("2022-10-13/a.json", 1, "a-1"),
        ("2022-10-13/b.json", 0, "b-0"),
        ("2022-10-13/b.json", 1, "b-1"),
        ("2022-10-13/b.json", 2, "b-2"),
        ("2022-10-13/c.json", 0, "c-0"),
        ("2022-10-13/d.json", 0, "d-0"),
    ]
    assert raw.files_read == 4
    assert raw.records["pulled_at"].unique().to_list() == [PULLED_AT]
    assert parsed.events.height == 7


# --- fields ---------------------------------------------------------------------------------


def test_a_numeric_and_a_text_distinct_id_become_the_same_text(tmp_path):
    _, parsed = parse(
        write_pull(
            tmp_path,
            "a.json",
            [
                event("as-number", distinct_id=21920),
                event("as-text", distinct_id="21920"),
                event("as-float", distinct_id=21920.0),
                event("padded", distinct_id=" 21920 "),
                event("in-properties", distinct_id=None) | {"properties": {"distinct_id": "21920"}},
            ],
        )
    )

    assert parsed.events.select("uuid", "distinct_id").rows() == [
        ("as-number", "21920"),
        ("as-text", "21920"),
        ("as-float", "21920"),
        ("padded", "21920"),
        ("in-properties", "21920"),
    ]


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2022-10-13T03:01:29.123Z", datetime(2022, 10, 13, 3, 1, 29, 123000, tzinfo=UTC)),
        ("2022-10-13T03:01:29.123456+00:00", datetime(2022, 10, 13, 3, 1, 29, 123456, tzinfo=UTC)),
        ("2022-10-13T03:01:29Z", datetime(2022, 10, 13, 3, 1, 29, tzinfo=UTC)),
        ("2022-10-13T10:01:29+07:00", datetime(2022, 10, 13, 3, 1, 29, tzinfo=UTC)),
        ("2022-10-13 03:01:29", datetime(2022, 10, 13, 3, 1, 29, tzinfo=UTC)),
        # 1665619200 is 2022-10-13T00:00Z (19278 days); + 3 h 1 min 29 s = 1665630089.
        (1665630089, datetime(2022, 10, 13, 3, 1, 29, tzinfo=UTC)),
        (1665630089123, datetime(2022, 10, 13, 3, 1, 29, 123000, tzinfo=UTC)),
    ],
    ids=[
        "millis-z",
        "micros-offset",
        "seconds-z",
        "plus-seven",
        "zone-less",
        "epoch-s",
        "epoch-ms",
    ],
)
def test_each_timestamp_form_gives_its_exact_utc_instant(tmp_path, timestamp, expected):
    row = only_event(write_pull(tmp_path, "a.json", [event("t", timestamp=timestamp)]))

    assert row["event_time"] == expected


# --- record rejections ----------------------------------------------------------------------

NO_UUID = {"distinct_id": "alice", "event": "$pageview", "timestamp": EVENT_TIME}
NO_DISTINCT_ID = {"uuid": "bad", "event": "$pageview", "timestamp": EVENT_TIME}
NO_TIMESTAMP = {"uuid": "bad", "distinct_id": "alice", "event": "$pageview"}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (42, "record is not a JSON object but a number"),
        (4.5, "record is not a JSON object but a number"),
        ("u-1", "record is not a JSON object but a string"),
        ([1, 2], "record is not a JSON object but an array"),
        (True, "record is not a JSON object but a boolean"),
        (None, "record is not a JSON object but null"),
        (NO_UUID, "missing uuid"),
        ({**NO_UUID, "uuid": ""}, "missing uuid"),
        ({**NO_UUID, "uuid": "   "}, "missing uuid"),
        (NO_DISTINCT_ID, "missing distinct_id"),
        ({**NO_DISTINCT_ID, "distinct_id": ""}, "missing distinct_id"),
        (NO_TIMESTAMP, "missing timestamp"),
        ({**NO_TIMESTAMP, "timestamp": None}, "missing timestamp"),
        ({**NO_TIMESTAMP, "timestamp": ""}, 'unreadable timestamp ""'),
        ({**NO_TIMESTAMP, "timestamp": "yesterday"}, 'unreadable timestamp "yesterday"'),
        ({**NO_UUID, "uuid": 17}, "uuid is not a string but a number"),
        (
            {**NO_DISTINCT_ID, "distinct_id": True},
            "distinct_id is not a string or a whole number but a boolean",
        ),
        (
            {**NO_DISTINCT_ID, "distinct_id": {"id": 1}},
            "distinct_id is not a string or a whole number but an object",
        ),
        (
            {**NO_DISTINCT_ID, "distinct_id": [1]},
            "distinct_id is not a string or a whole number but an array",
        ),
        ({**NO_DISTINCT_ID, "distinct_id": 21920.5}, "distinct_id is a number but not a whole one"),
    ],
    ids=[
        "integer",
        "float",
        "string",
        "array",
        "boolean",
        "null",
        "no-uuid",
        "empty-uuid",
        "blank-uuid",
        "no-distinct-id",
        "empty-distinct-id",
        "no-timestamp",
        "null-timestamp",
        "empty-timestamp",
        "word-timestamp",
        "number-uuid",
        "boolean-distinct-id",
        "object-distinct-id",
        "array-distinct-id",
        "fraction-distinct-id",
    ],
)
def test_an_unusable_record_is_rejected_with_its_reason_and_its_neighbours_land(
    tmp_path, bad, reason
):
    raw, parsed = parse(write_pull(tmp_path, "a.json", [event("before"), bad, event("after")]))

    assert raw.rejected.height == 0
    assert parsed.events["uuid"].to_list() == ["before", "after"]
    assert parsed.rejected.rows() == [("2022-10-13/a.json", reason, as_written(bad), PULLED_AT, 1)]


def test_a_record_with_a_uuid_but_no_other_fields_reports_the_first_missing_one(tmp_path):
    _, parsed = parse(write_pull(tmp_path, "a.json", [{"uuid": "x"}, {}]))

    assert parsed.rejected["reason"].to_list() == ["missing distinct_id", "missing uuid"]


# --- file rejections ------------------------------------------------------------------------


def test_an_empty_array_gives_no_records_and_no_rejection(tmp_path):
    raw, parsed = parse(write_pull(tmp_path, "a.json", "[]"))

    assert (raw.records.height, raw.rejected.height, raw.files_read) == (0, 0, 1)
    assert (parsed.events.height, parsed.rejected.height) == (0, 0)


@pytest.mark.parametrize("content", [b"", b"  \n\t\r\n  "], ids=["zero-bytes", "whitespace"])
def test_an_empty_or_blank_file_is_rejected_once_as_an_empty_file(tmp_path, content):
    raw, _ = parse(write_pull(tmp_path, "a.json", content))

    assert raw.records.height == 0
    assert raw.rejected.select("source_file", "pulled_at", "record_index").rows() == [
        ("2022-10-13/a.json", PULLED_AT, None)
    ]
    assert raw.rejected["reason"][0].startswith("empty file")


def test_a_file_starting_with_something_other_than_json_is_rejected_as_not_json(tmp_path):
    raw, _ = parse(write_pull(tmp_path, "a.json", "x,y\n1,2\n"))

    assert raw.rejected.select("reason", "raw").rows() == [
        ("not JSON: a pull starts with '[' or '{', this one with b'x'", "x,y\n1,2\n")
    ]
    assert raw.records.height == 0


def test_a_truncated_array_keeps_its_complete_records_and_rejects_the_file_once(tmp_path):
    text = json.dumps([event("t-0"), event("t-1"), event("t-2")])
    cut = text[: text.index('"t-2"') + 8]
    raw, parsed = parse(write_pull(tmp_path, "a.json", cut))

    assert uuids_by_index(raw.records) == [
        ("2022-10-13/a.json", 0, "t-0"),
        ("2022-10-13/a.json", 1, "t-1"),
    ]
    assert parsed.events["uuid"].to_list() == ["t-0", "t-1"]
    assert raw.rejected.height == 1
    reason = raw.rejected["reason"][0]
    assert reason.startswith("file does not parse: ")
    assert reason.endswith(
        "; the 2 complete records before the break were kept; nothing after it was read"
    )
    assert str(tmp_path) not in reason
    assert raw.rejected["raw"][0] == cut


def test_a_file_with_invalid_utf8_is_rejected_and_the_rest_of_its_batch_lands(tmp_path):
    broken = b'[{"uuid": "bad", "distinct_id": "\xff\xfe", "timestamp": "2022-10-13T03:01:29Z"}]'
    pulls = [
        write_pull(tmp_path, "a.json", [event("a-0"), event("a-1")]),
        write_pull(tmp_path, "b.json", broken),
        write_pull(tmp_path, "c.json", [event("c-0")]),
        write_pull(tmp_path, "d.json", ndjson(event("d-0"))),
    ]
    raw, parsed = parse(*pulls)

    assert parsed.events["uuid"].to_list() == ["a-0", "a-1", "c-0", "d-0"]
    assert raw.rejected["source_file"].to_list() == ["2022-10-13/b.json"]
    assert raw.rejected["reason"][0].startswith("file does not parse: ")
    assert "\ufffd" in raw.rejected["raw"][0]
    assert parsed.rejected.height == 0


def test_bad_files_of_both_shapes_in_one_batch_each_leave_one_rejection(tmp_path):
    pulls = [
        write_pull(tmp_path, "a.json", b""),
        write_pull(tmp_path, "b.json", '[{"uuid": "b-0"'),
        write_pull(tmp_path, "c.json", '{"uuid": "c-0"}\n{"uuid"'),
        write_pull(tmp_path, "d.json", [event("d-0")]),
    ]
    raw, parsed = parse(*pulls)

    assert raw.rejected.select("source_file", "record_index").rows() == [
        ("2022-10-13/a.json", None),
        ("2022-10-13/b.json", None),
        ("2022-10-13/c.json", 1),
    ]
    assert raw.rejected["reason"][2].startswith("line 2 is not JSON: ")
    assert parsed.events["uuid"].to_list() == ["d-0"]
    assert parsed.rejected.select("source_file", "reason").rows() == [
        ("2022-10-13/c.json", "missing distinct_id")
    ]


def test_a_non_object_line_in_newline_delimited_json_is_a_record_rejection_not_a_file_one(
    tmp_path,
):
    raw, parsed = parse(write_pull(tmp_path, "a.json", ndjson(event("n-0"), 42, event("n-2"))))

    assert parsed.events["uuid"].to_list() == ["n-0", "n-2"]
    assert parsed.rejected.select("reason", "record_index").rows() == [
        ("record is not a JSON object but a number", 1)
    ]
    assert raw.rejected.height == 0


def test_a_broken_line_of_newline_delimited_json_rejects_that_line_only(tmp_path):
    text = ndjson(event("n-0"), event("n-1")).replace('"n-1"', '"n-1", "broken":') + ndjson(
        event("n-2")
    )
    raw, parsed = parse(write_pull(tmp_path, "a.json", text))

    assert parsed.events.select("uuid", "record_index").rows() == [("n-0", 0), ("n-2", 2)]
    assert raw.rejected.select("record_index").to_series().to_list() == [1]
    assert raw.rejected["reason"][0].startswith("line 2 is not JSON: ")
    assert '"n-1", "broken":' in raw.rejected["raw"][0]


def test_a_line_that_is_not_utf8_rejects_that_line_and_keeps_the_others(tmp_path):
    lines = [
        json.dumps(event("n-0")).encode(),
        b'{"uuid": "S\xe3o Paulo"}',
        json.dumps(event("n-2")).encode(),
    ]
    raw, parsed = parse(write_pull(tmp_path, "a.json", b"\n".join(lines)))

    assert parsed.events["uuid"].to_list() == ["n-0", "n-2"]
    assert raw.rejected.select("record_index").to_series().to_list() == [1]


# --- duplicates -----------------------------------------------------------------------------


def test_the_first_delivery_of_a_uuid_wins_and_the_rest_are_counted_as_duplicates(tmp_path):
    # The later pull sorts first by name, so only pulled_at can put the earlier pull first.
    later = write_pull(
        tmp_path,
        "a.json",
        [event("dup", event="third"), event("solo"), {"uuid": "dup", "timestamp": EVENT_TIME}],
        pulled_at=datetime(2022, 10, 13, 4, tzinfo=UTC),
    )
    earlier = write_pull(
        tmp_path,
        "b.json",
        [event("dup", event="first"), event("dup", event="second")],
        pulled_at=datetime(2022, 10, 13, 2, tzinfo=UTC),
    )
    _, parsed = parse(later, earlier)

    assert parsed.events.select("uuid", "event", "source_file", "record_index").rows() == [
        ("dup", "first", "2022-10-13/b.json", 0),
        ("solo", "$pageview", "2022-10-13/a.json", 1),
    ]
    assert parsed.duplicates_dropped == 2
    assert parsed.rejected.select("reason", "record_index").rows() == [("missing distinct_id", 2)]


def test_repeats_of_a_uuid_within_one_file_keep_the_earliest_position(tmp_path):
    _, parsed = parse(
        write_pull(tmp_path, "a.json", [event("x", event="one"), event("x", event="two")])
    )

    assert parsed.events.select("event", "record_index").rows() == [("one", 0)]
    assert parsed.duplicates_dropped == 1


# --- column types ---------------------------------------------------------------------------


def test_column_types_are_fixed_when_every_geoip_field_is_missing(tmp_path):
    raw, parsed = parse(write_pull(tmp_path, "a.json", [event("plain")]))

    assert parsed.events.schema == schemas.EVENT_DATA
    assert parsed.events.schema["geoip_latitude"] == pl.Float64
    assert parsed.events.schema["geoip_longitude"] == pl.Float64
    assert parsed.events.schema["elements"] == pl.String
    assert parsed.events.schema["event_time"] == pl.Datetime("us", "UTC")
    assert raw.records.schema == schemas.RAW_EVENTS
    assert parsed.rejected.schema == schemas.REJECTED_EVENTS
    row = parsed.events.row(0, named=True)
    assert [row[f"geoip_{field}"] for field in schemas.GEOIP_TEXT_FIELDS] == [None] * 8
    assert (row["geoip_latitude"], row["geoip_longitude"], row["elements"]) == (None, None, None)


def test_an_empty_batch_gives_empty_frames_with_the_exact_schemas():
    raw, parsed = parse()

    assert (raw.records.height, raw.rejected.height, raw.files_read) == (0, 0, 0)
    assert raw.records.schema == schemas.RAW_EVENTS
    assert raw.rejected.schema == schemas.REJECTED_EVENTS
    assert (parsed.events.height, parsed.rejected.height, parsed.duplicates_dropped) == (0, 0, 0)
    assert parsed.events.schema == schemas.EVENT_DATA
    assert parsed.rejected.schema == schemas.REJECTED_EVENTS


def test_a_batch_of_only_rejected_records_keeps_the_exact_schemas(tmp_path):
    raw, parsed = parse(write_pull(tmp_path, "a.json", [42, {"uuid": "x"}]))

    assert parsed.events.height == 0
    assert parsed.events.schema == schemas.EVENT_DATA
    assert parsed.rejected.height == 2
    assert parsed.rejected.schema == schemas.REJECTED_EVENTS


# --- values ---------------------------------------------------------------------------------


def test_elements_are_kept_as_json_text_that_loads_back_to_the_same_list(tmp_path):
    elements = [
        {
            "tag_name": "button",
            "$el_text": "Book a lesson",
            "attr__class": "btn btn-primary",
            "attr__href": "/book?slot=7",
            "nth_child": 2,
            "nth_of_type": 1,
        },
        {"tag_name": "div", "attr__id": "main", "attr__data-ref": None},
    ]
    row = only_event(write_pull(tmp_path, "a.json", [event("el", elements=elements)]))

    assert isinstance(row["elements"], str)
    assert json.loads(row["elements"]) == elements


def test_an_empty_elements_list_is_kept_as_an_empty_json_array(tmp_path):
    row = only_event(write_pull(tmp_path, "a.json", [event("el", elements=[])]))

    assert row["elements"] == "[]"


def test_non_ascii_city_names_survive_whether_written_raw_or_escaped(tmp_path):
    sao_paulo = event("sp", **{"$geoip_city_name": "São Paulo"})
    dusseldorf = event("du", **{"$geoip_city_name": "Düsseldorf"})
    raw_utf8 = write_pull(tmp_path, "a.json", [sao_paulo, dusseldorf])
    escaped = write_pull(
        tmp_path, "b.json", json.dumps([event("sp-2", **{"$geoip_city_name": "São Paulo"})])
    )
    assert b"\\u00e3" in escaped.path.read_bytes()
    _, parsed = parse(raw_utf8, escaped)

    assert parsed.events.select("uuid", "geoip_city_name").rows() == [
        ("sp", "São Paulo"),
        ("du", "Düsseldorf"),
        ("sp-2", "São Paulo"),
    ]


def test_integer_coordinates_become_floats(tmp_path):
    located = event("loc", **{"$geoip_latitude": -6, "$geoip_longitude": 107})
    row = only_event(write_pull(tmp_path, "a.json", [located]))

    assert (row["geoip_latitude"], row["geoip_longitude"]) == (-6.0, 107.0)
    assert isinstance(row["geoip_latitude"], float)
