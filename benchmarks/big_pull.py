"""What one 200 MB pull costs: seconds and peak RSS of `aquatech materialize` on it.

    .venv/bin/python benchmarks/big_pull.py [--megabytes 200] [--data benchmarks/.data]

It writes one pull file of about `--megabytes` MB (a JSON array of records shaped like the
device's, about 600 bytes each, with a few PostHog-style properties and autocapture elements),
kept in `--data` between runs, then runs `aquatech materialize` on it in its own process with a
fresh DAGSTER_HOME and DuckDB file, as a user would. It prints the file's size and records, the
seconds, the command's peak RSS, and the rows stored. Figures are printed, never asserted: the
test suite has no room for a pull this size on two cores.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
PULL = "2022-10-01/20221001-120000.json"


def record(index: int) -> dict:
    second = index % 43_200
    return {
        "uuid": f"0183a1f2-{index:08x}-7000-8000-{index * 7919 % 16**12:012x}",
        "distinct_id": index % 50_000 if index % 3 else str(index % 50_000),
        "event": ("$pageview", "$autocapture", "lesson_booked", "$identify")[index % 4],
        "timestamp": f"2022-10-01T{second // 3600:02d}:{second // 60 % 60:02d}:"
        f"{second % 60:02d}.{index % 1000:03d}Z",
        "elements": []
        if index % 4 != 1
        else [{"tag_name": "button", "attr__class": "btn", "nth_child": 2, "$el_text": "Book"}],
        "$geoip_city_name": ("Jakarta", "São Paulo", "Düsseldorf", "東京")[index % 4],
        "$geoip_country_name": "Indonesia",
        "$geoip_country_code": "ID",
        "$geoip_continent_name": "Asia",
        "$geoip_continent_code": "AS",
        "$geoip_latitude": -6.1944 if index % 5 else -6,
        "$geoip_longitude": 106.8229,
        "$geoip_time_zone": "Asia/Jakarta",
        "$geoip_subdivision_1_code": "JK",
        "$geoip_subdivision_1_name": "Jakarta",
        "properties": {"$os": "Android", "$lib": "aquatech-device", "$lib_version": "1.4.2"},
    }


def write_pull(path: Path, megabytes: int) -> int:
    """Writes records until the file passes `megabytes` MB; returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    limit = megabytes * 10**6
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        handle.write("[")
        while handle.tell() < limit:
            handle.write(("," if count else "") + json.dumps(record(count), ensure_ascii=False))
            count += 1
        handle.write("]")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--data", type=Path, default=REPO / "benchmarks" / ".data")
    args = parser.parse_args()

    raw_data = args.data / f"big_pull_{args.megabytes}mb" / "raw_data"
    pull = raw_data / PULL
    if not pull.exists():
        started = time.perf_counter()
        count = write_pull(pull, args.megabytes)
        print(f"wrote {pull} ({count} records) in {time.perf_counter() - started:.1f} s")
    size_mb = pull.stat().st_size / 10**6

    with tempfile.TemporaryDirectory(prefix="aquatech-big-pull-") as work:
        home = Path(work) / "dagster_home"
        home.mkdir()
        shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
        database = Path(work) / "warehouse.duckdb"
        env = {
            **os.environ,
            "AQUATECH_RAW_DATA": str(raw_data),
            "AQUATECH_DUCKDB_PATH": str(database),
            "DAGSTER_HOME": str(home),
        }
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "aquatech_assets.cli", "materialize"],
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if result.returncode != 0:
            print(result.stdout + result.stderr)
            sys.exit(result.returncode)
        with duckdb.connect(str(database), read_only=True) as connection:
            counts = {
                table: connection.sql(f"SELECT count(*) FROM aquatech.{table}").fetchall()[0][0]
                for table in ("raw_events", "event_data", "rejected_events", "dau")
            }
        warehouse_mb = database.stat().st_size / 10**6

    print(f"pull: {size_mb:.0f} MB, {counts['raw_events']} records")
    print(f"aquatech materialize: {seconds:.1f} s, peak RSS {peak_mib:.0f} MiB")
    print(
        f"stored: {counts['event_data']} events, {counts['rejected_events']} rejected, "
        f"{counts['dau']} dau rows; warehouse file {warehouse_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
