"""Dagster's own cost for a product run, without the data: the same runs with do-nothing assets.

    .venv/bin/python benchmarks/bookkeeping.py RUNS.json

RUNS.json lists the runs a product run launched, as [job name, tags] pairs read from its
DAGSTER_HOME. This process builds assets and asset checks with the product's keys,
partitions and jobs, whose bodies and IO manager do nothing but report metadata of the same
shape, and executes the same runs on the instance DAGSTER_HOME names (a fresh one). Its wall
time is the product's fixed start-up plus the bookkeeping of the events it stores; the
product's time minus this one is the time its data path took.
"""

import json
import os
import sys
from datetime import date

import dagster as dg

from aquatech_assets.cli import PLANNED_EVENTS_AS_RANGES
from aquatech_assets.jobs import build_jobs
from aquatech_assets.partitions import build_partitions

# What the product's outputs report, so that each stored event is about as large.
PULL_METADATA = {
    "files_read": 60,
    "files_skipped": 0,
    "files_rejected": 0,
    "records_read": 4000,
    "records_rejected": 0,
    "dagster/row_count": 4000,
    "dagster/table_name": '"aquatech"."event_data"',
    "rows_replaced": 0,
}


class NothingIOManager(dg.IOManager):
    def handle_output(self, context: dg.OutputContext, obj) -> None:
        context.add_output_metadata({"dagster/row_count": 0, "rows_replaced": 0})

    def load_input(self, context: dg.InputContext):
        return None


def build(start: date) -> dg.Definitions:
    partitions = build_partitions(start)

    @dg.multi_asset(
        name="pulls",
        specs=[
            dg.AssetSpec(key, partitions_def=partitions.hourly)
            for key in ("raw_events", "event_data", "rejected_events")
        ],
    )
    def pulls():
        for key in ("raw_events", "event_data", "rejected_events"):
            yield dg.Output(None, output_name=key, metadata=PULL_METADATA)

    def aggregate(name: str, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
        @dg.asset(name=name, partitions_def=partitions_def, deps=["event_data"])
        def body():
            return dg.Output(None, metadata={"partitions_touched": 1, "computed_at": "now"})

        return body

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(name, asset=asset)
            for name, asset in (
                ("uuid_unique", "event_data"),
                ("event_time_not_before_start_date", "event_data"),
                ("event_time_not_after_pull", "event_data"),
                ("rejected_share_per_pull_hour", "rejected_events"),
            )
        ]
    )
    def ingest_checks():
        for spec in ingest_checks.check_specs:
            yield dg.AssetCheckResult(
                check_name=spec.name, asset_key=spec.asset_key, passed=True, metadata={"n": 0}
            )

    def check(asset: str, name: str) -> dg.AssetChecksDefinition:
        @dg.asset_check(asset=asset, name=name)
        def body() -> dg.AssetCheckResult:
            return dg.AssetCheckResult(passed=True, metadata={"n": 0})

        return body

    return dg.Definitions(
        assets=[
            pulls,
            aggregate("dau", partitions.daily),
            aggregate("event_activity", partitions.daily),
            aggregate("mau", partitions.monthly),
        ],
        asset_checks=[
            ingest_checks,
            check("mau", "dau_not_above_mau"),
            check("event_activity", "users_not_above_dau"),
        ],
        jobs=list(build_jobs().values()),
        resources={"io_manager": NothingIOManager()},
        executor=dg.in_process_executor,
    )


def main() -> None:
    with open(sys.argv[1]) as handle:
        runs = json.load(handle)
    os.environ.setdefault(PLANNED_EVENTS_AS_RANGES, "1")
    defs = build(date(2022, 9, 1))
    with dg.DagsterInstance.get() as instance:
        for job_name, tags in runs:
            partition = tags.pop("dagster/partition", None)
            defs.resolve_job_def(job_name).execute_in_process(
                instance=instance,
                tags=tags,
                partition_key=partition,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )


if __name__ == "__main__":
    main()
