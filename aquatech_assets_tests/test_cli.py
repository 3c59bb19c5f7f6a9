"""`aquatech` as a user runs it: generated pulls, `materialize`, then a late pull."""

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from aquatech_assets_tests import independent

REPO = Path(__file__).resolve().parents[1]
AQUATECH = [sys.executable, "-m", "aquatech_assets.cli"]


def run(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        AQUATECH + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def user_env(tmp_path: Path) -> dict:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "AQUATECH_RAW_DATA": str(tmp_path / "raw_data"),
        "AQUATECH_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
    }


def stored(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.sql(sql).fetchall()


def assert_tables_match(database: Path, answers: independent.Answers) -> None:
    dau = dict(stored(database, "SELECT event_date, dau FROM aquatech.dau"))
    mau = dict(stored(database, "SELECT event_month, mau FROM aquatech.mau"))
    activity = {
        (day, name): (events, users)
        for day, name, events, users in stored(
            database, "SELECT event_date, event, events, users FROM aquatech.event_activity"
        )
    }
    assert dau == answers.dau
    assert mau == answers.mau
    assert activity == answers.activity
    assert stored(database, "SELECT count(*) FROM aquatech.event_data") == [(answers.events,)]


def runs_launched(stdout: str) -> list[str]:
    return re.findall(r"^(\w+_job \S+): ok$", stdout, flags=re.MULTILINE)


def test_generated_days_then_a_late_pull_match_an_independent_count(tmp_path):
    env = user_env(tmp_path)
    run(["sample-data", str(tmp_path), "--start", "2022-10-01", "--days", "3"], env, tmp_path)

    first = run(["materialize"], env, tmp_path)

    database = tmp_path / "warehouse.duckdb"
    answers = independent.count(tmp_path / "raw_data")
    assert 55_000 < answers.events < 65_000
    assert answers.dau[date(2022, 10, 2)] > 1000
    assert_tables_match(database, answers)
    assert runs_launched(first.stdout)[0] == "ingest_job 2022-10-01-00:00...2022-10-03-23:00"

    stamps = dict(stored(database, "SELECT event_date, dl_updated_at FROM aquatech.dau"))
    late = tmp_path / "raw_data" / "2022-10-05" / "20221005-120000.json"
    late.parent.mkdir()
    late.write_text(
        json.dumps(
            [
                {"uuid": "late-1", "distinct_id": "900001", "event": "$identify",
                 "timestamp": "2022-09-20T08:00:00Z", "elements": []},
                {"uuid": "late-2", "distinct_id": "900002", "event": "$pageview",
                 "timestamp": "2022-09-25T08:00:00Z", "elements": []},
                {"uuid": "late-3", "distinct_id": "900003", "event": "$pageview",
                 "timestamp": "2022-10-02T08:00:00Z", "elements": []},
                {"uuid": "now-1", "distinct_id": "900004", "event": "$pageview",
                 "timestamp": "2022-10-05T11:59:00Z", "elements": []},
            ]
        )
    )  # fmt: skip

    second = run(["materialize", "--from", "2022-10-05-12:00", "--to", "2022-10-05-12:00"], env,
                 tmp_path)  # fmt: skip

    assert runs_launched(second.stdout) == [
        "ingest_job 2022-10-05-12:00",
        "daily_aggregates_job 2022-09-20",
        "daily_aggregates_job 2022-09-25",
        "daily_aggregates_job 2022-10-02",
        "daily_aggregates_job 2022-10-05",
        "monthly_aggregates_job 2022-09-01...2022-10-01",
    ]
    assert_tables_match(database, independent.count(tmp_path / "raw_data"))
    after = dict(stored(database, "SELECT event_date, dl_updated_at FROM aquatech.dau"))
    touched = {date(2022, 9, 20), date(2022, 9, 25), date(2022, 10, 2), date(2022, 10, 5)}
    assert {day for day in after if after[day] != stamps.get(day)} == touched


def test_materialize_records_its_runs_in_dagster_home(tmp_path, monkeypatch):
    env = user_env(tmp_path)
    run(["sample-data", str(tmp_path), "--days", "1", "--events-per-day", "500"], env, tmp_path)

    result = run(["materialize"], env, tmp_path)

    launched = runs_launched(result.stdout)
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        recorded = instance.get_runs()
        materialized = {
            asset: instance.get_materialized_partitions(dg.AssetKey(asset))
            for asset in ("raw_events", "event_data", "rejected_events")
        }
        planned = instance.get_records_for_run(
            recorded[-1].run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        ).records
    assert len(recorded) == len(launched) >= 3
    assert {run.status for run in recorded} == {dg.DagsterRunStatus.SUCCESS}
    assert f"{len(launched)} runs succeeded" in result.stdout
    # One planned event per asset of the ingest run (not one per hour), and still every hour
    # with files shows as materialized.
    files = (tmp_path / "raw_data").glob("*/*.json")
    pull_hours = {path.name[:8] + path.name[9:11] for path in files}
    assert {key.replace("-", "")[:10] for key in materialized["event_data"]} == pull_hours
    assert materialized["raw_events"] == materialized["rejected_events"]
    assert len(planned) == 3


def test_materialize_with_nothing_to_do_says_so_and_succeeds(tmp_path):
    env = user_env(tmp_path)
    (tmp_path / "raw_data").mkdir()

    result = run(["materialize"], env, tmp_path)

    assert "no pull files" in result.stdout


def fails(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        AQUATECH + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_unusable_settings_and_arguments_stop_with_a_plain_message(tmp_path):
    env = user_env(tmp_path)
    (tmp_path / "raw_data").mkdir()

    backwards = fails(["materialize", "--from", "2022-10-02-00:00", "--to", "2022-10-01-00:00"],
                      env, tmp_path)  # fmt: skip
    no_folder = fails(["materialize"], {**env, "AQUATECH_RAW_DATA": str(tmp_path / "typo")},
                      tmp_path)  # fmt: skip
    bad_date = fails(["materialize"], {**env, "AQUATECH_START_DATE": "soon"}, tmp_path)
    no_database = fails(["report"], env, tmp_path)

    assert "is after --to" in backwards.stderr
    assert f"no pull folder at {tmp_path / 'typo'}" in no_folder.stderr
    assert "AQUATECH_START_DATE='soon' is not a YYYY-MM-DD date" in bad_date.stderr
    assert "no DuckDB file at" in no_database.stderr


def test_files_that_are_not_read_are_named_in_a_warning(tmp_path):
    env = user_env(tmp_path)
    raw = tmp_path / "raw_data"
    for name in (
        "2022-10-01/20221001-091500.json",
        "2022-10-01/latest.json",
        "2022-10-02/20221001-100000.json",
        "2022-08-15/20220815-100000.json",
    ):
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        (raw / name).write_text("[]")  # fmt: skip

    result = run(["materialize"], env, tmp_path)

    assert "2022-10-01/latest.json (name is not a pull stamp" in result.stderr
    assert "2022-10-02/20221001-100000.json (stamped for another day" in result.stderr
    assert "1 pull hours were not read: they are before AQUATECH_START_DATE" in result.stderr
    assert "2022-08-15-10:00" in result.stderr
    assert runs_launched(result.stdout) == ["ingest_job 2022-10-01-09:00"]
