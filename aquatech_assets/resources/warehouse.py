"""What every warehouse offers the assets and the IO manager, whatever engine is behind it."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar

import dagster as dg
import polars as pl

from aquatech_assets.identifiers import checked_identifier
from aquatech_assets.staging import StagedTable, staged_frame


@dataclass(frozen=True)
class PartitionWindow:
    """Rows whose `column` lies in [start, end) make up the partitions being replaced."""

    column: str
    start: datetime | date
    end: datetime | date


@dataclass(frozen=True)
class WriteStats:
    rows_written: int
    rows_replaced: int
    redeliveries_dropped: int = 0
    later_deliveries_removed: int = 0
    removed_dates: tuple[date, ...] = ()


__all__ = ["PartitionWindow", "Warehouse", "WriteStats", "checked_identifier"]


class Warehouse(dg.ConfigurableResource):
    """The interface both warehouses implement, so assets and the IO manager never name one."""

    # The SQL dialect its queries are written in ("duckdb" or "bigquery"), for code that
    # builds SQL for whichever warehouse it is given (the asset checks).
    dialect: ClassVar[str]

    def table_exists(self, table: str) -> bool:
        raise NotImplementedError

    def query(self, sql: str, params: dict | None = None) -> pl.DataFrame:
        """Runs SQL in the warehouse and returns its (small) result."""
        raise NotImplementedError

    def aggregate(self, name: str, start: datetime, end: datetime) -> pl.DataFrame:
        """The aggregate `name` over event_data rows with event_time in [start, end)."""
        raise NotImplementedError

    def replace(
        self,
        table: str,
        rows: StagedTable | pl.DataFrame,
        window: PartitionWindow | None,
        unique_key: str | None = None,
        dates_of: str | None = None,
        compressed: tuple[str, ...] = (),
    ) -> WriteStats:
        """Replaces the window's rows (the whole table without one) with `rows`, atomically.

        With `unique_key`, a key already stored from an earlier window keeps that row, and the
        rows of later windows with a key of `rows` are removed: the earliest window wins
        whatever order windows are written in. With `dates_of` (a timestamp column), the UTC
        dates of every row removed are returned, so that what was counted on them is recounted.
        `compressed` names long text columns a warehouse may store compressed. A polars frame
        is staged first, so each warehouse writes staged tables only (`replace_staged`).
        """
        if isinstance(rows, pl.DataFrame):
            with staged_frame(rows) as staged:
                return self.replace_staged(table, staged, window, unique_key, dates_of, compressed)
        return self.replace_staged(table, rows, window, unique_key, dates_of, compressed)

    def replace_staged(
        self,
        table: str,
        rows: StagedTable,
        window: PartitionWindow | None,
        unique_key: str | None,
        dates_of: str | None,
        compressed: tuple[str, ...],
    ) -> WriteStats:
        """`replace`, for rows already in a staging connection."""
        raise NotImplementedError

    def read(self, table: str, window: PartitionWindow | None) -> pl.DataFrame:
        raise NotImplementedError

    def qualified(self, table: str) -> str:
        raise NotImplementedError
