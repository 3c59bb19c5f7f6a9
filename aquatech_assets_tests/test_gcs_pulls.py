"""Pulls in a GCS bucket, on a real fake-gcs-server: the same rules, answers and sensor."""

import json
import uuid

import dagster as dg
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from aquatech_assets.definitions import build_definitions
from aquatech_assets.partitions import build_partitions
from aquatech_assets.resources import PullStore
from aquatech_assets.settings import Settings
from aquatech_assets_tests.conftest import BASE_PULLS, LATE_PULL, START_DATE, Pipeline
from aquatech_assets_tests.gcs_emulator import fake_gcs_server
from aquatech_assets_tests.test_pipeline import DAU_BASE, EVENTS_BASE, MAU_BASE
from aquatech_assets_tests.test_pull_sensor import requested

PREFIX = "device/raw_data"


@pytest.fixture(scope="module")
def gcs_server(tmp_path_factory):
    with fake_gcs_server(tmp_path_factory.mktemp("gcs")) as url:
        yield url


@pytest.fixture
def bucket(gcs_server):
    client = storage.Client(project="aquatech-emulator", credentials=AnonymousCredentials())
    return client.create_bucket(f"pulls-{uuid.uuid4().hex[:12]}")


def upload(bucket: storage.Bucket, pulls: dict) -> None:
    for name, content in pulls.items():
        if isinstance(content, bytes | str):
            data = content.encode() if isinstance(content, str) else content
        else:
            data = json.dumps(content, ensure_ascii=False).encode()
        bucket.blob(f"{PREFIX}/{name}").upload_from_string(data)


@pytest.fixture
def bucket_pipeline(bucket, tmp_path):
    root = f"gs://{bucket.name}/{PREFIX}"
    duckdb_path = tmp_path / "warehouse.duckdb"
    settings = Settings(root, "duckdb", str(duckdb_path), START_DATE)
    defs = build_definitions(settings, raw_data=root, duckdb_path=str(duckdb_path))
    with dg.instance_for_test() as instance:
        pipeline = Pipeline(tmp_path, duckdb_path, defs, build_partitions(START_DATE), instance)
        yield root, pipeline


def test_a_bucket_is_scanned_by_the_same_rules_as_a_folder(bucket):
    upload(bucket, {**BASE_PULLS, "2022-10-03/deeper/20221003-010000.json": "[]"})
    bucket.blob("elsewhere/20221001-091500.json").upload_from_string(b"[]")

    scan = PullStore(root=f"gs://{bucket.name}/{PREFIX}").scan()

    assert [f"{hour:%Y-%m-%d-%H}" for hour in scan.hours] == [
        "2022-10-01-09", "2022-10-01-23", "2022-10-02-00", "2022-10-02-03", "2022-10-02-04",
        "2022-10-02-05", "2022-10-02-06", "2022-10-02-07",
    ]  # fmt: skip
    assert [str(skipped) for skipped in scan.skipped] == [
        "2022-10-01/latest.json (name is not a pull stamp YYYYMMDD-HHMMSS.json)",
        "2022-10-03/deeper/ (a folder inside a date folder)",
    ]


def test_pulls_in_a_bucket_give_the_answers_worked_out_by_hand(bucket, bucket_pipeline):
    root, pipeline = bucket_pipeline
    upload(bucket, BASE_PULLS)

    summary = pipeline.materialize(PullStore(root=root).scan().hours)

    assert not summary.failed
    assert pipeline.rows("dau", "event_date", "event_date, dau") == DAU_BASE
    assert pipeline.rows("mau", "event_month", "event_month, mau") == MAU_BASE
    assert pipeline.rows("event_data", "uuid", "uuid, distinct_id, source_file") == EVENTS_BASE


def test_the_pull_sensor_sees_new_and_rewritten_objects_in_a_bucket(bucket, bucket_pipeline):
    root, pipeline = bucket_pipeline
    sensor = pipeline.defs.resolve_sensor_def("pull_sensor")

    def tick(cursor):
        context = dg.build_sensor_context(
            instance=pipeline.instance,
            cursor=cursor,
            resources={"pull_store": PullStore(root=root)},
        )
        return sensor(context)

    upload(bucket, BASE_PULLS)
    first = tick(None)
    assert len(first.run_requests) == 4
    assert isinstance(tick(first.cursor), dg.SkipReason)

    upload(
        bucket, {"2022-10-02/20221002-030100.json": BASE_PULLS["2022-10-02/20221002-030100.json"]}
    )
    rewritten = tick(first.cursor)
    assert requested(rewritten) == ["2022-10-02-03:00"]

    upload(bucket, LATE_PULL)
    assert requested(tick(rewritten.cursor)) == ["2022-10-22-12:00"]


def test_a_bucket_that_does_not_exist_is_reported_as_missing(gcs_server):
    store = PullStore(root=f"gs://no-such-bucket-{uuid.uuid4().hex[:8]}/x")

    assert store.exists() is False
