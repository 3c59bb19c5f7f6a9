"""Resources: where pulls are read from and the warehouse the tables are kept in."""

from aquatech_assets.resources.duckdb_warehouse import DuckDBWarehouse
from aquatech_assets.resources.pull_store import PullStore
from aquatech_assets.resources.warehouse import PartitionWindow, Warehouse, WriteStats

__all__ = [
    "BigQueryWarehouse",
    "DuckDBWarehouse",
    "PartitionWindow",
    "PullStore",
    "Warehouse",
    "WriteStats",
]


def __getattr__(name: str):
    """BigQueryWarehouse on first use, so that DuckDB users never import the Google client."""
    if name == "BigQueryWarehouse":
        from aquatech_assets.resources.bigquery_warehouse import BigQueryWarehouse

        return BigQueryWarehouse
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
