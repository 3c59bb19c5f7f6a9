"""The asset checks: each passes on good pulls and fails or warns on data built to break it.

An ingest run's checks cover its pull hours (their `scope`); *Execute checks* the whole table.
"""

from datetime import UTC, datetime

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from aquatech_assets import checks
from aquatech_assets.partitions import run_target
from aquatech_assets.resources import DuckDBWarehouse
from aquatech_assets_tests.conftest import BASE_PULLS, LATE_PULL, event, write_pulls

EVENT_DATA_CHECKS = (checks.UUID_UNIQUE, checks.NOT_BEFORE_START, checks.NOT_AFTER_PULL)
C_LATE = event("u-p", "judy", "$pageview", "2022-10-22T14:00:00Z")
INGEST_CHECKS = {
    dg.AssetCheckKey(dg.AssetKey("event_data"), name) for name in EVENT_DATA_CHECKS
} | {dg.AssetCheckKey(dg.AssetKey("rejected_events"), checks.REJECTED_SHARE)}
ALL_CHECKS = INGEST_CHECKS | {
    dg.AssetCheckKey(dg.AssetKey("mau"), checks.DAU_NOT_ABOVE_MAU),
    dg.AssetCheckKey(dg.AssetKey("event_activity"), checks.USERS_NOT_ABOVE_DAU),
}


def latest(pipeline, asset: str, name: str) -> dg.AssetCheckEvaluation:
    """The check's latest result as the UI shows it, which must be for no partition."""
    key = dg.AssetCheckKey(dg.AssetKey(asset), name)
    record = pipeline.instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    assert record.partition is None
    return record.evaluation


def metadata(evaluation: dg.AssetCheckEvaluation) -> dict:
    return {name: value.value for name, value in evaluation.metadata.items()}


def execute_checks(pipeline, keys=ALL_CHECKS, hours: dg.PartitionKeyRange | None = None) -> None:
    """What the UI's *Execute checks* launches: the checks alone, in a run of no partition; or,
    given hours, the ingest checks alone in a run aimed at those pull hours, as an ingest run
    is (re-ingesting them would repair what a test tampered with)."""
    job = (
        pipeline.defs.resolve_job_def("ingest_job")
        if hours
        else pipeline.defs.resolve_implicit_global_asset_job_def()
    ).get_subset(asset_selection=set(), asset_check_selection=set(keys))
    target = run_target(hours) if hours else {}
    assert job.execute_in_process(instance=pipeline.instance, **target).success


def tamper(pipeline, *statements: str) -> None:
    with duckdb.connect(str(pipeline.duckdb_path)) as connection:
        for statement in statements:
            connection.execute(statement)


def store_again(pipeline, uuid: str, pulled_as: str) -> None:
    """Stores a copy of uuid's event_data row, pulled when uuid pulled_as was (either
    warehouse: SQL both dialects read)."""
    table = pipeline.warehouse.qualified("event_data")
    statement = (
        f"INSERT INTO {table} SELECT * REPLACE ((SELECT MIN(pulled_at) FROM {table} "
        f"WHERE uuid = '{pulled_as}') AS pulled_at) FROM {table} WHERE uuid = '{uuid}'"
    )
    if isinstance(pipeline.warehouse, DuckDBWarehouse):
        tamper(pipeline, statement)
    else:
        pipeline.warehouse.query(statement)


def test_each_job_runs_the_checks_of_the_tables_it_writes(pipeline):
    def check_names(job: str) -> set[str]:
        graph = pipeline.defs.resolve_job_def(job).asset_layer.asset_graph
        return {key.name for key in graph.asset_check_keys}

    assert check_names("ingest_job") == {*EVENT_DATA_CHECKS, checks.REJECTED_SHARE}
    assert check_names("daily_aggregates_job") == {checks.USERS_NOT_ABOVE_DAU}
    assert check_names("monthly_aggregates_job") == {checks.DAU_NOT_ABOVE_MAU}
    graph = pipeline.defs.resolve_asset_graph()
    assert all(graph.get(key).partitions_def is None for key in ALL_CHECKS)


def test_on_an_empty_warehouse_every_check_passes_saying_there_is_nothing_to_check(pipeline):
    execute_checks(pipeline)

    for key in ALL_CHECKS:
        evaluation = latest(pipeline, key.asset_key.to_user_string(), key.name)
        assert evaluation.passed
        assert evaluation.description.startswith("nothing to check")


def test_late_pull_passes_every_check_with_its_pull_hour_or_whole_tables_counted(pipeline):
    write_pulls(pipeline.raw_data, LATE_PULL)
    pipeline.materialize()

    for key in ALL_CHECKS:
        assert latest(pipeline, key.asset_key.to_user_string(), key.name).passed, key
    unique = latest(pipeline, "event_data", checks.UUID_UNIQUE)
    assert metadata(unique) == {
        "scope": "pull hours 2022-10-22 12:00 .. 2022-10-22 13:00 UTC",
        "rows_checked": 3,
        "duplicated_uuids": 0,
        "rows_too_many": 0,
        "rows_with_duplicated_uuid": 0,
        "pull_hours": 0,
        "first_pull_hours": [],
        "duplicated_uuid_sample": [],
    }
    assert unique.severity == dg.AssetCheckSeverity.ERROR
    # dau 2022-09-28, 10-01 and 10-22 are 1 each; mau 2022-09 is 1 and 2022-10 is 2.
    assert metadata(latest(pipeline, "mau", checks.DAU_NOT_ABOVE_MAU)) == {
        "scope": "whole table",
        "days_checked": 3,
        "days_failing": 0,
        "failing_days": [],
    }
    assert metadata(latest(pipeline, "event_activity", checks.USERS_NOT_ABOVE_DAU)) == {
        "scope": "whole table",
        "rows_checked": 3,
        "rows_failing": 0,
        "days_failing": 0,
        "failing_rows": [],
    }
    assert (
        metadata(latest(pipeline, "rejected_events", checks.REJECTED_SHARE))[
            "hours_with_rejections"
        ]
        == 0
    )


def test_hours_with_most_records_rejected_warn_and_the_runs_still_succeed(pipeline):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    pipeline.materialize()  # asserts that every run succeeded

    evaluation = latest(pipeline, "rejected_events", checks.REJECTED_SHARE)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    # 05:00: the empty file; 06:00: the truncated file beside its one kept record; 07:00: four
    # of five records. The latest ingest run is the second, 10-01 23:00 .. 10-02 07:00 (09:15 is
    # more than MAX_GAP_HOURS before it).
    assert metadata(evaluation) == {
        "scope": "pull hours 2022-10-01 23:00 .. 2022-10-02 08:00 UTC",
        "threshold": 0.05,
        "hours_with_rejections": 3,
        "hours_above_threshold": 3,
        "hours_above": [
            {"pull_hour": "2022-10-02-05:00", "rejected": 1, "read": 1, "share": 1.0},
            {"pull_hour": "2022-10-02-06:00", "rejected": 1, "read": 2, "share": 0.5},
            {"pull_hour": "2022-10-02-07:00", "rejected": 4, "read": 5, "share": 0.8},
        ],
    }
    assert evaluation.description == (
        "pull hours 2022-10-01 23:00 .. 2022-10-02 08:00 UTC: 3 pull hours rejected more than 5% "
        "of what they read, the worst 100%"
    )
    assert latest(pipeline, "event_data", checks.UUID_UNIQUE).passed


def test_a_range_run_records_one_result_for_no_partition_scoped_to_its_hours(pipeline):
    """Pins what dagster 1.13 stores, which is what the UI lists in a check's history.

    One result per run, for no partition, whose `scope` names the run's pull hours. Dagster
    also plans the check once per partition of a partitioned run; those rows never get a
    result and the UI lists them as skipped.
    """
    write_pulls(pipeline.raw_data, LATE_PULL)
    write_pulls(pipeline.raw_data, {"2022-10-22/20221022-150000.json": [C_LATE]})
    pipeline.materialize()  # one ingest run, 2022-10-22-12:00 ... 15:00

    key = dg.AssetCheckKey(dg.AssetKey("event_data"), checks.UUID_UNIQUE)
    history = pipeline.instance.event_log_storage.get_asset_check_execution_history(key, 100)
    planned = AssetCheckExecutionRecordStatus.PLANNED
    results = [record for record in history if record.status != planned]
    assert [(record.partition, record.evaluation.passed) for record in results] == [(None, True)]
    assert metadata(results[0].evaluation)["rows_checked"] == 4
    assert metadata(results[0].evaluation)["scope"] == (
        "pull hours 2022-10-22 12:00 .. 2022-10-22 16:00 UTC"
    )
    never_evaluated = sorted(record.partition for record in history if record.status == planned)
    assert never_evaluated == [f"2022-10-22-{hour}:00" for hour in (12, 13, 14, 15)]


def test_one_rejected_record_in_twenty_is_at_the_threshold_and_two_warn(pipeline):
    hour = [event(f"v-{i}", "u", "$pageview", "2022-10-05T10:00:00Z") for i in range(20)]
    hour[0] = {"uuid": "v-0", "event": "$pageview"}
    worse = [dict(record, uuid=f"w-{i}") for i, record in enumerate(hour)]
    worse[1] = {"uuid": "w-1", "event": "$pageview"}
    write_pulls(
        pipeline.raw_data,
        {"2022-10-05/20221005-100500.json": hour, "2022-10-05/20221005-110500.json": worse},
    )
    pipeline.materialize()

    assert metadata(latest(pipeline, "rejected_events", checks.REJECTED_SHARE))["hours_above"] == [
        {"pull_hour": "2022-10-05-11:00", "rejected": 2, "read": 20, "share": 0.1}
    ]


def test_event_times_before_the_start_date_or_after_their_pull_warn_and_are_kept(pipeline):
    write_pulls(
        pipeline.raw_data,
        {
            "2022-10-03/20221003-100000.json": [
                event("t-ok", "ann", "$pageview", "2022-10-03T09:59:59Z"),
                event("t-same-second", "ann", "$pageview", "2022-10-03T10:00:00.900Z"),
                event("t-ahead", "ann", "$pageview", "2022-10-03T10:00:01Z"),
                event("t-old", "ann", "$pageview", "2022-08-31T23:59:59Z"),
            ]
        },
    )
    pipeline.materialize()

    stored = {row[0] for row in pipeline.rows("event_data", "uuid", "uuid")}
    assert stored == {"t-ok", "t-same-second", "t-ahead", "t-old"}
    ahead = latest(pipeline, "event_data", checks.NOT_AFTER_PULL)
    old = latest(pipeline, "event_data", checks.NOT_BEFORE_START)
    for evaluation in (ahead, old):
        assert not evaluation.passed
        assert evaluation.severity == dg.AssetCheckSeverity.WARN
    hour = [{"pull_hour": "2022-10-03-10:00", "rows": 1}]
    source = "2022-10-03/20221003-100000.json"
    assert metadata(ahead) == {
        "scope": "pull hours 2022-10-03 10:00 .. 2022-10-03 11:00 UTC",
        "rows_checked": 4,
        "events": 1,
        "pull_hours": 1,
        "first_pull_hours": hour,
        "event_sample": [
            {
                "uuid": "t-ahead",
                "event_time": "2022-10-03T10:00:01+00:00",
                "pulled_at": "2022-10-03T10:00:00+00:00",
                "source_file": source,
            }
        ],
    }
    assert metadata(old)["event_sample"] == [
        {
            "uuid": "t-old",
            "event_time": "2022-08-31T23:59:59+00:00",
            "pulled_at": "2022-10-03T10:00:00+00:00",
            "source_file": source,
        }
    ]
    assert old.description == (
        "pull hours 2022-10-03 10:00 .. 2022-10-03 11:00 UTC: 1 of 4 stored events are timed "
        "before 2022-09-01 (kept, not dropped)"
    )


@pytest.mark.duckdb_only
def test_a_uuid_stored_twice_fails_naming_its_pull_hours(pipeline):
    write_pulls(pipeline.raw_data, LATE_PULL)
    pipeline.materialize()
    tamper(
        pipeline,
        # u-m again an hour later, in another partition; u-n again in its own partition.
        "INSERT INTO aquatech.event_data SELECT * REPLACE (pulled_at + INTERVAL 1 HOUR "
        "AS pulled_at) FROM aquatech.event_data WHERE uuid = 'u-m'",
        "INSERT INTO aquatech.event_data SELECT * FROM aquatech.event_data WHERE uuid = 'u-n'",
    )
    execute_checks(pipeline)

    evaluation = latest(pipeline, "event_data", checks.UUID_UNIQUE)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert metadata(evaluation) == {
        "scope": "whole table",
        "rows_checked": 5,
        "duplicated_uuids": 2,
        "rows_too_many": 2,
        "rows_with_duplicated_uuid": 4,
        "pull_hours": 2,
        "first_pull_hours": [
            {"pull_hour": "2022-10-22-12:00", "rows": 3},
            {"pull_hour": "2022-10-22-13:00", "rows": 1},
        ],
        "duplicated_uuid_sample": [{"uuid": "u-m", "copies": 2}, {"uuid": "u-n", "copies": 2}],
    }
    assert evaluation.description == (
        "whole table: 2 uuids are stored more than once (2 rows too many), in 2 pull hours"
    )


@pytest.mark.duckdb_only
def test_a_day_above_its_month_and_an_event_above_its_day_fail(pipeline):
    write_pulls(pipeline.raw_data, LATE_PULL)
    pipeline.materialize()
    tamper(
        pipeline,
        "UPDATE aquatech.dau SET dau = 99 WHERE event_date = DATE '2022-10-01'",
        "DELETE FROM aquatech.mau WHERE event_month = DATE '2022-09-01'",
        "UPDATE aquatech.event_activity SET users = 5 WHERE event_date = DATE '2022-10-22'",
    )
    execute_checks(pipeline)

    month = latest(pipeline, "mau", checks.DAU_NOT_ABOVE_MAU)
    assert not month.passed
    assert month.severity == dg.AssetCheckSeverity.ERROR
    assert metadata(month) == {
        "scope": "whole table",
        "days_checked": 3,
        "days_failing": 2,
        "failing_days": [
            {"event_date": "2022-09-28", "dau": 1, "mau": None},
            {"event_date": "2022-10-01", "dau": 99, "mau": 2},
        ],
    }
    day = latest(pipeline, "event_activity", checks.USERS_NOT_ABOVE_DAU)
    assert not day.passed
    assert metadata(day) == {
        "scope": "whole table",
        "rows_checked": 3,
        "rows_failing": 1,
        "days_failing": 1,
        "failing_rows": [{"event_date": "2022-10-22", "event": "$pageview", "users": 5, "dau": 1}],
    }


def test_a_run_over_some_hours_checks_their_rows_and_their_uuids_against_all_hours(pipeline):
    """Hours A (10:00) hold good rows; hours B (14:00) an event ahead of its pull, one before
    the start date, a mostly rejected file and (tampered in) a uuid stored twice within B. A
    run over A reports none of that; a copy of an A uuid stored in B is found by the run over A.
    """
    hour_a, hour_b = (datetime(2022, 10, 5, hour, tzinfo=UTC) for hour in (10, 14))
    write_pulls(
        pipeline.raw_data,
        {
            "2022-10-05/20221005-100000.json": [
                event("a-1", "ann", "$pageview", "2022-10-05T09:59:00Z"),
                event("a-2", "bob", "$pageview", "2022-10-05T09:58:00Z"),
            ],
            "2022-10-05/20221005-140000.json": [
                event("b-ahead", "cat", "$pageview", "2022-10-05T15:00:00Z"),
                event("b-old", "cat", "$pageview", "2022-08-01T00:00:00Z"),
                {"uuid": "b-broken", "event": "$pageview"},
                event("b-1", "dan", "$pageview", "2022-10-05T13:59:00Z"),
            ],
        },
    )
    pipeline.materialize([hour_b])
    b_scope = "pull hours 2022-10-05 14:00 .. 2022-10-05 15:00 UTC"
    for name in (checks.NOT_AFTER_PULL, checks.NOT_BEFORE_START):
        evaluation = latest(pipeline, "event_data", name)
        assert not evaluation.passed
        assert metadata(evaluation)["scope"] == b_scope
    assert not latest(pipeline, "rejected_events", checks.REJECTED_SHARE).passed

    pipeline.materialize([hour_a])  # the ingest run over A, after B is stored
    a_scope = "pull hours 2022-10-05 10:00 .. 2022-10-05 11:00 UTC"
    for key in INGEST_CHECKS:
        evaluation = latest(pipeline, key.asset_key.to_user_string(), key.name)
        assert evaluation.passed, key
        assert metadata(evaluation)["scope"] == a_scope
        assert evaluation.description.startswith(f"{a_scope}: ")
    assert metadata(latest(pipeline, "event_data", checks.NOT_AFTER_PULL))["rows_checked"] == 2
    rejected = metadata(latest(pipeline, "rejected_events", checks.REJECTED_SHARE))
    assert rejected["hours_with_rejections"] == 0

    store_again(pipeline, "a-1", pulled_as="b-1")  # split across A and B
    store_again(pipeline, "b-1", pulled_as="b-1")  # twice in B only
    execute_checks(
        pipeline, INGEST_CHECKS, dg.PartitionKeyRange("2022-10-05-10:00", "2022-10-05-10:00")
    )

    unique = latest(pipeline, "event_data", checks.UUID_UNIQUE)
    assert not unique.passed
    assert metadata(unique) == {
        "scope": a_scope,
        "rows_checked": 2,
        "duplicated_uuids": 1,
        "rows_too_many": 1,
        "rows_with_duplicated_uuid": 2,
        "pull_hours": 2,
        "first_pull_hours": [
            {"pull_hour": "2022-10-05-10:00", "rows": 1},
            {"pull_hour": "2022-10-05-14:00", "rows": 1},
        ],
        "duplicated_uuid_sample": [{"uuid": "a-1", "copies": 2}],
    }
    assert unique.description == (
        f"{a_scope}: 1 uuids in these pull hours are stored more than once (1 rows too many), "
        "in 2 pull hours"
    )
    assert latest(pipeline, "event_data", checks.NOT_AFTER_PULL).passed

    # Over A and B (a range run), and over the whole table, both duplicates are found.
    execute_checks(
        pipeline, INGEST_CHECKS, dg.PartitionKeyRange("2022-10-05-10:00", "2022-10-05-14:00")
    )
    both = metadata(latest(pipeline, "event_data", checks.UUID_UNIQUE))
    assert both["scope"] == "pull hours 2022-10-05 10:00 .. 2022-10-05 15:00 UTC"
    assert both["duplicated_uuid_sample"] == [
        {"uuid": "a-1", "copies": 2},
        {"uuid": "b-1", "copies": 2},
    ]
    assert not latest(pipeline, "event_data", checks.NOT_AFTER_PULL).passed
    execute_checks(pipeline)
    whole = metadata(latest(pipeline, "event_data", checks.UUID_UNIQUE))
    assert (whole["scope"], whole["rows_checked"], whole["duplicated_uuids"]) == (
        "whole table",
        7,
        2,
    )
