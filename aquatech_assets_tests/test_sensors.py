"""The late-data sensor walked through its cursor on a real instance and a real DuckDB file."""

from datetime import date

import dagster as dg

from aquatech_assets.sensors import aggregate_run_requests
from aquatech_assets_tests.conftest import BASE_PULLS, LATE_PULL, write_pulls


def tick(pipeline, cursor):
    sensor = pipeline.defs.resolve_sensor_def("late_data_sensor")
    context = dg.build_sensor_context(
        instance=pipeline.instance, cursor=cursor, definitions=pipeline.defs
    )
    return sensor(context), context


def requested(result) -> list[tuple[str, str]]:
    rows = []
    for request in result.run_requests:
        key_range = request.partition_key_range
        label = f"{key_range.start}..{key_range.end}" if key_range else request.partition_key
        rows.append((request.job_name, label))
    return rows


def ingest(pipeline, partition_key: str) -> None:
    job = pipeline.defs.resolve_job_def("ingest_job")
    assert job.execute_in_process(instance=pipeline.instance, partition_key=partition_key).success


def test_first_tick_requests_the_days_and_months_of_everything_stored(pipeline):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    ingest(pipeline, "2022-10-01-09:00")
    ingest(pipeline, "2022-10-02-00:00")

    result, _ = tick(pipeline, None)

    assert requested(result) == [
        ("daily_aggregates_job", "2022-10-01..2022-10-02"),
        ("monthly_aggregates_job", "2022-10-01"),
    ]
    assert int(result.cursor) > 0


def test_a_tick_with_nothing_new_requests_nothing(pipeline):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    ingest(pipeline, "2022-10-01-09:00")
    first, _ = tick(pipeline, None)

    second, _ = tick(pipeline, first.cursor)

    assert isinstance(second, dg.SkipReason)


def test_a_late_pull_requests_exactly_the_days_it_touched_and_their_months(pipeline):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    ingest(pipeline, "2022-10-01-09:00")
    first, _ = tick(pipeline, None)
    write_pulls(pipeline.raw_data, LATE_PULL)
    ingest(pipeline, "2022-10-22-12:00")

    result, _ = tick(pipeline, first.cursor)

    assert requested(result) == [
        ("daily_aggregates_job", "2022-09-28"),
        ("daily_aggregates_job", "2022-10-01"),
        ("daily_aggregates_job", "2022-10-22"),
        ("monthly_aggregates_job", "2022-09-01..2022-10-01"),
    ]
    assert int(result.cursor) > int(first.cursor)
    assert len({request.run_key for request in result.run_requests}) == 4


def test_every_materialization_since_the_cursor_is_read_even_many_per_tick(pipeline):
    write_pulls(pipeline.raw_data, {**BASE_PULLS, **LATE_PULL})
    for key in ("2022-10-01-09:00", "2022-10-01-23:00", "2022-10-02-07:00", "2022-10-22-12:00"):
        ingest(pipeline, key)

    result, _ = tick(pipeline, None)

    assert requested(result) == [
        ("daily_aggregates_job", "2022-09-28"),
        ("daily_aggregates_job", "2022-10-01..2022-10-02"),
        ("daily_aggregates_job", "2022-10-22"),
        ("monthly_aggregates_job", "2022-09-01..2022-10-01"),
    ]


def test_the_requests_it_makes_launch_and_give_the_late_answer(pipeline):
    # Stored: 21920 and alice on 10-01 (the 09:15 pull), then heidi (10-01), ivan (09-28) and
    # 21920 (10-22) from the late pull: dau 10-01 = 3, mau 2022-10 = {21920, alice, heidi}.
    write_pulls(pipeline.raw_data, {**BASE_PULLS, **LATE_PULL})
    ingest(pipeline, "2022-10-01-09:00")
    ingest(pipeline, "2022-10-22-12:00")
    result, _ = tick(pipeline, None)

    for request in result.run_requests:
        pipeline.launch(request)

    assert pipeline.rows("dau", "event_date", "event_date, dau") == [
        (date(2022, 9, 28), 1),
        (date(2022, 10, 1), 3),
        (date(2022, 10, 22), 1),
    ]
    assert pipeline.rows("mau", "event_month", "event_month, mau") == [
        (date(2022, 9, 1), 1),
        (date(2022, 10, 1), 3),
    ]


def test_dates_before_the_start_date_get_no_request_and_are_reported(pipeline):
    requests, outside = aggregate_run_requests(
        [date(2022, 8, 31), date(2022, 9, 1)], pipeline.partitions
    )

    assert [(request.job_name, request.partition_key) for request in requests] == [
        ("daily_aggregates_job", "2022-09-01"),
        ("monthly_aggregates_job", "2022-09-01"),
    ]
    assert outside == [date(2022, 8, 31)]
