"""The definitions load as a code server loads them, and loading reads nothing it should not."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from aquatech_assets.definitions import defs
from aquatech_assets.settings import SettingsError

REPO = Path(__file__).resolve().parents[1]
TABLES = {"raw_events", "event_data", "rejected_events", "dau", "mau", "event_activity"}


@pytest.fixture
def user_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("AQUATECH_RAW_DATA", str(tmp_path / "raw_data"))
    monkeypatch.setenv("AQUATECH_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    return tmp_path


def test_the_definitions_hold_the_six_tables_three_jobs_and_the_late_data_sensor(user_settings):
    definitions = defs()
    dg.Definitions.validate_loadable(definitions)

    keys = {key.to_user_string() for key in definitions.resolve_asset_graph().get_all_asset_keys()}
    assert keys == TABLES
    for job in ("ingest_job", "daily_aggregates_job", "monthly_aggregates_job"):
        assert definitions.resolve_job_def(job) is not None
    sensor = definitions.resolve_sensor_def("late_data_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert set(definitions.resources) == {"warehouse", "io_manager", "pull_store"}


def test_loading_the_definitions_touches_no_file(user_settings):
    defs()

    assert list(user_settings.iterdir()) == []


def test_the_start_date_setting_moves_every_partitions_definition(user_settings, monkeypatch):
    monkeypatch.setenv("AQUATECH_START_DATE", "2023-01-15")
    graph = defs().resolve_asset_graph()

    first = {
        key.to_user_string(): graph.get(key).partitions_def.get_first_partition_key()
        for key in graph.get_all_asset_keys()
    }
    assert first["event_data"] == "2023-01-15-00:00"
    assert first["dau"] == "2023-01-15"
    assert first["mau"] == "2023-01-01"


def test_an_unusable_warehouse_setting_stops_with_a_plain_message(user_settings, monkeypatch):
    monkeypatch.setenv("AQUATECH_WAREHOUSE", "postgres")

    with pytest.raises(SettingsError, match="is not one of duckdb, bigquery"):
        defs()


def test_importing_the_package_reads_no_setting():
    env = {**os.environ, "AQUATECH_START_DATE": "not a date", "AQUATECH_WAREHOUSE": "nope"}
    result = subprocess.run(
        [sys.executable, "-c", "import aquatech_assets.definitions, aquatech_assets.cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_dagster_validates_the_workspace_as_the_ui_and_daemon_load_it(tmp_path):
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr
