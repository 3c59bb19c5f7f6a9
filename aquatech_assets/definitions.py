"""The one entry point: `workspace.yaml` and the CLI load these definitions.

AQUATECH_WAREHOUSE and AQUATECH_START_DATE are read when the definitions are built (when a code
server or command loads them), not when the module is imported; the other settings are read by
the resources when a run uses them. Loading touches no file, database or network.
"""

import dagster as dg

from aquatech_assets.assets import build_assets
from aquatech_assets.checks import build_checks
from aquatech_assets.io_managers import WarehouseIOManager
from aquatech_assets.jobs import build_jobs
from aquatech_assets.partitions import build_partitions
from aquatech_assets.resources import DuckDBWarehouse, PullStore, Warehouse
from aquatech_assets.sensors import build_late_data_sensor, build_pull_sensor
from aquatech_assets.settings import Settings


def warehouse_for(settings: Settings, duckdb_path: str | None = None) -> Warehouse:
    """The warehouse AQUATECH_WAREHOUSE names; each reads its own settings when a run uses it."""
    if settings.warehouse == "bigquery":
        from aquatech_assets.resources import BigQueryWarehouse

        return BigQueryWarehouse()
    return DuckDBWarehouse(path=duckdb_path)


def build_definitions(
    settings: Settings,
    *,
    raw_data: str | None = None,
    duckdb_path: str | None = None,
) -> dg.Definitions:
    """The project's definitions; `raw_data` and `duckdb_path` override the environment."""
    partitions = build_partitions(settings.start_date)
    jobs = build_jobs()
    warehouse = warehouse_for(settings, duckdb_path)
    return dg.Definitions(
        assets=build_assets(partitions),
        asset_checks=build_checks(partitions),
        jobs=list(jobs.values()),
        sensors=[build_pull_sensor(partitions, jobs), build_late_data_sensor(partitions, jobs)],
        resources={
            "warehouse": warehouse,
            "io_manager": WarehouseIOManager(warehouse=warehouse),
            "pull_store": PullStore(root=raw_data),
        },
        # Steps of a run take turns on the warehouse (DuckDB's file lock) instead of racing.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
