"""`dagster dev` itself, left alone: pulls copied in end as exact tables, late pulls too.

This proves the sensors run by default and chain (pull_sensor ingests, late_data_sensor
recounts) and that a restart loses and repeats nothing. Every wait is bounded; the processes
are stopped by their own process group.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from aquatech_assets.sample_data import write_sample_pulls
from aquatech_assets_tests import independent
from aquatech_assets_tests.gcs_emulator import fake_gcs_server

REPO = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).with_name("dagster")
OLD = datetime(2021, 6, 1, tzinfo=UTC).timestamp()
STARTUP_SECONDS = 180
SETTLE_SECONDS = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _default_signals() -> None:
    # A background job of a non-interactive shell starts with SIGINT ignored, and dagster dev
    # copies SIGINT's handling onto SIGTERM; put both back so the server can be stopped.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class DagsterDev:
    def __init__(self, tmp_path: Path, env: dict):
        self.log_path = tmp_path / "dagster-dev.log"
        self.port = free_port()
        self.process = subprocess.Popen(
            [str(DAGSTER), "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1",
             "-p", str(self.port)],
            cwd=tmp_path,
            env=env,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )  # fmt: skip

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def wait_until_serving(self) -> None:
        url = f"http://127.0.0.1:{self.port}/server_info"
        wait_for(lambda: _answers(url), STARTUP_SECONDS, "dagster dev to serve", self)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for(condition, seconds: float, what: str, server: DagsterDev) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"dagster dev exited while waiting for {what}:\n{server.log_tail()}")
        if condition():
            return
        time.sleep(3)
    pytest.fail(f"gave up after {seconds} s waiting for {what}:\n{server.log_tail()}")


def tables_match(database: Path, answers: independent.Answers) -> bool:
    try:
        with duckdb.connect(str(database), read_only=True) as connection:
            dau = dict(connection.sql("SELECT event_date, dau FROM aquatech.dau").fetchall())
            mau = dict(connection.sql("SELECT event_month, mau FROM aquatech.mau").fetchall())
            activity = {
                (day, name): (events, users)
                for day, name, events, users in connection.sql(
                    "SELECT event_date, event, events, users FROM aquatech.event_activity"
                ).fetchall()
            }
    except duckdb.Error:  # not created yet, or a run holds the write lock this moment
        return False
    return (dau, mau, activity) == (answers.dau, answers.mau, answers.activity)


def held_back_pulls() -> dict[str, list[dict]]:
    """A pull for an hour already ingested, and a pull three days on with records weeks late."""

    def record(uuid: str, user: str, timestamp: str) -> dict:
        return {"distinct_id": user, "elements": [], "event": "$pageview",
                "timestamp": timestamp, "uuid": uuid}  # fmt: skip

    return {
        "2022-10-01/20221001-093333.json": [
            record("held-1", "800001", "2022-10-01T09:30:00Z"),
            record("held-2", "800002", "2022-09-25T12:00:00Z"),
        ],
        "2022-10-04/20221004-080000.json": [
            record("late-1", "800003", "2022-09-12T08:00:00Z"),
            record("late-2", "800004", "2022-10-04T07:59:00Z"),
        ],
    }


class Folder:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir()

    def location(self) -> str:
        return str(self.root)

    def put(self, source: Path, old_times: bool = False) -> None:
        for path in sorted(source.glob("*/*.json")):
            target = self.root / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            if old_times:
                os.utime(target, (OLD, OLD))


class Bucket:
    def __init__(self):
        client = storage.Client(project="aquatech-emulator", credentials=AnonymousCredentials())
        self.bucket = client.create_bucket("device-pulls")

    def location(self) -> str:
        return "gs://device-pulls/raw_data"

    def put(self, source: Path, old_times: bool = False) -> None:
        for path in sorted(source.glob("*/*.json")):
            name = f"raw_data/{path.relative_to(source).as_posix()}"
            self.bucket.blob(name).upload_from_filename(str(path))


@pytest.fixture(params=["folder", "bucket"])
def store(request, tmp_path):
    if request.param == "folder":
        yield Folder(tmp_path / "raw_data")
        return
    with fake_gcs_server(tmp_path):
        yield Bucket()


def ingest_runs(monkeypatch, home: Path) -> int:
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        return len(instance.get_run_records(dg.RunsFilter(job_name="ingest_job")))


def test_dagster_dev_alone_turns_copied_pulls_and_late_pulls_into_exact_tables(
    store, tmp_path, monkeypatch
):
    staging = tmp_path / "staging"
    write_sample_pulls(staging, date(2022, 10, 1), 1, users=400, events_per_day=2000, seed=7)
    late = tmp_path / "late"
    for name, records in held_back_pulls().items():
        (late / name).parent.mkdir(parents=True, exist_ok=True)
        (late / name).write_text(json.dumps(records))
    assert not (staging / "raw_data" / "2022-10-01" / "20221001-093333.json").exists()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    database = tmp_path / "warehouse.duckdb"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "AQUATECH_RAW_DATA": store.location(),
        "AQUATECH_DUCKDB_PATH": str(database),
    }
    server = DagsterDev(tmp_path, env)
    try:
        server.wait_until_serving()
        store.put(staging / "raw_data")
        first = independent.count(staging / "raw_data")
        wait_for(lambda: tables_match(database, first), SETTLE_SECONDS, "the day's tables", server)
    finally:
        server.stop()
    runs_before_restart = ingest_runs(monkeypatch, home)

    server = DagsterDev(tmp_path, env)
    try:
        server.wait_until_serving()
        store.put(late, old_times=True)
        shutil.copytree(late, staging / "raw_data", dirs_exist_ok=True)
        second = independent.count(staging / "raw_data")
        assert second.dau != first.dau
        wait_for(lambda: tables_match(database, second), SETTLE_SECONDS, "the late rows", server)
    finally:
        server.stop()
    # The restart repeated nothing: one more ingest run for each of the two late pulls' days.
    assert ingest_runs(monkeypatch, home) == runs_before_restart + 2
