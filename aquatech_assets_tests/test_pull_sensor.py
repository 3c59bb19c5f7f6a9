"""The pull sensor's cursor walked through the cases that lose or repeat work in naive designs."""

import os
from datetime import UTC, datetime

import dagster as dg
import pytest

from aquatech_assets.resources import PullStore
from aquatech_assets.sensors import decode_fingerprints
from aquatech_assets_tests.conftest import BASE_PULLS, LATE_PULL, event, write_file, write_pulls

OLD = datetime(2020, 1, 1, tzinfo=UTC).timestamp()


@pytest.fixture
def tick(pipeline):
    sensor = pipeline.defs.resolve_sensor_def("pull_sensor")
    store = PullStore(root=str(pipeline.raw_data))

    def evaluate(cursor):
        context = dg.build_sensor_context(
            instance=pipeline.instance, cursor=cursor, resources={"pull_store": store}
        )
        return sensor(context)

    return evaluate


def requested(result) -> list[str]:
    labels = []
    for request in result.run_requests:
        key_range = request.partition_key_range
        labels.append(f"{key_range.start}..{key_range.end}" if key_range else request.partition_key)
    return labels


def test_the_first_tick_on_an_empty_folder_requests_nothing(tick):
    assert isinstance(tick(None), dg.SkipReason)


def test_the_first_tick_requests_exactly_the_hours_with_files_adjacent_ones_together(
    pipeline, tick
):
    write_pulls(pipeline.raw_data, {**BASE_PULLS, **LATE_PULL})

    result = tick(None)

    assert requested(result) == [
        "2022-10-01-09:00",
        "2022-10-01-23:00",
        "2022-10-02-00:00",
        "2022-10-02-03:00..2022-10-02-07:00",
        "2022-10-22-12:00",
    ]
    assert {request.job_name for request in result.run_requests} == {"ingest_job"}
    assert len(decode_fingerprints(result.cursor)) == 9


def test_a_tick_with_nothing_changed_requests_nothing_even_after_a_restart(pipeline, tick):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    first = tick(None)

    again = tick(first.cursor)

    assert isinstance(again, dg.SkipReason)


def test_repeating_a_tick_from_the_same_cursor_asks_with_the_same_run_keys(pipeline, tick):
    write_pulls(pipeline.raw_data, BASE_PULLS)

    keys = [[request.run_key for request in tick(None).run_requests] for _ in range(2)]

    assert keys[0] == keys[1]


def test_a_new_file_requests_only_its_hour(pipeline, tick):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    first = tick(None)
    write_pulls(pipeline.raw_data, LATE_PULL)

    result = tick(first.cursor)

    assert requested(result) == ["2022-10-22-12:00"]


def test_a_late_copy_with_an_old_name_and_mtime_into_a_run_hour_runs_that_hour_again(
    pipeline, tick
):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    first = tick(None)
    late = pipeline.raw_data / "2022-10-01" / "20221001-091000.json"
    write_file(late, [event("u-late", "zoe", "$pageview", "2022-10-01T09:05:00Z")])
    os.utime(late, (OLD, OLD))

    result = tick(first.cursor)

    assert requested(result) == ["2022-10-01-09:00"]
    assert result.run_requests[0].run_key not in {r.run_key for r in first.run_requests}


def test_a_file_rewritten_in_place_runs_its_hour_again_even_with_its_old_size_and_mtime(
    pipeline, tick
):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    path = pipeline.raw_data / "2022-10-02" / "20221002-030100.json"
    os.utime(path, (OLD, OLD))
    first = tick(None)
    text = path.read_text().replace("alice", "alicf")
    path.write_text(text)
    os.utime(path, (OLD, OLD))

    result = tick(first.cursor)

    assert requested(result) == ["2022-10-02-03:00"]


def test_a_deleted_file_runs_its_hour_again_so_its_rows_are_cleared(pipeline, tick):
    write_pulls(pipeline.raw_data, {**BASE_PULLS, **LATE_PULL})
    first = tick(None)
    (pipeline.raw_data / "2022-10-22" / "20221022-120000.json").unlink()

    assert requested(tick(first.cursor)) == ["2022-10-22-12:00"]


def test_hours_materialized_before_the_first_tick_are_taken_as_they_are(pipeline, tick):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    pipeline.materialize()
    write_pulls(pipeline.raw_data, LATE_PULL)

    assert requested(tick(None)) == ["2022-10-22-12:00"]


def test_pull_hours_before_the_start_date_are_not_requested(pipeline, tick):
    write_file(pipeline.raw_data / "2022-08-15" / "20220815-100000.json", [])

    result = tick(None)

    assert result.run_requests == []
    assert set(decode_fingerprints(result.cursor)) == {"2022-08-15-10:00"}
    assert isinstance(tick(result.cursor), dg.SkipReason)


def test_a_whole_new_day_of_pulls_is_one_run_and_a_day_boundary_splits_runs(pipeline, tick):
    hours = {
        f"2022-10-0{day}/2022100{day}-{hour:02d}0500.json": []
        for day in (1, 2)
        for hour in range(24)
    }
    write_pulls(pipeline.raw_data, hours)

    assert requested(tick(None)) == [
        "2022-10-01-00:00..2022-10-01-23:00",
        "2022-10-02-00:00..2022-10-02-23:00",
    ]


def test_the_requested_runs_launch_and_ingest_the_files(pipeline, tick):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    for request in tick(None).run_requests:
        pipeline.launch(request)

    assert len(pipeline.rows("event_data", "uuid", "uuid")) == 9
