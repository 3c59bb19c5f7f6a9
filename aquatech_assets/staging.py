"""Rows on their way to the warehouse, held in a local DuckDB instead of Python memory.

A pull range is parsed into tables of an in-memory DuckDB that spills to a temporary folder
past its memory limit, so a run's memory does not grow with its range. The warehouse then
copies those tables in with SQL (DuckDB attaches its file to the same connection) or exports
them (BigQuery), and no record ever becomes a Python object on the way.
"""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from aquatech_assets.identifiers import checked_identifier

# What parsing a range may hold in memory before DuckDB spills to disk; well under the 2 GiB a
# run is allowed, leaving room for Dagster and Python themselves.
MEMORY_LIMIT = "1GB"


@contextmanager
def staging_connection() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB in UTC, spilling to a folder removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix="aquatech-staging-") as spill:
        connection = duckdb.connect(":memory:")
        try:
            connection.execute("SET TimeZone = 'UTC'")
            connection.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
            connection.execute("SET temp_directory = $folder", {"folder": spill})
            connection.execute("SET preserve_insertion_order = false")
            yield connection
        finally:
            connection.close()


def in_utc(frame: pl.DataFrame) -> pl.DataFrame:
    """Timestamps in UTC: DuckDB hands TIMESTAMPTZ over in the session's zone."""
    return frame.with_columns(
        pl.col(name).dt.convert_time_zone("UTC")
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    )


@dataclass(frozen=True)
class StagedTable:
    """A table of a staging connection: what an asset hands its IO manager to store."""

    connection: duckdb.DuckDBPyConnection
    name: str

    @property
    def sql_name(self) -> str:
        return f'"{checked_identifier(self.name)}"'

    @property
    def height(self) -> int:
        return self.connection.execute(f"SELECT count(*) FROM {self.sql_name}").fetchall()[0][0]

    def columns(self) -> list[tuple[str, str]]:
        """(name, DuckDB type) of every column, in order."""
        return [row[:2] for row in self.connection.sql(f"DESCRIBE {self.sql_name}").fetchall()]

    def to_polars(self, limit: int | None = None) -> pl.DataFrame:
        sql = f"SELECT * FROM {self.sql_name}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return in_utc(pl.from_arrow(self.connection.sql(sql).to_arrow_table()))

    def to_parquet(self, path: Path) -> None:
        """Writes the rows to a Parquet file, streaming (BigQuery loads it)."""
        self.connection.execute(
            f"COPY {self.sql_name} TO $path (FORMAT parquet, COMPRESSION snappy)",
            {"path": str(path)},
        )

    def add_constant(self, column: str, value: datetime) -> None:
        """Adds a TIMESTAMPTZ column holding `value` on every row (dl_updated_at)."""
        self.connection.execute(
            f'ALTER TABLE {self.sql_name} ADD COLUMN "{checked_identifier(column)}" '
            f"TIMESTAMPTZ DEFAULT TIMESTAMPTZ '{value.isoformat()}'"
        )


@contextmanager
def staged_frame(frame: pl.DataFrame, name: str = "incoming") -> Iterator[StagedTable]:
    """A polars frame (an aggregate's few rows) as a staged table of its own connection."""
    with staging_connection() as connection:
        connection.register("frame_arrow", frame.to_arrow())
        table = StagedTable(connection, name)
        connection.execute(f"CREATE TABLE {table.sql_name} AS SELECT * FROM frame_arrow")
        connection.unregister("frame_arrow")
        yield table
