"""Resources: where pulls are read from and the warehouse the tables are kept in."""

from aquatech_assets.resources.duckdb_warehouse import DuckDBWarehouse
from aquatech_assets.resources.pull_store import PullStore
from aquatech_assets.resources.warehouse import PartitionWindow, Warehouse, WriteStats

__all__ = ["DuckDBWarehouse", "PartitionWindow", "PullStore", "Warehouse", "WriteStats"]
