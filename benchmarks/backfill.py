"""A backfill's cost, side by side: the engine's floor, a seed-style rebuild, and the product.

    .venv/bin/python benchmarks/backfill.py [--days 3] [--events-per-day 100000] [--data DIR]

The pulls are generated once into `--data` (default benchmarks/.data, kept between runs) and
the same files are then processed three ways:

- floor: one DuckDB connection reads every file with `read_json` into a table and counts
  dau and mau with GROUP BY;
- seed-style: per pull hour, `json.load` each file, write a CSV, load it into DuckDB, recount;
- product: `aquatech materialize` in its own process, on a fresh DAGSTER_HOME.

It prints seconds, events per second, the ratio to the floor, the Dagster runs launched and
events stored, and the peak RSS of the product's process. Figures are printed, never asserted.
"""

import argparse
import csv
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import duckdb

from aquatech_assets.pulls import pulled_at_from_name
from aquatech_assets.sample_data import write_sample_pulls

REPO = Path(__file__).resolve().parents[1]


def pulls(data: Path, days: int, events_per_day: int) -> Path:
    folder = data / f"{days}d-{events_per_day}"
    if not (folder / "raw_data").is_dir():
        write_sample_pulls(folder, date(2022, 10, 1), days, events_per_day=events_per_day)
    return folder / "raw_data"


def floor(raw: Path) -> int:
    with duckdb.connect(":memory:") as connection:
        connection.execute("SET TimeZone = 'UTC'")
        files = sorted(str(path) for path in raw.glob("*/*.json"))
        connection.execute(
            "CREATE TABLE events AS SELECT * FROM read_json($files, format = 'array', "
            "columns = {'uuid': 'VARCHAR', 'distinct_id': 'VARCHAR', 'timestamp': 'TIMESTAMPTZ'})",
            {"files": files},
        )
        connection.sql(
            "SELECT CAST(timestamp AS DATE), count(DISTINCT distinct_id) FROM events GROUP BY 1"
        ).fetchall()
        connection.sql(
            "SELECT date_trunc('month', timestamp), count(DISTINCT distinct_id) FROM events "
            "GROUP BY 1"
        ).fetchall()
        return connection.sql("SELECT count(*) FROM events").fetchall()[0][0]


def seed_style(raw: Path, work: Path) -> int:
    by_hour = defaultdict(list)
    for path in sorted(raw.glob("*/*.json")):
        by_hour[pulled_at_from_name(path.name).strftime("%Y%m%d%H")].append(path)
    with duckdb.connect(str(work / "seed.duckdb")) as connection:
        connection.execute(
            "CREATE TABLE events (uuid VARCHAR, distinct_id VARCHAR, event_time TIMESTAMPTZ)"
        )
        for hour, paths in sorted(by_hour.items()):
            staged = work / f"{hour}.csv"
            with staged.open("w", newline="") as handle:
                writer = csv.writer(handle)
                for path in paths:
                    for record in json.loads(path.read_text()):
                        writer.writerow(
                            (record["uuid"], record["distinct_id"], record["timestamp"])
                        )
            connection.execute(
                "INSERT INTO events SELECT * FROM read_csv($path, header = false, "
                "columns = {'uuid': 'VARCHAR', 'distinct_id': 'VARCHAR', "
                "'event_time': 'TIMESTAMPTZ'})",
                {"path": str(staged)},
            )
            connection.sql(
                "SELECT CAST(event_time AS DATE), count(DISTINCT distinct_id) FROM events "
                "GROUP BY 1"
            ).fetchall()
        return connection.sql("SELECT count(*) FROM events").fetchall()[0][0]


def product(raw: Path, work: Path) -> tuple[int, int, int]:
    home = work / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "AQUATECH_RAW_DATA": str(raw),
        "AQUATECH_DUCKDB_PATH": str(work / "product.duckdb"),
    }
    command = [sys.executable, "-m", "aquatech_assets.cli", "materialize"]
    subprocess.run(command, env=env, check=True, capture_output=True)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with sqlite3.connect(home / "history" / "runs.db") as runs:
        run_count = runs.execute("SELECT count(*) FROM runs").fetchone()[0]
    events = 0
    for database in (home / "history" / "runs").glob("*.db"):
        with sqlite3.connect(database) as log:
            events += log.execute("SELECT count(*) FROM event_logs").fetchone()[0]
    return run_count, events, peak_kib


def timed(action):
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--events-per-day", type=int, default=100_000)
    parser.add_argument("--data", type=Path, default=REPO / "benchmarks" / ".data")
    args = parser.parse_args()
    raw = pulls(args.data, args.days, args.events_per_day)
    files = len(list(raw.glob("*/*.json")))
    size = sum(path.stat().st_size for path in raw.glob("*/*.json")) / 2**20
    print(f"{args.days} days x {args.events_per_day} events/day: {files} files, {size:.0f} MiB")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        floor_seconds, records = timed(lambda: floor(raw))
        seed_seconds, _ = timed(lambda: seed_style(raw, work))
        product_seconds, (runs, events, peak_kib) = timed(lambda: product(raw, work))
    print(f"{'path':<12}{'seconds':>10}{'events/s':>12}{'vs floor':>10}")
    for name, seconds in (("floor", floor_seconds), ("seed-style", seed_seconds),
                          ("product", product_seconds)):  # fmt: skip
        rate = records / seconds
        print(f"{name:<12}{seconds:>10.1f}{rate:>12,.0f}{floor_seconds / seconds:>10.2f}")
    print(f"product: {runs} Dagster runs, {events} Dagster events stored, "
          f"peak RSS {peak_kib / 1024:.0f} MiB; seed-style / product = "
          f"{seed_seconds / product_seconds:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
