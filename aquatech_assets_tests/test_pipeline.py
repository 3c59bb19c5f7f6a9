"""The whole graph on the hand-built pull folder, into a real DuckDB file under tmp_path."""

import os
from datetime import UTC, date, datetime

import dagster as dg
import duckdb
import pytest

from aquatech_assets.partitions import build_partitions
from aquatech_assets_tests.conftest import BASE_PULLS, LATE_PULL, START_DATE, event, write_pulls

DAU_BASE = [(date(2022, 10, 1), 4), (date(2022, 10, 2), 4)]
MAU_BASE = [(date(2022, 10, 1), 7)]
ACTIVITY_BASE = [
    (date(2022, 10, 1), "$identify", 1, 1),
    (date(2022, 10, 1), "$pageview", 3, 3),
    (date(2022, 10, 1), "lesson_booked", 1, 1),
    (date(2022, 10, 2), "$pageview", 4, 4),
]
EVENTS_BASE = [
    ("u-a", "21920", "2022-10-01/20221001-091500.json"),
    ("u-b", "21920", "2022-10-01/20221001-091500.json"),
    ("u-c", "alice", "2022-10-01/20221001-091500.json"),
    ("u-d", "bob", "2022-10-01/20221001-234510.json"),
    ("u-e", "carol", "2022-10-01/20221001-234510.json"),
    ("u-f", "dave", "2022-10-02/20221002-000005.json"),
    ("u-g", "alice", "2022-10-02/20221002-030100.json"),
    ("u-h", "erin", "2022-10-02/20221002-060000.json"),
    ("u-l", "grace", "2022-10-02/20221002-070000.json"),
]
TABLES = {
    "raw_events": "pulled_at, source_file, record_index",
    "event_data": "uuid",
    "rejected_events": "source_file, record_index NULLS FIRST",
    "dau": "event_date",
    "mau": "event_month",
    "event_activity": "event_date, event",
}


def snapshot(pipeline) -> dict:
    """Every table's rows without dl_updated_at, which a re-run is meant to change."""
    return {
        name: pipeline.table(name, order_by).drop("dl_updated_at").rows()
        for name, order_by in TABLES.items()
    }


def assert_base_answers(pipeline, summary) -> None:
    """The tables BASE_PULLS gives, worked out by hand in conftest."""
    assert summary.event_dates == {date(2022, 10, 1), date(2022, 10, 2)}
    assert pipeline.rows("dau", "event_date", "event_date, dau") == DAU_BASE
    assert pipeline.rows("mau", "event_month", "event_month, mau") == MAU_BASE
    activity = pipeline.rows("event_activity", "1, 2", "event_date, event, events, users")
    assert activity == ACTIVITY_BASE
    assert pipeline.rows("event_data", "uuid", "uuid, distinct_id, source_file") == EVENTS_BASE


def test_hand_built_pulls_give_the_answers_worked_out_by_hand(pipeline):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    summary = pipeline.materialize()

    assert_base_answers(pipeline, summary)
    assert len(pipeline.rows("raw_events", "1", "source_file")) == 15


def test_event_data_keeps_the_design_record_field_by_field(pipeline):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    pipeline.materialize()
    row = pipeline.table("event_data", "uuid").row(0, named=True)

    assert row["event"] == "$identify"
    assert row["event_time"] == datetime(2022, 10, 1, 9, 12, 41, 327000, tzinfo=UTC)
    assert row["elements"] == "[]"
    assert (row["geoip_city_name"], row["geoip_country_code"]) == ("Jakarta", "ID")
    assert (row["geoip_latitude"], row["geoip_longitude"]) == (-6.1944, 106.8229)
    assert row["geoip_subdivision_1_name"] == "Jakarta"
    assert row["pulled_at"] == datetime(2022, 10, 1, 9, 15, tzinfo=UTC)
    assert row["dl_updated_at"] > datetime(2026, 1, 1, tzinfo=UTC)


def test_timestamps_with_offsets_or_no_zone_land_on_their_utc_day(pipeline):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    pipeline.materialize()
    times = dict(pipeline.rows("event_data", "uuid", "uuid, event_time"))

    assert times["u-d"] == datetime(2022, 10, 1, 23, 40, tzinfo=UTC)
    assert times["u-e"] == datetime(2022, 10, 1, 23, 44, 59, tzinfo=UTC)
    assert times["u-f"] == datetime(2022, 10, 2, 0, 0, 1, 123456, tzinfo=UTC)
    assert times["u-g"] == datetime(2022, 10, 2, 3, 0, tzinfo=UTC)


def test_bad_files_and_records_are_kept_with_reasons_and_good_neighbours_land(pipeline):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    pipeline.materialize()
    rejected = pipeline.rows(
        "rejected_events", "source_file, record_index NULLS FIRST", "source_file, reason"
    )

    assert [(source, reason.split(":")[0]) for source, reason in rejected] == [
        ("2022-10-02/20221002-050000.json", "empty file"),
        ("2022-10-02/20221002-060000.json", "file does not parse"),
        ("2022-10-02/20221002-070000.json", "record is not a JSON object but a number"),
        ("2022-10-02/20221002-070000.json", "missing uuid"),
        ("2022-10-02/20221002-070000.json", "missing distinct_id"),
        ("2022-10-02/20221002-070000.json", 'unreadable timestamp "yesterday"'),
    ]
    assert "the 1 complete records before the break were kept" in rejected[1][1]
    uuids = {row[0] for row in pipeline.rows("event_data", "uuid", "uuid")}
    assert {"u-h", "u-l"} <= uuids
    assert not {"u-i", "u-j", "u-k", "u-z"} & uuids


def test_materialization_metadata_counts_files_rejections_duplicates_and_dates(pipeline):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    pipeline.materialize()
    first_day = pipeline.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("event_data"), asset_partitions=["2022-10-01-09:00"]
        ),
        limit=1,
    )
    metadata = first_day.records[0].asset_materialization.metadata
    second_day = pipeline.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("event_data"), asset_partitions=["2022-10-02-07:00"]
        ),
        limit=1,
    )
    later = second_day.records[0].asset_materialization.metadata

    # 14 hours without pulls after 09:00 split the runs: 10-01 09:00 alone, then 23:00 to 07:00.
    assert metadata["run_window"].value == "2022-10-01 09:00 .. 2022-10-01 10:00 UTC"
    assert metadata["pull_hours_in_run"].value == 1
    assert metadata["files_read"].value == 1
    assert metadata["files_skipped"].value == 1
    assert metadata["skipped_files"].value == [
        "2022-10-01/latest.json (name is not a pull stamp YYYYMMDD-HHMMSS.json)"
    ]
    assert metadata["records_read"].value == 4
    assert metadata["duplicates_dropped"].value == 1
    assert metadata["dagster/row_count"].value == 3
    assert metadata["event_dates"].value == ["2022-10-01"]
    assert metadata["event_time_min"].value == "2022-10-01T09:12:41.327000+00:00"
    assert later["run_window"].value == "2022-10-01 23:00 .. 2022-10-02 08:00 UTC"
    assert later["pull_hours_in_run"].value == 9
    assert later["files_read"].value == 7
    assert later["files_rejected"].value == 2
    assert later["records_rejected"].value == 6
    assert later["redeliveries_of_stored_events_dropped"].value == 1
    assert later["late_records"].value == 1
    assert later["event_dates"].value == ["2022-10-01", "2022-10-02"]


def test_rerunning_everything_or_one_partition_leaves_every_table_identical(pipeline):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    pipeline.materialize()
    before = snapshot(pipeline)

    pipeline.materialize()
    assert snapshot(pipeline) == before

    one_hour = [datetime(2022, 10, 1, 9, tzinfo=UTC)]
    pipeline.materialize(one_hour)
    assert snapshot(pipeline) == before


def test_first_delivery_wins_whatever_order_the_hours_run_in(pipeline):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    later_day = [datetime(2022, 10, 2, hour, tzinfo=UTC) for hour in (0, 3, 4, 5, 6, 7)]
    earlier_day = [datetime(2022, 10, 1, hour, tzinfo=UTC) for hour in (9, 23)]
    pipeline.materialize(later_day)
    assert ("u-c", "2022-10-02/20221002-000005.json") in pipeline.rows(
        "event_data", "uuid", "uuid, source_file"
    )

    pipeline.materialize(earlier_day)

    assert pipeline.rows("event_data", "uuid", "uuid, distinct_id, source_file") == EVENTS_BASE
    assert pipeline.rows("dau", "event_date", "event_date, dau") == DAU_BASE


def test_a_late_pull_changes_exactly_the_rows_of_the_days_and_months_it_touches(pipeline):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    pipeline.materialize()
    stamps_before = dict(pipeline.rows("dau", "event_date", "event_date, dl_updated_at"))

    write_pulls(pipeline.raw_data, LATE_PULL)
    summary = pipeline.materialize([datetime(2022, 10, 22, 12, tzinfo=UTC)])

    assert summary.event_dates == {date(2022, 9, 28), date(2022, 10, 1), date(2022, 10, 22)}
    assert [run[:2] for run in summary.runs] == [
        ("ingest_job", "2022-10-22-12:00"),
        ("daily_aggregates_job", "2022-09-28"),
        ("daily_aggregates_job", "2022-10-01"),
        ("daily_aggregates_job", "2022-10-22"),
        ("monthly_aggregates_job", "2022-09-01...2022-10-01"),
    ]
    assert pipeline.rows("dau", "event_date", "event_date, dau") == [
        (date(2022, 9, 28), 1),
        (date(2022, 10, 1), 5),
        (date(2022, 10, 2), 4),
        (date(2022, 10, 22), 1),
    ]
    assert pipeline.rows("mau", "event_month", "event_month, mau") == [
        (date(2022, 9, 1), 1),
        (date(2022, 10, 1), 8),
    ]
    activity = pipeline.rows("event_activity", "1, 2", "event_date, event, events, users")
    assert (date(2022, 10, 1), "$identify", 2, 2) in activity
    stamps_after = dict(pipeline.rows("dau", "event_date", "event_date, dl_updated_at"))
    assert stamps_after[date(2022, 10, 2)] == stamps_before[date(2022, 10, 2)]
    assert stamps_after[date(2022, 10, 1)] > stamps_before[date(2022, 10, 1)]


@pytest.mark.duckdb_only
def test_aggregates_ignore_the_duckdb_session_time_zone(pipeline):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    pipeline.materialize()
    partitions = build_partitions(START_DATE)
    with duckdb.connect(str(pipeline.duckdb_path)) as connection:
        connection.execute("SET TimeZone = 'America/New_York'")
        connection.execute("DELETE FROM aquatech.dau")
    pipeline.materialize([datetime(2022, 10, 1, 23, tzinfo=UTC)])

    assert pipeline.rows("dau", "event_date", "event_date, dau") == [(date(2022, 10, 1), 4)]
    assert (
        partitions.daily.get_partition_key_for_timestamp(
            datetime(2022, 10, 1, 23, 59, tzinfo=UTC).timestamp()
        )
        == "2022-10-01"
    )


@pytest.mark.skipif("AQUATECH_EXPECT_TZ" not in os.environ, reason="run by test_time_zones")
def test_the_machine_time_zone_really_is_the_one_under_test():
    with duckdb.connect() as connection:
        zone = connection.sql("SELECT current_setting('TimeZone')").fetchall()[0][0]
    assert zone == os.environ["AQUATECH_EXPECT_TZ"]


def test_a_downstream_asset_loads_one_hour_of_event_data_through_the_io_manager(pipeline):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    pipeline.materialize()
    seen = {}

    @dg.asset(partitions_def=pipeline.partitions.hourly)
    def hour_users(event_data) -> None:
        seen["users"] = sorted(event_data["distinct_id"].to_list())

    result = dg.materialize(
        [*pipeline.defs.assets, hour_users],
        selection=[hour_users],
        partition_key="2022-10-01-23:00",
        resources=pipeline.defs.resources,
        instance=pipeline.instance,
    )

    assert result.success
    assert seen["users"] == ["bob", "carol"]


def test_replacing_a_later_copy_recounts_the_day_that_copy_fell_on(pipeline):
    # One uuid, two different copies: the 10-01 pull's (user "first") and the 10-02 pull's (user
    # "second", on 10-02). Ingesting 10-02 first counts "second" on 10-02; ingesting 10-01 then
    # replaces that copy, so 10-02 must be recounted to {"other"} alone.
    write_pulls(
        pipeline.raw_data,
        {
            "2022-10-01/20221001-091500.json": [
                event("dup", "first", "$pageview", "2022-10-01T09:00:00Z")
            ],
            "2022-10-02/20221002-100000.json": [
                event("dup", "second", "$pageview", "2022-10-02T09:59:00Z"),
                event("solo", "other", "$pageview", "2022-10-02T09:58:00Z"),
            ],
        },
    )
    pipeline.materialize([datetime(2022, 10, 2, 10, tzinfo=UTC)])
    assert pipeline.rows("dau", "event_date", "event_date, dau") == [(date(2022, 10, 2), 2)]

    summary = pipeline.materialize([datetime(2022, 10, 1, 9, tzinfo=UTC)])

    assert summary.event_dates == {date(2022, 10, 1), date(2022, 10, 2)}
    assert pipeline.rows("dau", "event_date", "event_date, dau") == [
        (date(2022, 10, 1), 1),
        (date(2022, 10, 2), 1),
    ]
    assert pipeline.rows("event_data", "uuid", "uuid, distinct_id") == [
        ("dup", "first"),
        ("solo", "other"),
    ]


def test_rerunning_an_hour_whose_file_was_deleted_clears_it_and_recounts_its_days(pipeline):
    write_pulls(pipeline.raw_data, {**BASE_PULLS, **LATE_PULL})
    pipeline.materialize()
    (pipeline.raw_data / "2022-10-22" / "20221022-120000.json").unlink()

    summary = pipeline.materialize([datetime(2022, 10, 22, 12, tzinfo=UTC)])

    assert summary.event_dates == {date(2022, 9, 28), date(2022, 10, 1), date(2022, 10, 22)}
    assert snapshot(pipeline)["dau"] == DAU_BASE
    assert snapshot(pipeline)["mau"] == MAU_BASE
