"""Fields that come and go between pulls, and tables written by an older schema.

event_data's columns are fixed in code (`schemas.EVENT_DATA`) and every insert goes by column
name. A field the device starts sending is kept: in `properties` when it sits there (where
posthog-js puts `$os` and friends), and in every case in `raw_events.raw`, the record's whole
text, one join away from its event_data row by (pulled_at, source_file, record_index). No
second parse of the record pays for that: parsing stays one json_extract per record.
"""

from datetime import UTC, date, datetime

import duckdb
import pytest

from aquatech_assets import schemas
from aquatech_assets_tests.conftest import event, write_pulls

EARLY = "2022-10-01/20221001-091500.json"
LATER = "2022-10-01/20221001-101500.json"


def located(uuid: str, user: str, timestamp: str, **fields) -> dict:
    return event(uuid, user, "$pageview", timestamp) | {
        "$geoip_city_name": "Jakarta",
        "$geoip_latitude": -6.1944,
        "properties": {"$lib": "web"},
    } | fields  # fmt: skip


DRIFTING_PULLS = {
    # The fields of the design record, and a properties object.
    EARLY: [located("d-1", "alice", "2022-10-01T09:00:00Z")],
    # Later pulls: new fields at top level and in properties, and fields gone. `elements`,
    # `$geoip_city_name` and `properties` are missing; a latitude comes as text; and a record
    # carries top-level fields named like event_data's own columns, which must not leak in.
    LATER: [
        {
            "uuid": "d-2",
            "distinct_id": "bob",
            "timestamp": "2022-10-01T10:00:00Z",
            "event": "$pageview",
            "$geoip_postal_code": "10110",
            "$os": "Android",
            "$geoip_latitude": "-6.2",
        },
        {
            "$geoip_city_name": "Bandung",
            "properties": {"$os": "iOS", "$geoip_postal_code": "40111", "nested": {"a": [1]}},
            "timestamp": "2022-10-01T10:01:00Z",
            "distinct_id": "carol",
            "uuid": "d-3",
            "source_file": "spoofed.json",
            "pulled_at": "1999-01-01T00:00:00Z",
            "record_index": 99,
            "dl_updated_at": "1999-01-01T00:00:00Z",
            "properties_extra": True,
        },
    ],
}

EVENT_DATA_COLUMNS = [*schemas.EVENT_DATA.names(), "dl_updated_at"]


def test_new_fields_are_kept_missing_ones_are_null_and_no_column_moves(pipeline):
    write_pulls(pipeline.raw_data, DRIFTING_PULLS)
    pipeline.materialize()

    table = pipeline.table("event_data", "uuid")
    assert table.columns == EVENT_DATA_COLUMNS
    assert table.schema["geoip_latitude"] == schemas.EVENT_DATA["geoip_latitude"]
    rows = table.select(
        "uuid", "distinct_id", "event", "elements", "geoip_city_name", "geoip_latitude",
        "properties", "source_file", "record_index",
    ).rows()  # fmt: skip
    assert rows == [
        ("d-1", "alice", "$pageview", "[]", "Jakarta", -6.1944, '{"$lib":"web"}', EARLY, 0),
        ("d-2", "bob", "$pageview", None, None, -6.2, None, LATER, 0),
        ("d-3", "carol", None, None, "Bandung", None,
         '{"$os":"iOS","$geoip_postal_code":"40111","nested":{"a":[1]}}', LATER, 1),
    ]  # fmt: skip
    assert table["pulled_at"].to_list() == [
        datetime(2022, 10, 1, 9, 15, tzinfo=UTC),
        datetime(2022, 10, 1, 10, 15, tzinfo=UTC),
        datetime(2022, 10, 1, 10, 15, tzinfo=UTC),
    ]
    assert table["dl_updated_at"].min() > datetime(2026, 1, 1, tzinfo=UTC)
    assert pipeline.rows("dau", "event_date", "event_date, dau") == [(date(2022, 10, 1), 3)]

    # A new top-level field is one join away, in raw_events.
    warehouse = pipeline.warehouse
    joined = warehouse.query(
        "SELECT e.uuid, r.raw->>'$.\"$geoip_postal_code\"' AS postal_code, "
        "coalesce(r.raw->>'$.\"$os\"', e.properties->>'$.\"$os\"') AS os "
        f"FROM {warehouse.qualified('event_data')} AS e "
        f"JOIN {warehouse.qualified('raw_events')} AS r "
        "USING (pulled_at, source_file, record_index) ORDER BY e.uuid"
    )

    assert joined.rows() == [("d-1", None, None), ("d-2", "10110", "Android"), ("d-3", None, "iOS")]


OLD_EVENT_DATA = """
CREATE SCHEMA aquatech;
CREATE TABLE aquatech.event_data (
    pulled_at TIMESTAMPTZ, uuid VARCHAR, event_time TIMESTAMPTZ, event VARCHAR,
    distinct_id VARCHAR, source_file VARCHAR, geoip_city_name VARCHAR,
    geoip_postal_code VARCHAR, dl_updated_at TIMESTAMPTZ
);
INSERT INTO aquatech.event_data VALUES
    ('2022-10-01 08:10:00+00', 'old-1', '2022-10-01 08:00:00+00', '$identify', 'dave',
     '2022-10-01/20221001-081000.json', 'Surabaya', '60111', '2022-10-01 08:11:00+00'),
    ('2022-10-01 08:10:00+00', 'd-1', '2022-10-01 08:05:00+00', '$pageview', 'erin',
     '2022-10-01/20221001-081000.json', NULL, NULL, '2022-10-01 08:11:00+00');
"""


@pytest.mark.duckdb_only
def test_an_event_data_table_of_an_older_schema_gains_the_new_columns_by_name(pipeline):
    # Written before `properties`, `elements`, most geoip columns and `record_index` existed, in
    # another column order, with a column today's schema no longer has; two rows of 08:00, one
    # of them the first delivery of d-1, which the 09:15 pull delivers again.
    with duckdb.connect(str(pipeline.duckdb_path)) as connection:
        connection.execute(OLD_EVENT_DATA)
    write_pulls(pipeline.raw_data, DRIFTING_PULLS)
    pipeline.materialize()

    table = pipeline.table("event_data", "uuid")
    old_columns = ["pulled_at", "uuid", "event_time", "event", "distinct_id", "source_file",
                   "geoip_city_name", "geoip_postal_code", "dl_updated_at"]  # fmt: skip
    added = [name for name in schemas.EVENT_DATA.names() if name not in old_columns]
    assert table.columns == old_columns + added
    assert table.schema["properties"] == schemas.EVENT_DATA["properties"]
    assert table.select(
        "uuid", "distinct_id", "event", "event_time", "geoip_city_name", "geoip_postal_code",
        "properties", "record_index",
    ).rows() == [
        ("d-1", "erin", "$pageview", datetime(2022, 10, 1, 8, 5, tzinfo=UTC), None, None, None,
         None),
        ("d-2", "bob", "$pageview", datetime(2022, 10, 1, 10, tzinfo=UTC), None, None, None, 0),
        ("d-3", "carol", None, datetime(2022, 10, 1, 10, 1, tzinfo=UTC), "Bandung", None,
         '{"$os":"iOS","$geoip_postal_code":"40111","nested":{"a":[1]}}', 1),
        ("old-1", "dave", "$identify", datetime(2022, 10, 1, 8, tzinfo=UTC), "Surabaya",
         "60111", None, None),
    ]  # fmt: skip
    assert table.filter(table["uuid"] == "old-1")["dl_updated_at"].to_list() == [
        datetime(2022, 10, 1, 8, 11, tzinfo=UTC)
    ]
    # d-1's first delivery is the old 08:10 row (erin), so the 09:15 copy (alice) is dropped.
    assert pipeline.rows("dau", "event_date", "event_date, dau") == [(date(2022, 10, 1), 4)]
    activity = pipeline.rows("event_activity", "1 NULLS FIRST", "event, events, users")
    assert activity == [(None, 1, 1), ("$identify", 1, 1), ("$pageview", 2, 2)]
