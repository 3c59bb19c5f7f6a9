"""A backfill's cost, side by side: the engine's floor, a seed-style rebuild, and the product.

    .venv/bin/python benchmarks/backfill.py [--sets dense sparse] [--repeat 1] [--incremental]

Each data set is generated once into `--data` (default benchmarks/.data, kept between runs):
dense is 3 days x 500,000 events a day, sparse 14 days x 100,000. The same files are then
processed four ways:

- floor: one DuckDB connection reads every file with `read_json` into a table and counts
  dau and mau with GROUP BY;
- seed-style: per pull hour, `json.load` each file, write a CSV, load it into DuckDB, recount;
- product: `aquatech materialize` in its own process, on a fresh DAGSTER_HOME;
- bookkeeping: the product's runs again with do-nothing assets (`bookkeeping.py`), so that
  product minus bookkeeping is the product's data path.

It prints seconds (the median of `--repeat` tries), events per second, the ratio to the floor,
Dagster runs and events stored (per pull hour too) and the product's peak RSS. With
`--incremental` it also times one late pull on histories of 30 and 60 days, and the time to
load the definitions. Figures are printed, never asserted.
"""

import argparse
import csv
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from aquatech_assets.pulls import pulled_at_from_name
from aquatech_assets.sample_data import write_sample_pulls

REPO = Path(__file__).resolve().parents[1]
SETS = {"dense": (3, 500_000), "sparse": (14, 100_000)}
HISTORIES = (30, 60)
HISTORY_EVENTS_PER_DAY = 20_000


@dataclass
class ProductRun:
    seconds: float
    runs: list[tuple[str, dict]]
    events: int
    peak_mib: float


def pulls(data: Path, days: int, events_per_day: int) -> Path:
    folder = data / f"{days}d-{events_per_day}"
    if not (folder / "raw_data").is_dir():
        print(f"generating {days} days x {events_per_day} events/day into {folder}", flush=True)
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


def seed_style(raw: Path, work: Path) -> None:
    by_hour = defaultdict(list)
    for path in sorted(raw.glob("*/*.json")):
        by_hour[pulled_at_from_name(path.name).strftime("%Y%m%d%H")].append(path)
    database = work / "seed.duckdb"
    database.unlink(missing_ok=True)
    with duckdb.connect(str(database)) as connection:
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


def fresh_home(work: Path, name: str) -> Path:
    home = work / name
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    return home


def aquatech(args: list[str], home: Path, raw: Path, database: Path) -> ProductRun:
    """`aquatech ARGS` in a process of its own: its time, runs, events stored and peak RSS."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "AQUATECH_RAW_DATA": str(raw),
        "AQUATECH_DUCKDB_PATH": str(database),
    }
    command = [sys.executable, "-m", "aquatech_assets.cli", *args]
    started = time.perf_counter()
    log = home / "aquatech.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"aquatech {' '.join(args)} failed:\n{log.read_text()[-3000:]}")
    return ProductRun(seconds, *stored(home), peak_mib=usage.ru_maxrss / 1024)


def stored(home: Path) -> tuple[list[tuple[str, dict]], int]:
    """The runs in a DAGSTER_HOME (job name, partition tags), and the events they stored."""
    runs = []
    with sqlite3.connect(home / "history" / "runs.db") as database:
        for run_id, job_name in database.execute(
            "SELECT run_id, pipeline_name FROM runs ORDER BY id"
        ):
            tags = dict(
                database.execute(
                    "SELECT key, value FROM run_tags WHERE run_id = ? AND key LIKE 'dagster/%'",
                    (run_id,),
                ).fetchall()
            )
            keep = ("dagster/partition", "dagster/asset_partition_range_start",
                    "dagster/asset_partition_range_end")  # fmt: skip
            runs.append((job_name, {key: tags[key] for key in keep if key in tags}))
    events = 0
    # index.db, beside the run logs, holds copies of the asset events: not counted twice.
    for database in (home / "history" / "runs").glob("*.db"):
        if database.name == "index.db":
            continue
        with sqlite3.connect(database) as log:
            events += log.execute("SELECT count(*) FROM event_logs").fetchone()[0]
    return runs, events


def bookkeeping(runs: list[tuple[str, dict]], work: Path) -> float:
    home = fresh_home(work, "bookkeeping_home")
    runs_file = work / "runs.json"
    runs_file.write_text(json.dumps(runs))
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    command = [sys.executable, str(REPO / "benchmarks" / "bookkeeping.py"), str(runs_file)]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def median_seconds(action: Callable[[], object], repeat: int) -> tuple[float, object]:
    results = []
    for _ in range(repeat):
        started = time.perf_counter()
        value = action()
        results.append((time.perf_counter() - started, value))
    seconds = statistics.median(seconds for seconds, _ in results)
    return seconds, results[-1][1]


def compare(name: str, raw: Path, work: Path, repeat: int) -> None:
    files = sorted(raw.glob("*/*.json"))
    size = sum(path.stat().st_size for path in files) / 2**20
    hours = len({pulled_at_from_name(path.name).strftime("%Y%m%d%H") for path in files})
    floor_seconds, records = median_seconds(lambda: floor(raw), repeat)
    seed_seconds, _ = median_seconds(lambda: seed_style(raw, work), repeat)

    def product() -> ProductRun:
        (work / "product.duckdb").unlink(missing_ok=True)
        return aquatech(["materialize"], fresh_home(work, "home"), raw, work / "product.duckdb")

    tries = [product() for _ in range(repeat)]
    run = tries[-1]
    product_seconds = statistics.median(attempt.seconds for attempt in tries)
    overhead = statistics.median(bookkeeping(run.runs, work) for _ in range(repeat))
    data_path = max(product_seconds - overhead, 1e-9)

    print(f"\n{name}: {len(files)} files, {hours} pull hours, {records:,} records, {size:.0f} MiB")
    print(f"  {'path':<28}{'seconds':>9}{'events/s':>12}{'vs floor':>10}")
    rows = (
        ("floor", floor_seconds),
        ("seed-style", seed_seconds),
        ("product (end to end)", product_seconds),
        ("  its bookkeeping + start-up", overhead),
        ("  its data path", data_path),
    )
    for label, seconds in rows:
        rate = records / seconds
        print(f"  {label:<28}{seconds:>9.1f}{rate:>12,.0f}{floor_seconds / seconds:>10.2f}")
    print(
        f"  product: {len(run.runs)} Dagster runs, {run.events} events stored "
        f"({run.events / hours:.1f} per pull hour), peak RSS {run.peak_mib:.0f} MiB; "
        f"{seed_seconds / product_seconds:.2f}x faster than seed-style end to end"
    )


LATE_DAYS = ("2022-10-03", "2022-10-10", "2022-10-17")


def late_pull(raw: Path, after_days: int) -> str:
    """One new pull after the history, with records for three old days and its own day."""
    day = date(2022, 10, 1).toordinal() + after_days
    pull_day = date.fromordinal(day)
    name = f"{pull_day:%Y%m%d}-000500.json"
    records = [
        {
            "uuid": f"late-{after_days}-{index}",
            "distinct_id": f"late-user-{index % 50}",
            "event": "$pageview",
            "timestamp": f"{LATE_DAYS[index % 3] if index % 4 else pull_day}T12:00:00Z",
        }
        for index in range(400)
    ]
    folder = raw / pull_day.isoformat()
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps(records))
    return f"{pull_day}-00:00"


def incremental(data: Path, work: Path) -> None:
    print(f"\nincremental: one late pull (400 records, 3 old days) on a history of "
          f"{HISTORY_EVENTS_PER_DAY:,} events/day")  # fmt: skip
    for days in HISTORIES:
        raw = work / f"history-{days}"
        shutil.rmtree(raw, ignore_errors=True)
        shutil.copytree(pulls(data, days, HISTORY_EVENTS_PER_DAY), raw)
        home = fresh_home(work, f"home-{days}")
        database = work / f"history-{days}.duckdb"
        database.unlink(missing_ok=True)
        full = aquatech(["materialize"], home, raw, database)
        hour = late_pull(raw, days)
        before = len(full.runs)
        late = aquatech(["materialize", "--from", hour, "--to", hour], home, raw, database)
        print(
            f"  {days} days: full backfill {full.seconds:.1f} s in {before} runs; late pull "
            f"{late.seconds:.1f} s in {len(late.runs) - before} runs = "
            f"{late.seconds / full.seconds:.1%} of the backfill"
        )


def startup() -> None:
    code = (
        "import time; started = time.perf_counter(); "
        "from aquatech_assets.definitions import defs; d = defs(); "
        "d.resolve_all_job_defs(); print(time.perf_counter() - started)"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    print(f"\nstart-up: importing and building the definitions: {float(result.stdout):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", choices=sorted(SETS), default=["dense", "sparse"])
    parser.add_argument("--repeat", type=int, default=1, help="tries per figure (median)")
    parser.add_argument("--incremental", action="store_true", help="also time one late pull")
    parser.add_argument("--data", type=Path, default=REPO / "benchmarks" / ".data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for name in args.sets:
            compare(name, pulls(args.data, *SETS[name]), work, args.repeat)
        if args.incremental:
            incremental(args.data, work)
    startup()


if __name__ == "__main__":
    main()
