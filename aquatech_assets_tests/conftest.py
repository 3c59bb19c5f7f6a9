"""Shared fixtures: a hand-built pull folder whose answers are worked out in its docstring."""

import json
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from aquatech_assets.definitions import build_definitions
from aquatech_assets.partitions import Partitions, build_partitions
from aquatech_assets.resources import PullStore, Warehouse
from aquatech_assets.resources import bigquery_warehouse as bq
from aquatech_assets.runs import MaterializeSummary, materialize
from aquatech_assets.settings import WAREHOUSES, Settings
from aquatech_assets_tests.bigquery_emulator import start as start_emulator

START_DATE = date(2022, 9, 1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--warehouse",
        choices=WAREHOUSES,
        default="duckdb",
        help="the warehouse the pipeline tests run on; bigquery starts the BigQuery emulator",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "duckdb_only: reads the DuckDB file itself; skipped with --warehouse=bigquery"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--warehouse") != "bigquery":
        return
    skip = pytest.mark.skip(reason="reads the DuckDB file itself (--warehouse=bigquery)")
    for item in items:
        if "duckdb_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def bigquery_emulator(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """bqemulator on loopback for the whole session, stopped by its pid at the end."""
    if request.config.getoption("--warehouse") != "bigquery":
        pytest.skip("needs the BigQuery emulator: run with --warehouse=bigquery")
    emulator = start_emulator(tmp_path_factory.mktemp("bqemulator"))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def bigquery_dataset(bigquery_emulator, monkeypatch: pytest.MonkeyPatch):
    """A fresh dataset per test, chosen as a user would: through the AQUATECH_BIGQUERY_* env."""
    dataset = f"aquatech_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv(bq.PROJECT_ENV, bigquery_emulator.project)
    monkeypatch.setenv(bq.DATASET_ENV, dataset)
    monkeypatch.setenv(bq.LOCATION_ENV, "US")
    monkeypatch.setenv(bq.ENDPOINT_ENV, bigquery_emulator.endpoint)
    yield dataset
    bigquery_emulator.client().delete_dataset(dataset, delete_contents=True, not_found_ok=True)


# The record of the design: user 21920 identifies on 2022-10-01, from Jakarta.
DESIGN_RECORD = {
    "distinct_id": "21920",
    "elements": [],
    "event": "$identify",
    "timestamp": "2022-10-01T09:12:41.327000+00:00",
    "uuid": "u-a",
    "$geoip_city_name": "Jakarta",
    "$geoip_country_name": "Indonesia",
    "$geoip_country_code": "ID",
    "$geoip_continent_name": "Asia",
    "$geoip_continent_code": "AS",
    "$geoip_latitude": -6.1944,
    "$geoip_longitude": 106.8229,
    "$geoip_time_zone": "Asia/Jakarta",
    "$geoip_subdivision_1_code": "JK",
    "$geoip_subdivision_1_name": "Jakarta",
}


def event(uuid: str, user, name: str, timestamp: str) -> dict:
    return {
        "distinct_id": user,
        "elements": [],
        "event": name,
        "timestamp": timestamp,
        "uuid": uuid,
    }


C_PAGEVIEW = event("u-c", "alice", "$pageview", "2022-10-01T09:14:05.123Z")

# What each pull file holds. The answers, by hand:
#   valid events: u-a 21920 $identify 10-01, u-b 21920 (a JSON number) $pageview 10-01,
#   u-c alice $pageview 10-01 (delivered three times), u-d bob lesson_booked 10-01 (23:40Z,
#   written with +07:00), u-e carol $pageview 10-01 (zone-less 23:44:59, so UTC), u-f dave
#   $pageview 10-02, u-g alice $pageview 10-02 (zone-less 03:00), u-h erin $pageview 10-02
#   (in front of the break of a truncated file), u-l grace $pageview 10-02.
#   dau 10-01 = {21920, alice, bob, carol} = 4; dau 10-02 = {dave, alice, erin, grace} = 4;
#   mau 2022-10 = 7 users. Rejected: the empty file, the truncated file and four records.
BASE_PULLS: dict[str, str | bytes | list] = {
    "2022-10-01/20221001-091500.json": [
        DESIGN_RECORD,
        event("u-b", 21920, "$pageview", "2022-10-01T09:13:00Z"),
        C_PAGEVIEW,
        C_PAGEVIEW,
    ],
    "2022-10-01/20221001-234510.json": [
        event("u-d", "bob", "lesson_booked", "2022-10-02T06:40:00+07:00"),
        event("u-e", "carol", "$pageview", "2022-10-01 23:44:59"),
    ],
    "2022-10-01/latest.json": [event("u-z", "zed", "$pageview", "2022-10-01T10:00:00Z")],
    "2022-10-02/20221002-000005.json": "\n".join(
        json.dumps(record)
        for record in (C_PAGEVIEW, event("u-f", "dave", "$pageview", "2022-10-02T00:00:01.123456Z"))
    ),
    "2022-10-02/20221002-030100.json": json.dumps(
        event("u-g", "alice", "$pageview", "2022-10-02 03:00:00")
    ),
    "2022-10-02/20221002-040000.json": [],
    "2022-10-02/20221002-050000.json": b"",
    "2022-10-02/20221002-060000.json": (
        json.dumps([event("u-h", "erin", "$pageview", "2022-10-02T06:00:00Z")])[:-1]
        + ', {"uuid": "u-i", "distinct_id": "fr'
    ),
    "2022-10-02/20221002-070000.json": [
        42,
        {"distinct_id": "x", "event": "$pageview", "timestamp": "2022-10-02T07:00:00Z"},
        {"uuid": "u-j", "event": "$pageview", "timestamp": "2022-10-02T07:00:00Z"},
        event("u-k", "y", "$pageview", "yesterday"),
        event("u-l", "grace", "$pageview", "2022-10-02T07:00:00Z"),
    ],
}

# Three weeks later: heidi's 10-01 identify arrives, with ivan's 09-28 view and 21920 today.
# dau 10-01 becomes 5, 09-28 and 10-22 get 1; mau 2022-10 becomes 8 and 2022-09 gets 1.
LATE_PULL = {
    "2022-10-22/20221022-120000.json": [
        event("u-m", "heidi", "$identify", "2022-10-01T12:00:00Z"),
        event("u-n", "21920", "$pageview", "2022-10-22T11:59:00Z"),
        event("u-o", "ivan", "$pageview", "2022-09-28T10:00:00Z"),
    ]
}


def write_file(path: Path, content: bytes | str | list | dict) -> None:
    """Writes bytes and text as they are, anything else as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")


def write_pulls(raw_data: Path, pulls: dict) -> None:
    for name, content in pulls.items():
        write_file(raw_data / name, content)


@dataclass
class Pipeline:
    """A project pointed at folders under tmp_path, a real Dagster instance and the warehouse."""

    raw_data: Path
    duckdb_path: Path
    defs: dg.Definitions
    partitions: Partitions
    instance: dg.DagsterInstance

    def materialize(self, hours=None) -> MaterializeSummary:
        store = PullStore(root=str(self.raw_data))
        summary = materialize(
            self.defs, self.partitions, self.instance, hours or store.scan().hours, lambda _: None
        )
        assert not summary.failed, summary.runs
        return summary

    def launch(self, request: dg.RunRequest) -> None:
        """Runs what a sensor asked for, in process, as the daemon would launch it."""
        job = self.defs.resolve_job_def(request.job_name)
        outcome = job.execute_in_process(
            instance=self.instance, partition_key=request.partition_key, tags=request.tags
        )
        assert outcome.success

    @property
    def warehouse(self) -> Warehouse:
        return self.defs.resources["warehouse"]

    def table(self, name: str, order_by: str) -> pl.DataFrame:
        return self.warehouse.query(
            f"SELECT * FROM {self.warehouse.qualified(name)} ORDER BY {order_by}"
        )

    def rows(self, name: str, order_by: str, columns: str) -> list[tuple]:
        sql = f"SELECT {columns} FROM {self.warehouse.qualified(name)} ORDER BY {order_by}"
        return self.warehouse.query(sql).rows()


@pytest.fixture
def pipeline(tmp_path: Path, request: pytest.FixtureRequest):
    raw_data = tmp_path / "raw_data"
    raw_data.mkdir()
    duckdb_path = tmp_path / "warehouse.duckdb"
    warehouse = request.config.getoption("--warehouse")
    if warehouse == "bigquery":
        request.getfixturevalue("bigquery_dataset")
    settings = Settings(
        raw_data=str(raw_data),
        warehouse=warehouse,
        duckdb_path=str(duckdb_path),
        start_date=START_DATE,
    )
    defs = build_definitions(settings, raw_data=str(raw_data), duckdb_path=str(duckdb_path))
    with dg.instance_for_test() as instance:
        yield Pipeline(raw_data, duckdb_path, defs, build_partitions(START_DATE), instance)
