"""Nothing lost or doubled: concurrent `aquatech materialize`, killed runs, a reader on the file.

Every test runs the CLI as a user would, in processes of its own, on small generated pulls, and
compares the tables with the standard-library count of `independent.py`.
"""

import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest

from aquatech_assets.definitions import build_definitions
from aquatech_assets.jobs import DAILY_JOB
from aquatech_assets.resources import DuckDBWarehouse
from aquatech_assets.sample_data import write_sample_pulls
from aquatech_assets.settings import Settings
from aquatech_assets_tests import independent
from aquatech_assets_tests.conftest import event, write_pulls
from aquatech_assets_tests.test_cli import assert_tables_match, run

AQUATECH = [sys.executable, "-m", "aquatech_assets.cli"]
START = date(2022, 10, 1)

pytestmark = pytest.mark.duckdb_only


def fresh_env(tmp_path: Path) -> dict:
    """An empty DAGSTER_HOME: no dagster.yaml, so no pool limit and no instance tables yet."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    return {
        **os.environ,
        "AQUATECH_RAW_DATA": str(tmp_path / "raw_data"),
        "AQUATECH_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
    }


def start_materialize(env: dict, cwd: Path, start: str, end: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*AQUATECH, "materialize", "--from", start, "--to", end],
        env=env,
        cwd=cwd,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def test_four_materialize_processes_started_together_on_an_empty_home_end_exact(tmp_path):
    env = fresh_env(tmp_path)
    write_sample_pulls(tmp_path, START, 2, users=300, events_per_day=1_500, seed=6)
    ranges = [
        ("2022-10-01-00:00", "2022-10-01-11:00"),
        ("2022-10-01-12:00", "2022-10-01-23:00"),
        ("2022-10-02-00:00", "2022-10-02-11:00"),
        ("2022-10-02-12:00", "2022-10-02-23:00"),
    ]
    logs = [tmp_path / f"materialize-{index}.log" for index in range(len(ranges))]

    processes = [
        start_materialize(env, tmp_path, start, end, log)
        for (start, end), log in zip(ranges, logs, strict=True)
    ]
    statuses = [process.wait(timeout=300) for process in processes]

    outputs = [log.read_text() for log in logs]
    assert statuses == [0, 0, 0, 0], "\n\n".join(outputs)
    answers = independent.count(tmp_path / "raw_data")
    assert answers.events == 3_000
    assert_tables_match(tmp_path / "warehouse.duckdb", answers)


def test_a_recount_that_read_before_another_run_wrote_is_not_stored_over_its_result(
    tmp_path, monkeypatch
):
    # dau is read in the warehouse and then written: a second process ingesting an hour and
    # recounting the day in between must wait, or the first write stores a count without it.
    env = fresh_env(tmp_path)
    raw_data = tmp_path / "raw_data"
    write_pulls(raw_data, {"2022-10-01/20221001-090000.json": [
        event("a-1", "alice", "$pageview", "2022-10-01T08:00:00Z"),
        event("b-1", "bob", "$pageview", "2022-10-01T08:30:00Z"),
    ]})  # fmt: skip
    run(["materialize"], env, tmp_path)
    write_pulls(raw_data, {"2022-10-01/20221001-150000.json": [
        event("c-1", "carol", "$pageview", "2022-10-01T14:00:00Z"),
    ]})  # fmt: skip
    read, resume = threading.Event(), threading.Event()
    aggregate = DuckDBWarehouse.aggregate

    def aggregate_then_pause(self, name, start, end):
        frame = aggregate(self, name, start, end)
        if name == "dau":
            read.set()
            resume.wait(timeout=120)
        return frame

    monkeypatch.setattr(DuckDBWarehouse, "aggregate", aggregate_then_pause)
    config = Settings(str(raw_data), "duckdb", env["AQUATECH_DUCKDB_PATH"], date(2022, 9, 1))
    defs = build_definitions(config, duckdb_path=config.duckdb_path)
    job = defs.resolve_job_def(DAILY_JOB)
    outcome = {}
    recount = threading.Thread(
        target=lambda: outcome.update(
            result=job.execute_in_process(partition_key="2022-10-01", raise_on_error=False)
        )
    )
    recount.start()
    assert read.wait(timeout=60)
    log = tmp_path / "second.log"
    second = start_materialize(env, tmp_path, "2022-10-01-15:00", "2022-10-01-15:00", log)
    while second.poll() is None and "waiting for another run" not in log.read_text():
        time.sleep(0.1)
    resume.set()
    recount.join(timeout=120)

    assert second.wait(timeout=120) == 0, log.read_text()
    assert outcome["result"].success
    answers = independent.count(raw_data)
    assert answers.dau == {date(2022, 10, 1): 3}
    assert_tables_match(tmp_path / "warehouse.duckdb", answers)
    assert "waiting for another run that is writing" in log.read_text()
