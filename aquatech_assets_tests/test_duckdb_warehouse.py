"""The DuckDB warehouse on its own: atomic partition replacement, first delivery, file locks."""

import subprocess
import sys
import time
from datetime import UTC, date, datetime

import duckdb
import polars as pl
import pytest

from aquatech_assets.resources import DuckDBWarehouse, PartitionWindow
from aquatech_assets.resources.duckdb_warehouse import DuckDBLockTimeout

HOUR = datetime(2022, 10, 1, 9, tzinfo=UTC)
NEXT_HOUR = datetime(2022, 10, 1, 10, tzinfo=UTC)
LATER_HOUR = datetime(2022, 10, 1, 11, tzinfo=UTC)


def deliveries(*rows) -> pl.DataFrame:
    return pl.DataFrame(
        {"uuid": [row[0] for row in rows], "pulled_at": [row[1] for row in rows]},
        schema={"uuid": pl.String, "pulled_at": pl.Datetime("us", "UTC")},
    )


def window(start: datetime) -> PartitionWindow:
    return PartitionWindow("pulled_at", start, start.replace(hour=start.hour + 1))


def stored(warehouse: DuckDBWarehouse) -> list[tuple]:
    rows = warehouse.query("SELECT uuid, pulled_at FROM aquatech.events ORDER BY uuid, pulled_at")
    return rows.rows()


def test_replacing_a_partition_leaves_the_other_partitions_alone(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    warehouse.replace("events", deliveries(("a", HOUR), ("b", HOUR)), window(HOUR))
    warehouse.replace("events", deliveries(("c", NEXT_HOUR)), window(NEXT_HOUR))

    stats = warehouse.replace("events", deliveries(("d", HOUR)), window(HOUR))

    assert (stats.rows_written, stats.rows_replaced) == (1, 2)
    assert stored(warehouse) == [("c", NEXT_HOUR), ("d", HOUR)]


def test_a_failed_write_rolls_back_the_delete_too(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    counts = pl.DataFrame({"event_date": [date(2022, 10, 1)], "dau": [4]})
    day = PartitionWindow("event_date", date(2022, 10, 1), date(2022, 10, 2))
    warehouse.replace("dau", counts, day)
    wrong_type = pl.DataFrame({"event_date": [date(2022, 10, 1)], "dau": ["four"]})

    with pytest.raises(duckdb.Error):
        warehouse.replace("dau", wrong_type, day)

    assert warehouse.query("SELECT event_date, dau FROM aquatech.dau").rows() == [
        (date(2022, 10, 1), 4)
    ]


def test_inserts_go_by_column_name_and_new_columns_are_added(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    warehouse.replace("t", pl.DataFrame({"a": [1], "b": ["x"]}), None)

    warehouse.replace("t", pl.DataFrame({"b": ["y"], "a": [2], "c": [3.5]}), None)

    assert warehouse.query("SELECT a, b, c FROM aquatech.t").rows() == [(2, "y", 3.5)]


def test_with_a_unique_key_the_earliest_window_keeps_the_row_in_either_write_order(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    warehouse.replace("events", deliveries(("x", LATER_HOUR), ("y", LATER_HOUR)),
                      window(LATER_HOUR), unique_key="uuid")  # fmt: skip

    stats = warehouse.replace("events", deliveries(("x", HOUR)), window(HOUR), unique_key="uuid")
    again = warehouse.replace("events", deliveries(("x", LATER_HOUR), ("y", LATER_HOUR)),
                              window(LATER_HOUR), unique_key="uuid")  # fmt: skip

    assert stats.later_deliveries_removed == 1
    assert (again.rows_written, again.redeliveries_dropped) == (1, 1)
    assert stored(warehouse) == [("x", HOUR), ("y", LATER_HOUR)]


def test_identifiers_that_are_not_plain_names_are_refused(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))

    with pytest.raises(ValueError, match="not a plain lower-case identifier"):
        warehouse.replace('t"; DROP TABLE x; --', pl.DataFrame({"a": [1]}), None)


HOLD_LOCK = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.close()
"""


def hold_lock(path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_writer_waits_for_another_process_lock_and_then_succeeds(tmp_path):
    path = tmp_path / "w.duckdb"
    DuckDBWarehouse(path=str(path)).replace("t", pl.DataFrame({"a": [1]}), None)
    holder = hold_lock(path, 2)
    started = time.monotonic()

    DuckDBWarehouse(path=str(path), lock_timeout_seconds=60).replace(
        "t", pl.DataFrame({"a": [2]}), None
    )

    assert time.monotonic() - started >= 1
    holder.wait(timeout=30)
    assert DuckDBWarehouse(path=str(path)).query("SELECT a FROM aquatech.t").rows() == [(2,)]


def test_past_the_lock_timeout_the_writer_fails_saying_what_to_close(tmp_path):
    path = tmp_path / "w.duckdb"
    DuckDBWarehouse(path=str(path)).replace("t", pl.DataFrame({"a": [1]}), None)
    holder = hold_lock(path, 10)
    try:
        with pytest.raises(DuckDBLockTimeout, match="Close the other connection"):
            DuckDBWarehouse(path=str(path), lock_timeout_seconds=1).replace(
                "t", pl.DataFrame({"a": [2]}), None
            )
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert DuckDBWarehouse(path=str(path)).query("SELECT a FROM aquatech.t").rows() == [(1,)]
