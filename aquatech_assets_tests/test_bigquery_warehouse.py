"""The BigQuery warehouse against bqemulator: DuckDB's semantics, BigQuery's native layout.

The tests that need the emulator run with `--warehouse=bigquery` (its fixture skips them
otherwise); loading the definitions, the settings and stopping a process need no emulator and
always run.
"""

import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone

import dagster as dg
import polars as pl
import pytest
from google.api_core.exceptions import GoogleAPICallError

from aquatech_assets.definitions import build_definitions
from aquatech_assets.partitions import build_partitions
from aquatech_assets.resources import BigQueryWarehouse, PartitionWindow
from aquatech_assets.resources import bigquery_warehouse as bq
from aquatech_assets.sample_data import write_sample_pulls
from aquatech_assets.settings import Settings, SettingsError
from aquatech_assets_tests import independent
from aquatech_assets_tests.bigquery_emulator import Emulator
from aquatech_assets_tests.conftest import BASE_PULLS, START_DATE, Pipeline, write_pulls
from aquatech_assets_tests.test_pipeline import TABLES

HOUR = datetime(2022, 10, 1, 9, tzinfo=UTC)
NEXT_HOUR = datetime(2022, 10, 1, 10, tzinfo=UTC)
LATER_HOUR = datetime(2022, 10, 1, 11, tzinfo=UTC)
# The API reports some types by their legacy names.
STANDARD_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}


def deliveries(*rows) -> pl.DataFrame:
    """(uuid, pulled_at) rows, or (uuid, pulled_at, event_time) rows."""
    frame = pl.DataFrame(
        {"uuid": [row[0] for row in rows], "pulled_at": [row[1] for row in rows]},
        schema={"uuid": pl.String, "pulled_at": pl.Datetime("us", "UTC")},
    )
    if rows and len(rows[0]) > 2:
        frame = frame.with_columns(
            pl.Series("event_time", [row[2] for row in rows], pl.Datetime("us", "UTC"))
        )
    return frame


def window(start: datetime) -> PartitionWindow:
    return PartitionWindow("pulled_at", start, start + timedelta(hours=1))


def stored(warehouse: BigQueryWarehouse, table: str = "events") -> list[tuple]:
    sql = f"SELECT uuid, pulled_at FROM {warehouse.qualified(table)} ORDER BY uuid, pulled_at"
    return warehouse.query(sql).rows()


@pytest.fixture
def warehouse(bigquery_dataset) -> BigQueryWarehouse:
    """Configured only through the environment, as AQUATECH_WAREHOUSE=bigquery configures it."""
    return BigQueryWarehouse()


def test_replacing_a_partition_leaves_the_others_alone_and_a_rerun_changes_nothing(warehouse):
    warehouse.replace("events", deliveries(("a", HOUR), ("b", HOUR)), window(HOUR))
    warehouse.replace("events", deliveries(("c", NEXT_HOUR)), window(NEXT_HOUR))

    stats = warehouse.replace("events", deliveries(("d", HOUR)), window(HOUR))
    again = warehouse.replace("events", deliveries(("d", HOUR)), window(HOUR))

    assert (stats.rows_written, stats.rows_replaced) == (1, 2)
    assert (again.rows_written, again.rows_replaced) == (1, 1)
    assert stored(warehouse) == [("c", NEXT_HOUR), ("d", HOUR)]


def test_a_failed_write_rolls_back_its_delete_and_leaves_no_staging_table(
    warehouse, bigquery_emulator, bigquery_dataset
):
    counts = pl.DataFrame({"event_date": [date(2022, 10, 1)], "dau": [4]})
    day = PartitionWindow("event_date", date(2022, 10, 1), date(2022, 10, 2))
    warehouse.replace("dau", counts, day)
    # The DELETE of the day runs first; the INSERT of text into INT64 then fails in BigQuery.
    wrong_type = pl.DataFrame({"event_date": [date(2022, 10, 1)], "dau": ["four"]})

    with pytest.raises(GoogleAPICallError):
        warehouse.replace("dau", wrong_type, day)

    assert warehouse.query(f"SELECT event_date, dau FROM {warehouse.qualified('dau')}").rows() == [
        (date(2022, 10, 1), 4)
    ]
    tables = [table.table_id for table in bigquery_emulator.client().list_tables(bigquery_dataset)]
    assert tables == ["dau"]


def test_inserts_go_by_column_name_and_new_columns_are_added(warehouse):
    warehouse.replace("t", pl.DataFrame({"a": [1], "b": ["x"]}), None)

    warehouse.replace("t", pl.DataFrame({"b": ["y"], "a": [2], "c": [3.5]}), None)
    assert warehouse.query(f"SELECT a, b, c FROM {warehouse.qualified('t')}").rows() == [
        (2, "y", 3.5)
    ]
    warehouse.replace("t", pl.DataFrame({"c": [4.5], "a": [3], "b": ["z"]}), None)
    assert warehouse.query(f"SELECT a, b, c FROM {warehouse.qualified('t')}").rows() == [
        (3, "z", 4.5)
    ]


def test_with_a_unique_key_an_earlier_window_written_second_takes_the_row(warehouse):
    later = deliveries(("x", LATER_HOUR), ("y", LATER_HOUR))
    warehouse.replace("events", later, window(LATER_HOUR), unique_key="uuid")

    earlier = warehouse.replace("events", deliveries(("x", HOUR)), window(HOUR), unique_key="uuid")
    again = warehouse.replace("events", later, window(LATER_HOUR), unique_key="uuid")

    assert (earlier.rows_written, earlier.redeliveries_dropped) == (1, 0)
    assert earlier.later_deliveries_removed == 1
    assert (again.rows_written, again.rows_replaced, again.redeliveries_dropped) == (1, 1, 1)
    assert again.later_deliveries_removed == 0
    assert stored(warehouse) == [("x", HOUR), ("y", LATER_HOUR)]


def test_with_a_unique_key_a_later_window_written_second_drops_the_redelivery(warehouse):
    warehouse.replace("events", deliveries(("x", HOUR)), window(HOUR), unique_key="uuid")

    later = warehouse.replace(
        "events",
        deliveries(("x", LATER_HOUR), ("y", LATER_HOUR)),
        window(LATER_HOUR),
        unique_key="uuid",
    )

    assert (later.rows_written, later.rows_replaced, later.redeliveries_dropped) == (1, 0, 1)
    assert later.later_deliveries_removed == 0
    assert stored(warehouse) == [("x", HOUR), ("y", LATER_HOUR)]


def test_dates_of_gives_the_utc_dates_of_every_row_a_write_removes(warehouse):
    # k happened at 22:00 on 09-30 in UTC-3, which is 01:00 on 10-01 in UTC.
    k_time = datetime(2022, 9, 30, 22, tzinfo=timezone(timedelta(hours=-3)))
    m_time = datetime(2022, 9, 28, 10, tzinfo=UTC)
    first = warehouse.replace(
        "events",
        deliveries(("k", LATER_HOUR, k_time), ("m", LATER_HOUR, m_time)),
        window(LATER_HOUR),
        unique_key="uuid",
        dates_of="event_time",
    )

    # k's earlier delivery removes the later copy; then the later hour is rerun without files.
    earlier = warehouse.replace(
        "events",
        deliveries(("k", HOUR, k_time)),
        window(HOUR),
        unique_key="uuid",
        dates_of="event_time",
    )
    emptied = warehouse.replace(
        "events",
        deliveries(("k", LATER_HOUR, k_time)).clear(),
        window(LATER_HOUR),
        unique_key="uuid",
        dates_of="event_time",
    )

    assert first.removed_dates == ()
    assert (earlier.later_deliveries_removed, earlier.removed_dates) == (1, (date(2022, 10, 1),))
    assert (emptied.rows_replaced, emptied.removed_dates) == (1, (date(2022, 9, 28),))
    assert stored(warehouse) == [("k", HOUR)]


def test_date_columns_are_bound_as_dates_and_timestamps_as_timestamps(warehouse):
    """Real BigQuery refuses `event_date >= <a TIMESTAMP>`; the emulator lets it through.

    So a passing read on the emulator proves nothing about the types: the parameters and the
    script's literals are asserted too. Dagster hands a reader datetimes even for a DATE column,
    and they must reach BigQuery as DATEs.
    """
    days = pl.DataFrame(
        {"event_date": [date(2022, 9, 30), date(2022, 10, 1), date(2022, 10, 2)], "dau": [1, 2, 3]}
    )
    warehouse.replace("dau", days, None)
    day = PartitionWindow(
        "event_date", datetime(2022, 10, 1, tzinfo=UTC), datetime(2022, 10, 2, tzinfo=UTC)
    )

    assert warehouse.read("dau", day).rows() == [(date(2022, 10, 1), 2)]
    on_day = f"SELECT dau FROM {warehouse.qualified('dau')} WHERE event_date = @day"
    assert warehouse.query(on_day, {"day": date(2022, 10, 2)}).rows() == [(3,)]
    assert [(p.name, p.type_, p.value) for p in bq.window_parameters(day, "DATE")] == [
        ("start", "DATE", date(2022, 10, 1)),
        ("end", "DATE", date(2022, 10, 2)),
    ]
    assert bq.window_literals(day, {"event_date": "DATE"}) == bq.WindowLiterals(
        "event_date", "DATE '2022-10-01'", "DATE '2022-10-02'"
    )
    assert bq.window_literals(window(HOUR), {"pulled_at": "TIMESTAMP"}) == bq.WindowLiterals(
        "pulled_at",
        "TIMESTAMP '2022-10-01 09:00:00.000000+00:00'",
        "TIMESTAMP '2022-10-01 10:00:00.000000+00:00'",
    )


def test_the_aggregates_run_in_bigquery_on_utc_days(warehouse):
    events = pl.DataFrame(
        {
            "uuid": ["a", "b", "c", "d", "e", "f"],
            "distinct_id": ["alice", "bob", "alice", "carol", "dave", "erin"],
            "event": ["$pageview", "$pageview", "$identify", "$pageview", "$pageview", "$pageview"],
            "event_time": [
                datetime(2022, 10, 1, tzinfo=UTC),
                # 20:00 on 10-01 in UTC-5 is 01:00 on 10-02 in UTC.
                datetime(2022, 10, 1, 20, tzinfo=timezone(timedelta(hours=-5))),
                datetime(2022, 10, 1, 23, 59, 59, tzinfo=UTC),
                datetime(2022, 10, 3, tzinfo=UTC),
                datetime(2022, 9, 30, 23, 59, 59, tzinfo=UTC),
                datetime(2022, 10, 1, 12, tzinfo=UTC),
            ],
        },
        schema_overrides={"event_time": pl.Datetime("us", "UTC")},
    )
    warehouse.replace("event_data", events, None)
    start, end = datetime(2022, 10, 1, tzinfo=UTC), datetime(2022, 10, 3, tzinfo=UTC)

    assert warehouse.aggregate("dau", start, end).rows() == [
        (date(2022, 10, 1), 2),
        (date(2022, 10, 2), 1),
    ]
    assert warehouse.aggregate("event_activity", start, end).rows() == [
        (date(2022, 10, 1), "$identify", 1, 1),
        (date(2022, 10, 1), "$pageview", 2, 2),
        (date(2022, 10, 2), "$pageview", 1, 1),
    ]
    month = warehouse.aggregate("mau", start, datetime(2022, 11, 1, tzinfo=UTC))
    assert month.rows() == [(date(2022, 10, 1), 4)]


def test_the_pipeline_tables_have_explicit_types_native_partitions_and_clustering(
    pipeline, bigquery_emulator, bigquery_dataset
):
    write_pulls(pipeline.raw_data, BASE_PULLS)
    pipeline.materialize()
    client = bigquery_emulator.client()
    tables = {
        item.table_id: client.get_table(item.reference)
        for item in client.list_tables(bigquery_dataset)
    }

    layouts = {
        name: (
            table.time_partitioning.type_,
            table.time_partitioning.field,
            table.clustering_fields,
        )
        for name, table in tables.items()
    }
    assert layouts == {
        "raw_events": ("DAY", "pulled_at", None),
        "event_data": ("DAY", "pulled_at", ["event_time", "uuid"]),
        "rejected_events": ("DAY", "pulled_at", None),
        "dau": ("DAY", "event_date", None),
        "event_activity": ("DAY", "event_date", None),
        "mau": ("MONTH", "event_month", None),
    }
    types = {
        name: [(f.name, STANDARD_TYPES.get(f.field_type, f.field_type)) for f in table.schema]
        for name, table in tables.items()
    }
    geoip_text = [
        (f"geoip_{field}", "STRING")
        for field in ("city_name", "country_name", "country_code", "continent_name")
    ]
    assert types["event_data"] == [
        ("uuid", "STRING"),
        ("distinct_id", "STRING"),
        ("event", "STRING"),
        ("event_time", "TIMESTAMP"),
        ("elements", "STRING"),
        *geoip_text,
        ("geoip_continent_code", "STRING"),
        ("geoip_latitude", "FLOAT64"),
        ("geoip_longitude", "FLOAT64"),
        ("geoip_time_zone", "STRING"),
        ("geoip_subdivision_1_code", "STRING"),
        ("geoip_subdivision_1_name", "STRING"),
        ("properties", "STRING"),
        ("source_file", "STRING"),
        ("pulled_at", "TIMESTAMP"),
        ("record_index", "INT64"),
        ("dl_updated_at", "TIMESTAMP"),
    ]
    assert types["dau"] == [
        ("event_date", "DATE"),
        ("dau", "INT64"),
        ("dl_updated_at", "TIMESTAMP"),
    ]
    assert types["mau"] == [
        ("event_month", "DATE"),
        ("mau", "INT64"),
        ("dl_updated_at", "TIMESTAMP"),
    ]
    assert types["event_activity"][:4] == [
        ("event_date", "DATE"),
        ("event", "STRING"),
        ("events", "INT64"),
        ("users", "INT64"),
    ]


def test_the_sample_pulls_give_the_same_tables_on_bigquery_as_on_duckdb(tmp_path, bigquery_dataset):
    # Late arrivals across days, redeliveries, numeric ids and mixed timestamp encodings.
    write_sample_pulls(tmp_path, date(2022, 10, 1), 2, users=400, events_per_day=2000, seed=3)
    raw_data, duckdb_path = tmp_path / "raw_data", tmp_path / "warehouse.duckdb"
    tables = {}
    for warehouse in ("duckdb", "bigquery"):
        settings = Settings(str(raw_data), warehouse, str(duckdb_path), START_DATE)
        defs = build_definitions(settings, raw_data=str(raw_data), duckdb_path=str(duckdb_path))
        with dg.instance_for_test() as instance:
            pipeline = Pipeline(raw_data, duckdb_path, defs, build_partitions(START_DATE), instance)
            pipeline.materialize()
            tables[warehouse] = {
                name: pipeline.table(name, order_by).drop("dl_updated_at").rows()
                for name, order_by in TABLES.items()
            }

    assert len(tables["duckdb"]["event_data"]) == 4000
    assert tables["bigquery"] == tables["duckdb"]
    answers = independent.count(raw_data)
    assert dict(tables["bigquery"]["dau"]) == answers.dau
    assert dict(tables["bigquery"]["mau"]) == answers.mau
    assert {(day, name): (events, users) for day, name, events, users in
            tables["bigquery"]["event_activity"]} == answers.activity  # fmt: skip


def test_table_names_that_are_not_plain_identifiers_are_refused(monkeypatch):
    monkeypatch.setenv(bq.PROJECT_ENV, "test-project")

    with pytest.raises(ValueError, match="not a plain lower-case identifier"):
        BigQueryWarehouse().replace("t`; DROP TABLE x; --", pl.DataFrame({"a": [1]}), None)


def test_settings_are_read_when_used_with_defaults_and_a_plain_message(monkeypatch):
    for name in (bq.PROJECT_ENV, bq.DATASET_ENV, bq.LOCATION_ENV, bq.ENDPOINT_ENV):
        monkeypatch.delenv(name, raising=False)
    warehouse = BigQueryWarehouse()

    with pytest.raises(SettingsError, match=f"{bq.PROJECT_ENV} is not set"):
        warehouse.resolved_settings()
    monkeypatch.setenv(bq.PROJECT_ENV, "my-project")
    assert warehouse.resolved_settings() == bq.BigQuerySettings(
        "my-project", "aquatech", "US", None
    )
    assert warehouse.qualified("dau") == "`my-project.aquatech.dau`"


def test_missing_google_credentials_stop_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv(bq.PROJECT_ENV, "my-project")
    monkeypatch.delenv(bq.ENDPOINT_ENV, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))

    with pytest.raises(SettingsError, match="gcloud auth application-default login"):
        BigQueryWarehouse().client()


NO_NETWORK = """
import sys

def refuse(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        raise OSError(f"network use while loading the definitions: {event} {args}")

sys.addaudithook(refuse)
import dagster as dg
from aquatech_assets.definitions import defs

definitions = defs()
dg.Definitions.validate_loadable(definitions)
print(type(definitions.resources["warehouse"]).__name__)
"""


def test_the_definitions_load_for_bigquery_without_its_settings_or_the_network(tmp_path):
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AQUATECH_", "GOOGLE_", "CLOUDSDK_"))
    }
    env |= {"AQUATECH_WAREHOUSE": "bigquery", "AQUATECH_RAW_DATA": str(tmp_path / "raw_data")}

    result = subprocess.run(
        [sys.executable, "-c", NO_NETWORK],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "BigQueryWarehouse"
    assert list(tmp_path.iterdir()) == []


IGNORE_SIGTERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(120)
"""


def test_an_emulator_that_ignores_sigterm_is_killed_by_its_pid(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", IGNORE_SIGTERM], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "ready"

    Emulator(process, "", tmp_path / "log").stop(timeout=1)

    assert process.returncode == -signal.SIGKILL
    process.stdout.close()
