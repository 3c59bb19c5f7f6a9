"""The pipeline under machine time zones east and west of UTC, and DuckDB sessions elsewhere."""

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from aquatech_assets_tests.conftest import BASE_PULLS, write_pulls
from aquatech_assets_tests.test_pipeline import assert_base_answers

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("zone", ["Asia/Jakarta", "America/New_York"])
def test_the_pipeline_gives_the_same_answers_in_another_machine_time_zone(zone):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
         str(TESTS / "test_pipeline.py")],
        env={**os.environ, "TZ": zone, "AQUATECH_EXPECT_TZ": zone},
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-4000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout


SESSION_ZONE = "America/Los_Angeles"


@pytest.mark.duckdb_only
def test_the_pipeline_gives_the_same_answers_when_every_duckdb_session_starts_elsewhere(
    pipeline, monkeypatch
):
    # Every connection the product opens (staging and warehouse alike) starts in Los Angeles,
    # as it would for a DuckDB whose session zone was set by whoever opened it. The event
    # 2022-10-02T00:00:01Z is 10-01 there, and a zone-less 23:44:59 would be 10-02 in UTC.
    opened: list[str] = []
    connect = duckdb.connect

    def connect_elsewhere(*args, **kwargs):
        connection = connect(*args, **kwargs)
        connection.execute(f"SET TimeZone = '{SESSION_ZONE}'")
        opened.append(connection.sql("SELECT current_setting('TimeZone')").fetchall()[0][0])
        return connection

    monkeypatch.setattr(duckdb, "connect", connect_elsewhere)
    write_pulls(pipeline.raw_data, BASE_PULLS)
    summary = pipeline.materialize()

    assert len(opened) >= 4 and set(opened) == {SESSION_ZONE}
    assert_base_answers(pipeline, summary)
    times = dict(pipeline.rows("event_data", "uuid", "uuid, event_time"))
    assert times["u-e"] == datetime(2022, 10, 1, 23, 44, 59, tzinfo=UTC)
    assert times["u-f"] == datetime(2022, 10, 2, 0, 0, 1, 123456, tzinfo=UTC)
    late = pipeline.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("event_data"), asset_partitions=["2022-10-02-07:00"]
        ),
        limit=1,
    ).records[0]
    assert late.asset_materialization.metadata["late_records"].value == 1
