"""How long a pull_sensor tick takes over a big pull folder (and a bucket), and its cursor size.

    .venv/bin/python benchmarks/pull_scan.py [--files 100000] [--bucket-files 10000]

It writes `--files` small pulls (about a dozen an hour, as the device writes them) into a
temporary folder, then times the scan and a whole sensor tick: the first tick, a tick with
nothing new, and a tick after one late file lands in an old hour. With `--bucket-files` it
does the same against fake-gcs-server on loopback. Figures are printed, never asserted.
"""

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

# The emulator helper lives with the tests, which are not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aquatech_assets.definitions import build_definitions  # noqa: E402
from aquatech_assets.resources import PullStore  # noqa: E402
from aquatech_assets.settings import Settings  # noqa: E402
from aquatech_assets_tests.gcs_emulator import fake_gcs_server  # noqa: E402

PULLS_PER_HOUR = 12


def pull_names(count: int) -> list[str]:
    start = datetime(2022, 9, 1, tzinfo=UTC)
    step = timedelta(minutes=60 / PULLS_PER_HOUR)
    stamps = (start + index * step + timedelta(seconds=index % 50) for index in range(count))
    return [f"{stamp:%Y-%m-%d}/{stamp:%Y%m%d-%H%M%S}.json" for stamp in stamps]


def timed(label: str, action):
    started = time.perf_counter()
    result = action()
    print(f"  {label:<44} {time.perf_counter() - started:8.2f} s")
    return result


def measure(root: str, put, duckdb_path: Path) -> None:
    settings = Settings(root, "duckdb", str(duckdb_path), date(2022, 9, 1))
    defs = build_definitions(settings, raw_data=root, duckdb_path=str(duckdb_path))
    sensor = defs.resolve_sensor_def("pull_sensor")
    store = PullStore(root=root)
    with dg.instance_for_test() as instance:

        def tick(cursor):
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"pull_store": store}
            )
            return sensor(context)

        scan = timed("scan (list and fingerprint every hour)", store.scan)
        first = timed("first tick", lambda: tick(None))
        timed("tick with nothing new", lambda: tick(first.cursor))
        put("2022-09-02/20220902-101010.json")
        late = timed("tick after one late file in an old hour", lambda: tick(first.cursor))
        runs = (len(first.run_requests), len(late.run_requests))
        print(
            f"  hours {len(scan.hours)}, runs requested on the first tick {runs[0]}, then {runs[1]}"
        )
        print(f"  cursor {len(first.cursor) / 1024:.0f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--bucket-files", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        raw = base / "raw_data"

        def put_file(name: str) -> None:
            (raw / name).parent.mkdir(parents=True, exist_ok=True)
            (raw / name).write_text("[]")

        for name in pull_names(args.files):
            put_file(name)
        print(f"local folder, {args.files} files")
        measure(str(raw), put_file, base / "local.duckdb")

        if args.bucket_files:
            with fake_gcs_server(base):
                client = storage.Client(project="bench", credentials=AnonymousCredentials())
                bucket = client.create_bucket("bench-pulls")

                def put_blob(name: str) -> None:
                    bucket.blob(f"raw_data/{name}").upload_from_string(json.dumps([]))

                for name in pull_names(args.bucket_files):
                    put_blob(name)
                print(f"bucket on fake-gcs-server, {args.bucket_files} objects")
                measure("gs://bench-pulls/raw_data", put_blob, base / "bucket.duckdb")


if __name__ == "__main__":
    main()
