"""`aquatech`: write sample pulls, materialize a range of pull hours, or run the whole demo."""

import argparse
import os
import sys
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import filelock
import polars as pl

from aquatech_assets import settings
from aquatech_assets.definitions import build_definitions, warehouse_for
from aquatech_assets.partitions import build_partitions
from aquatech_assets.resources import DuckDBWarehouse, PullStore
from aquatech_assets.runs import materialize, requested_hours
from aquatech_assets.sample_data import write_sample_pulls

SAMPLE_START = date(2022, 10, 1)
HOUR_FORMAT = "%Y-%m-%d-%H:%M"
# Dagster then stores one "planned" event per asset and run instead of one per partition: a
# week-long ingest run stores 3 planned events, not 504, about a third of its bookkeeping on
# SQLite. The price: partitions of a run that fails show as missing, not failed (the run shows
# as failed, and the command exits non-zero). Set it to 0 to keep per-partition planned events.
PLANNED_EVENTS_AS_RANGES = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
# Held while a command opens the Dagster instance. Opening a SQLite instance creates its tables
# the first time, and processes that do that at the same moment fail on each other's half-made
# tables (`table ... already exists`, two alembic heads).
INSTANCE_LOCK = ".aquatech-instance.lock"
INSTANCE_LOCK_SECONDS = 120


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault(PLANNED_EVENTS_AS_RANGES, "1")
    try:
        return args.handler(args)
    except settings.SettingsError as error:
        return _fail(str(error), 2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aquatech", description="AquaTech activity pipeline (Dagster + DuckDB)."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    sample = commands.add_parser("sample-data", help="write sample pulls under DIR/raw_data/")
    sample.add_argument("dir", type=Path)
    _sample_options(sample)
    sample.set_defaults(handler=_sample_data)

    run = commands.add_parser(
        "materialize",
        help="ingest pull hours (default: every hour with files), then recount what they touched",
    )
    run.add_argument("--from", dest="start", type=_hour, help="first pull hour, YYYY-MM-DD-HH:MM")
    run.add_argument("--to", dest="end", type=_hour, help="last pull hour (inclusive)")
    run.set_defaults(handler=_materialize)

    demo = commands.add_parser(
        "demo", help="sample pulls into DIR, materialize them into DuckDB, print DAU and MAU"
    )
    demo.add_argument("--dir", type=Path, default=Path("data"), help="default: ./data")
    _sample_options(demo)
    demo.set_defaults(handler=_demo)

    report = commands.add_parser("report", help="print DAU and MAU from the warehouse")
    report.set_defaults(handler=_report)
    return parser


def _sample_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", type=date.fromisoformat, default=SAMPLE_START)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--events-per-day", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)


def _hour(text: str) -> datetime:
    try:
        return datetime.strptime(text, HOUR_FORMAT).replace(tzinfo=UTC)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pull hour YYYY-MM-DD-HH:MM") from error


def _sample_data(args: argparse.Namespace) -> int:
    summary = write_sample_pulls(
        args.dir,
        args.start,
        args.days,
        users=args.users,
        events_per_day=args.events_per_day,
        seed=args.seed,
    )
    print(
        f"wrote {summary.files} pulls under {args.dir / 'raw_data'}: {summary.records} records, "
        f"{summary.events} events, {summary.late_records} late, {summary.redelivered} redelivered"
    )
    return 0


def _materialize(args: argparse.Namespace) -> int:
    config = settings.Settings.from_env()
    return _run(config, args.start, args.end)


def _demo(args: argparse.Namespace) -> int:
    raw_data = args.dir / "raw_data"
    if not raw_data.is_dir() or not any(raw_data.iterdir()):
        _sample_data(args)
    else:
        print(f"using the pulls already under {raw_data}")
    os.environ.setdefault("AQUATECH_RAW_DATA", str(raw_data))
    os.environ.setdefault("AQUATECH_DUCKDB_PATH", str(args.dir / "warehouse.duckdb"))
    status = _run(settings.Settings.from_env(), None, None)
    return status or _report(args)


def _run(config: settings.Settings, start: datetime | None, end: datetime | None) -> int:
    if start and end and start > end:
        return _fail(f"--from {start:{HOUR_FORMAT}} is after --to {end:{HOUR_FORMAT}}", 2)
    store = PullStore()
    root = store.location()
    if not store.exists():
        return _fail(f"no pull folder at {root}: set AQUATECH_RAW_DATA to the folder pulls land in")
    scan = store.scan()
    _warn_each(f"{len(scan.skipped)} paths under {root} are not read", map(str, scan.skipped))
    hours = requested_hours(scan.hours, start, end)
    if not hours:
        print(f"no pull files under {root} in the requested range")
        return 0
    target = config.duckdb_path if config.warehouse == "duckdb" else "AQUATECH_BIGQUERY_*"
    print(
        f"materializing {len(hours)} pull hours from {hours[0]:{HOUR_FORMAT}} to "
        f"{hours[-1]:{HOUR_FORMAT}} into {config.warehouse} ({target})"
    )
    with _instance() as instance:
        summary = materialize(
            build_definitions(config), build_partitions(config.start_date), instance, hours, print
        )
    _warn_each(
        f"{len(summary.hours_outside_partitions)} pull hours were not read: they are before "
        f"AQUATECH_START_DATE={config.start_date} or in the future",
        (f"{hour:{HOUR_FORMAT}}" for hour in summary.hours_outside_partitions),
    )
    _warn_each(
        f"{len(summary.dates_outside_partitions)} event dates are stored in event_data but not "
        "counted: they are before AQUATECH_START_DATE or in the future",
        (day.isoformat() for day in summary.dates_outside_partitions),
    )
    if summary.failed:
        return _fail(f"{len(summary.failed)} of {len(summary.runs)} runs failed")
    print(f"{len(summary.runs)} runs succeeded")
    return 0


def _warn_each(headline: str, items: Iterable[str], shown: int = 20) -> None:
    items = list(items)
    if items:
        print(f"warning: {headline}:", file=sys.stderr)
        for item in items[:shown]:
            print(f"  {item}", file=sys.stderr)
        if len(items) > shown:
            print(f"  ... and {len(items) - shown} more", file=sys.stderr)


def _fail(message: str, status: int = 1) -> int:
    print(f"aquatech: {message}", file=sys.stderr)
    return status


def _instance() -> dg.DagsterInstance:
    home = os.environ.get("DAGSTER_HOME")
    if home and Path(home).is_dir():
        lock = filelock.FileLock(Path(home) / INSTANCE_LOCK, timeout=INSTANCE_LOCK_SECONDS)
        try:
            with lock:
                return dg.DagsterInstance.get()
        except filelock.Timeout as error:
            raise settings.SettingsError(
                f"another `aquatech` command held {lock.lock_file} for {INSTANCE_LOCK_SECONDS} s "
                "while opening the Dagster instance in DAGSTER_HOME; let it finish and re-run"
            ) from error
    if home:
        return dg.DagsterInstance.get()  # Dagster's own message for a home that is not a folder
    print("DAGSTER_HOME is not set: runs are not kept after this command (see README)")
    return dg.DagsterInstance.ephemeral()


def _report(args: argparse.Namespace) -> int:
    warehouse = warehouse_for(settings.Settings.from_env())
    if isinstance(warehouse, DuckDBWarehouse) and not warehouse.resolved_path().exists():
        return _fail(f"no DuckDB file at {warehouse.resolved_path()}: run `aquatech materialize`")
    with pl.Config(tbl_rows=40, tbl_hide_dataframe_shape=True):
        for table, column in (("dau", "event_date"), ("mau", "event_month")):
            if not warehouse.table_exists(table):
                print(f"{table}: not materialized yet")
                continue
            frame = warehouse.query(
                f"SELECT {column}, {table} FROM {warehouse.qualified(table)} ORDER BY {column}"
            )
            print(f"\n{table.upper()}")
            print(frame)
    return 0


if __name__ == "__main__":
    sys.exit(main())
