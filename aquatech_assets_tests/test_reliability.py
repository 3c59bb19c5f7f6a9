"""Nothing lost or doubled: concurrent `aquatech materialize`, killed runs, a reader on the file.

Every test runs the CLI as a user would, in processes of its own, on small generated pulls, and
compares the tables with the standard-library count of `independent.py`.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import duckdb
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


HOLD_READ_ONLY = """
import sys, duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
sys.stdin.readline()
connection.close()
"""


def hold_read_only(path: Path) -> subprocess.Popen:
    """A notebook with the file open read-only, until a line is written to its stdin."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_READ_ONLY, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


def close(holder: subprocess.Popen) -> None:
    holder.stdin.write("done\n")
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0


def wait_for_line(process: subprocess.Popen, log: Path, text: str) -> None:
    deadline = time.monotonic() + 120
    while text not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def test_a_reader_holding_the_file_makes_materialize_wait_then_fail_past_the_limit(tmp_path):
    env = fresh_env(tmp_path)
    write_sample_pulls(tmp_path, START, 1, users=200, events_per_day=400, seed=3)
    database = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(database)).close()  # a reader can only open a file that exists

    holder = hold_read_only(database)
    holder_pid = holder.pid
    log = tmp_path / "waits.log"
    waits = start_materialize(env, tmp_path, "2022-10-01-00:00", "2022-10-01-11:00", log)
    try:
        wait_for_line(waits, log, "waited")
    finally:
        close(holder)
    assert waits.wait(timeout=120) == 0, log.read_text()
    wait_line = next(line for line in log.read_text().splitlines() if "waited" in line)
    assert f"waiting for {database}: another process holds it" in wait_line
    assert f"(PID {holder_pid})" in wait_line
    assert "of at most 600 s (AQUATECH_DUCKDB_LOCK_TIMEOUT)" in wait_line

    holder = hold_read_only(database)
    try:
        impatient = subprocess.run(
            [*AQUATECH, "materialize", "--from", "2022-10-01-12:00", "--to", "2022-10-01-23:00"],
            env={**env, "AQUATECH_DUCKDB_LOCK_TIMEOUT": "1"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        close(holder)
    output = impatient.stdout + impatient.stderr
    assert impatient.returncode == 1, output
    assert "stayed locked by another process for 1 s" in output
    assert "Close the other connection" in output
    assert "set AQUATECH_DUCKDB_LOCK_TIMEOUT" in output
    assert "aquatech: 1 of 1 runs failed" in output

    run(["materialize", "--from", "2022-10-01-12:00", "--to", "2022-10-01-23:00"], env, tmp_path)
    answers = independent.count(tmp_path / "raw_data")
    assert answers.events == 400
    assert_tables_match(database, answers)


def contents(database: Path) -> tuple[frozenset, frozenset]:
    """What a separate read-only look sees: the raw_events and event_data rows, by key."""
    with duckdb.connect(str(database), read_only=True) as connection:
        raw = connection.sql("SELECT source_file, record_index FROM aquatech.raw_events")
        events = connection.sql("SELECT uuid, pulled_at FROM aquatech.event_data")
        return frozenset(raw.fetchall()), frozenset(events.fetchall())


def kill_when(process: subprocess.Popen, seen) -> None:
    deadline = time.monotonic() + 120
    while not seen():
        assert process.poll() is None, "the run ended before it was killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


def test_runs_killed_while_writing_leave_whole_partitions_and_a_re_run_is_exact(tmp_path):
    env = {**fresh_env(tmp_path), "PYTHONUNBUFFERED": "1"}
    database = tmp_path / "warehouse.duckdb"
    wal = database.with_name(database.name + ".wal")
    hours = ("--from", "2022-10-01-00:00", "--to", "2022-10-01-23:00")
    write_sample_pulls(tmp_path, START, 1, users=1_000, events_per_day=1_000, seed=1)
    run(["materialize", *hours], env, tmp_path)
    old = contents(database)
    # The same pull names with twenty times the records: every write replaces the partition.
    write_sample_pulls(tmp_path, START, 1, users=1_000, events_per_day=20_000, seed=1)

    seen_states = []
    kill_points = {
        "the first commit has begun (DuckDB's WAL exists)": lambda log: wal.exists(),
        "raw_events is written, event_data is being written": (
            lambda log: '"raw_events": wrote' in log.read_text()
        ),
    }
    for index, seen in enumerate(kill_points.values()):
        log = tmp_path / f"killed-{index}.log"
        process = start_materialize(env, tmp_path, hours[1], hours[3], log)
        kill_when(process, lambda log=log, seen=seen: seen(log))
        seen_states.append(contents(database))

    run(["materialize", *hours], env, tmp_path)
    new = contents(database)
    assert len(new[1]) == 20_000 and len(old[1]) == 1_000
    for raw, events in seen_states:
        assert raw in (old[0], new[0])
        assert events in (old[1], new[1])
    answers = independent.count(tmp_path / "raw_data")
    assert_tables_match(database, answers)
