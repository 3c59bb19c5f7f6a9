"""Every fault kind real PostHog exports show, in one pull folder, through the whole pipeline.

test_parsing.py tries each kind on its own against the parser; here they sit side by side in
one day of pulls, as a device would deliver them, and the answer of every table is worked out by
hand. The shapes follow ../shared/real-samples (PostHog's capture dumps): timestamps in four
forms within one file, `elements` empty in one file and lists of `attr__*` objects in another,
posthog-js records with `distinct_id` inside `properties` and `offset` instead of `timestamp`.
"""

import json
from datetime import UTC, date, datetime

import dagster as dg

from aquatech_assets.resources import PullStore
from aquatech_assets_tests.conftest import write_pulls

DAY = "2023-04-20"


def record(uuid: str, user, timestamp: str | None, **fields) -> dict:
    """A device record; `timestamp=None` leaves the key out, `$`-keys come through **{...}."""
    body = {"uuid": uuid, "distinct_id": user, "event": "$pageview", "elements": []}
    if timestamp is not None:
        body["timestamp"] = timestamp
    return body | fields


AUTOCAPTURE_ELEMENTS = [
    {
        "tag_name": "button",
        "$el_text": "Book a lesson",
        "classes": ["btn", "btn-primary"],
        "attr__class": "btn btn-primary",
        "attr__href": "/book?slot=7",
        "nth_child": 2,
        "nth_of_type": 1,
    },
    {"tag_name": "div", "attr__id": "main", "attr__data-attr": "hero", "attr__aria-label": "Main"},
]

TRUNCATED = json.dumps(
    [
        record("f-10", "grace", "2023-04-20T15:59:00.001Z"),
        record("f-11", 21920.0, "2023-04-20T15:59:30Z"),
        record("f-lost", "zoe", "2023-04-20T15:59:45Z"),
    ]
)
TRUNCATED = TRUNCATED[: TRUNCATED.index('"f-lost"') + 10]

LATIN_1 = (
    '[{"uuid": "f-12", "distinct_id": "heidi", "timestamp": "2023-04-20T16:10:00Z"}, '
    '{"uuid": "f-lost-2", "distinct_id": "heidi", "timestamp": "2023-04-20T16:11:00Z", '
    '"$geoip_city_name": "S\u00e3o Paulo"}]'
).encode("latin-1")

NDJSON_WITH_A_BROKEN_LINE = (
    json.dumps(record("f-14", "ivan", "2023-04-20T16:29:00Z")) + "\n"
    '{"uuid": "f-broken", "distinct_id":\n'
    + json.dumps(record("f-15", "judy", "2023-04-19T23:59:59.999Z"))
    + "\n"
)

FAULT_PULLS = {
    # Four timestamp forms in one file, then an empty and a missing one, a record that is not an
    # object, and a repeat of f-01. 21920 is a JSON number here and text in the next record.
    f"{DAY}/20230420-150000.json": [
        record(
            "f-01",
            21920,
            "2023-04-20T02:55:01.546Z",
            **{"$geoip_city_name": "São Paulo", "$geoip_latitude": -23, "$geoip_longitude": -46},
        ),
        record("f-02", "21920", "2023-04-20T02:55:00Z", **{"$geoip_city_name": "Düsseldorf"}),
        record("f-03", "alice", "2023-04-20T02:55:02.328551+00:00", **{"$geoip_city_name": "東京"}),
        record("f-04", "bob", "2023-04-20 14:30:00.000123"),
        record("f-05", "carol", ""),
        record("f-06", "carol", None),
        42,
        record("f-01", 21920, "2023-04-20T02:55:01.546Z", event="repeat"),
    ],
    # Autocapture elements; a posthog-js record (distinct_id in properties, no timestamp, only
    # an offset); a posthog-js record that does carry a timestamp; f-03 delivered again.
    f"{DAY}/20230420-151500.json": [
        record(
            "f-07",
            "alice",
            "2023-04-20T15:10:00.000Z",
            event="$autocapture",
            elements=AUTOCAPTURE_ELEMENTS,
        ),
        {
            "uuid": "f-08",
            "event": "$pageview",
            "timestamp": "2023-04-20T15:11:00.5Z",
            "properties": {"distinct_id": "erin", "$os": "Mac OS X", "$lib": "web"},
        },
        {
            "uuid": "f-09",
            "event": "$pageview",
            "offset": 64,
            "properties": {"distinct_id": "frank", "$time": 1681999870.325},
        },
        record("f-03", "alice", "2023-04-20T02:55:02.328551+00:00", event="repeat"),
    ],  # fmt: skip
    f"{DAY}/20230420-153000.json": [],
    f"{DAY}/20230420-154500.json": b"",
    f"{DAY}/20230420-160000.json": TRUNCATED,
    f"{DAY}/20230420-161500.json": LATIN_1,
    f"{DAY}/20230420-163000.json": NDJSON_WITH_A_BROKEN_LINE,
    # Not read at all: a name that is not a pull stamp, and a stamp in another day's folder.
    f"{DAY}/export (1).json": [record("f-skip-1", "kim", "2023-04-20T17:00:00Z")],
    "2023-04-21/20230420-170000.json": [record("f-skip-2", "kim", "2023-04-20T17:00:00Z")],
}

# The answers, by hand. Stored: f-01, f-02, f-11 (user 21920 as a number, text and 21920.0),
# f-03 and f-07 (alice), f-04 (bob), f-08 (erin, from properties), f-10 (grace), f-12 (heidi,
# in front of the Latin-1 byte), f-14 (ivan) and f-15 (judy, on 04-19).
EVENT_DATA = [
    ("f-01", "21920", "$pageview", datetime(2023, 4, 20, 2, 55, 1, 546000, tzinfo=UTC), [],
     "São Paulo", -23.0, -46.0),
    ("f-02", "21920", "$pageview", datetime(2023, 4, 20, 2, 55, tzinfo=UTC), [],
     "Düsseldorf", None, None),
    ("f-03", "alice", "$pageview", datetime(2023, 4, 20, 2, 55, 2, 328551, tzinfo=UTC), [],
     "東京", None, None),
    ("f-04", "bob", "$pageview", datetime(2023, 4, 20, 14, 30, 0, 123, tzinfo=UTC), [],
     None, None, None),
    ("f-07", "alice", "$autocapture", datetime(2023, 4, 20, 15, 10, tzinfo=UTC),
     AUTOCAPTURE_ELEMENTS, None, None, None),
    ("f-08", "erin", "$pageview", datetime(2023, 4, 20, 15, 11, 0, 500000, tzinfo=UTC), None,
     None, None, None),
    ("f-10", "grace", "$pageview", datetime(2023, 4, 20, 15, 59, 0, 1000, tzinfo=UTC), [],
     None, None, None),
    ("f-11", "21920", "$pageview", datetime(2023, 4, 20, 15, 59, 30, tzinfo=UTC), [],
     None, None, None),
    ("f-12", "heidi", None, datetime(2023, 4, 20, 16, 10, tzinfo=UTC), None, None, None, None),
    ("f-14", "ivan", "$pageview", datetime(2023, 4, 20, 16, 29, tzinfo=UTC), [],
     None, None, None),
    ("f-15", "judy", "$pageview", datetime(2023, 4, 19, 23, 59, 59, 999000, tzinfo=UTC), [],
     None, None, None),
]  # fmt: skip
# 04-19: judy. 04-20: 21920, alice, bob, erin, grace, heidi, ivan. The month: all eight.
DAU = [(date(2023, 4, 19), 1), (date(2023, 4, 20), 7)]
MAU = [(date(2023, 4, 1), 8)]
ACTIVITY = [
    (date(2023, 4, 19), "$pageview", 1, 1),
    (date(2023, 4, 20), None, 1, 1),
    (date(2023, 4, 20), "$autocapture", 1, 1),
    (date(2023, 4, 20), "$pageview", 8, 6),
]
TRUNCATED_REASON = (
    'file does not parse: Malformed JSON in file "2023-04-20/20230420-160000.json", at byte 20 '
    "in record/value 4: unexpected end of data.; the 2 complete records before the break were "
    "kept; nothing after it was read"
)
LATIN_1_REASON = (
    'file does not parse: Malformed JSON in file "2023-04-20/20230420-161500.json", at byte 105 '
    "in record/value 3: invalid UTF-8 encoding in string.; the 1 complete records before the "
    "break were kept; nothing after it was read"
)
# (source file, record index, reason); a file's own rejection has no record index. The two
# "Malformed JSON" reasons are DuckDB's own words (duckdb 2), the line's Python's json module's.
REJECTED = [
    (f"{DAY}/20230420-150000.json", 4, 'unreadable timestamp ""'),
    (f"{DAY}/20230420-150000.json", 5, "missing timestamp"),
    (f"{DAY}/20230420-150000.json", 6, "record is not a JSON object but a number"),
    (f"{DAY}/20230420-151500.json", 2, "missing timestamp"),
    (f"{DAY}/20230420-154500.json", None, "empty file: no JSON value in it"),
    (f"{DAY}/20230420-160000.json", None, TRUNCATED_REASON),
    (f"{DAY}/20230420-161500.json", None, LATIN_1_REASON),
    (
        f"{DAY}/20230420-163000.json",
        1,
        "line 2 is not JSON: Expecting value: line 1 column 36 (char 35)",
    ),
]
# Read: 8 + 4 + 0 + 0 + 2 (before the break) + 1 (before the Latin-1 byte) + 3 lines = 18
# = 11 stored + 5 rejected records or lines + 2 repeats (f-01, f-03). Three files rejected.
RECORDS_READ = 18
DUPLICATES = 2
FILES_REJECTED = 3
MISNAMED = f"{DAY}/export (1).json (name is not a pull stamp YYYYMMDD-HHMMSS.json)"
MISFILED = "2023-04-21/20230420-170000.json (stamped for another day than its folder)"


def test_a_day_of_every_fault_kind_gives_the_tables_worked_out_by_hand(pipeline):
    write_pulls(pipeline.raw_data, FAULT_PULLS)
    pipeline.materialize()

    events = pipeline.rows(
        "event_data",
        "uuid",
        "uuid, distinct_id, event, event_time, elements, geoip_city_name, geoip_latitude, "
        "geoip_longitude",
    )
    assert all(row[4] is None or isinstance(row[4], str) for row in events)
    with_elements_loaded = [(*row[:4], row[4] and json.loads(row[4]), *row[5:]) for row in events]
    assert with_elements_loaded == EVENT_DATA
    assert pipeline.rows("dau", "event_date", "event_date, dau") == DAU
    assert pipeline.rows("mau", "event_month", "event_month, mau") == MAU
    activity = pipeline.rows(
        "event_activity", "1, 2 NULLS FIRST", "event_date, event, events, users"
    )
    assert activity == ACTIVITY

    rejected = pipeline.rows(
        "rejected_events",
        "source_file, record_index NULLS FIRST",
        "source_file, record_index, reason",
    )
    assert rejected == REJECTED


def test_every_record_read_is_stored_rejected_or_a_counted_repeat(pipeline):
    write_pulls(pipeline.raw_data, FAULT_PULLS)
    pipeline.materialize()
    records = pipeline.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("event_data")), limit=1000
    ).records
    # A range run copies its metadata onto every partition it covers: one per run.
    by_run = {record.run_id: record.asset_materialization.metadata for record in records}
    assert len(by_run) == 1
    (metadata,) = by_run.values()
    stored = metadata["dagster/row_count"].value
    rejected_records = metadata["records_rejected"].value - metadata["files_rejected"].value

    assert metadata["records_read"].value == RECORDS_READ
    assert (stored, rejected_records, metadata["duplicates_dropped"].value) == (11, 5, DUPLICATES)
    assert metadata["records_read"].value == stored + rejected_records + DUPLICATES
    assert metadata["files_read"].value == 7
    assert metadata["files_rejected"].value == FILES_REJECTED
    # A run lists only its own date folders; the scan that plans the runs names both skips.
    assert metadata["files_skipped"].value == 1
    assert metadata["skipped_files"].value == [MISNAMED]
    scan = PullStore(root=str(pipeline.raw_data)).scan()
    assert [str(path) for path in scan.skipped] == [MISNAMED, MISFILED]
    # The tables agree with the metadata: nothing read is missing from both, nothing is doubled.
    (rows,) = pipeline.rows("event_data", "1", "count(*), count(DISTINCT uuid)")
    (record_rejections,) = pipeline.rows(
        "rejected_events", "1", "count(*) FILTER (record_index IS NOT NULL)"
    )
    (raw,) = pipeline.rows("raw_events", "1", "count(*)")
    assert rows == (11, 11)
    assert record_rejections[0] + rows[0] + DUPLICATES == RECORDS_READ
    assert raw[0] == RECORDS_READ - 1  # the broken NDJSON line is in rejected_events only
