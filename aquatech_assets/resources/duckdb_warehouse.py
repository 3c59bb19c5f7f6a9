"""The embedded default warehouse: one DuckDB file, tables in schema `aquatech`."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import ClassVar, TypeVar

import dagster as dg
import duckdb
import filelock
import polars as pl
import tenacity

from aquatech_assets import aggregates, settings
from aquatech_assets.resources.warehouse import (
    PartitionWindow,
    Warehouse,
    WriteStats,
    checked_identifier,
)
from aquatech_assets.staging import StagedTable, in_utc

_logger = dg.get_dagster_logger()
# The name the warehouse file is attached under in a staging connection for a write.
_CATALOG = "warehouse"
# Beside the DuckDB file: held by each run that uses the warehouse, from its first step to its
# last (see `yield_for_execution`).
RUN_LOCK_SUFFIX = ".aquatech-run.lock"
RUN_LOCK_LOG_SECONDS = 30.0
T = TypeVar("T")


class DuckDBLockTimeout(RuntimeError):
    pass


class DuckDBWarehouse(Warehouse):
    """A DuckDB file; `path` defaults to AQUATECH_DUCKDB_PATH and `lock_timeout_seconds` to
    AQUATECH_DUCKDB_LOCK_TIMEOUT (600 s), both read when a run connects.

    DuckDB lets one process at a time open a file for writing. Runs that use the warehouse take
    turns on a lock file beside it, whatever the Dagster instance's pools say; when another
    process holds the DuckDB file anyway (a notebook, a BI tool), connecting waits, logging how
    long, for up to `lock_timeout_seconds`.
    """

    dialect: ClassVar[str] = "duckdb"

    path: str | None = None
    schema_name: str = "aquatech"
    lock_timeout_seconds: float | None = None

    def resolved_path(self) -> Path:
        return Path(self.path or settings.duckdb_path()).expanduser().resolve()

    def _prepared_path(self) -> Path:
        """The file's path, with its folder made, for whatever is about to open or lock it."""
        path = self.resolved_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator["DuckDBWarehouse"]:
        """Holds the run lock for the whole run, so no other run writes between its steps.

        An aggregate step reads event_data, then writes its table: another run's ingest and
        recount landing in between would be overwritten by a count that misses its rows. DuckDB's
        own lock covers a connection, not a step, and a Dagster pool serializes steps only when
        the instance's dagster.yaml configures `concurrency`; this lock needs neither. The
        operating system releases it when the process ends, even on SIGKILL.
        """
        path = self._prepared_path()
        lock = filelock.FileLock(path.with_name(path.name + RUN_LOCK_SUFFIX), is_singleton=True)
        started = time.monotonic()
        timeout = 0.0
        while True:
            try:
                lock.acquire(timeout=timeout)
                break
            except filelock.Timeout:
                context.log.info(
                    f"waiting for another run that is writing {path} "
                    f"(waited {time.monotonic() - started:.0f} s so far); runs take turns on it"
                )
                timeout = RUN_LOCK_LOG_SECONDS
        try:
            yield self
        finally:
            lock.release()

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        path = self._prepared_path()
        connection = self._open_waiting_for_lock(path)
        try:
            yield connection
        finally:
            connection.close()

    def qualified(self, table: str) -> str:
        return f'"{checked_identifier(self.schema_name)}"."{checked_identifier(table)}"'

    def table_exists(self, table: str) -> bool:
        if not self.resolved_path().exists():
            return False
        with self.connect() as connection:
            return _table_exists(connection, self.schema_name, table)

    def query(self, sql: str, params: dict | None = None) -> pl.DataFrame:
        with self.connect() as connection:
            return in_utc(pl.from_arrow(connection.sql(sql, params=params).to_arrow_table()))

    def aggregate(self, name: str, start: datetime, end: datetime) -> pl.DataFrame:
        sql = aggregates.aggregate_sql(name, aggregates.DUCKDB, self.qualified("event_data"))
        return self.query(sql, {"start": start, "end": end})

    def read(self, table: str, window: PartitionWindow | None) -> pl.DataFrame:
        sql = f"SELECT * FROM {self.qualified(table)}"
        params = None
        if window is not None:
            column = checked_identifier(window.column)
            sql += f' WHERE "{column}" >= $start AND "{column}" < $end'
            params = {"start": window.start, "end": window.end}
        return self.query(sql, params)

    def replace_staged(
        self,
        table: str,
        rows: StagedTable,
        window: PartitionWindow | None,
        unique_key: str | None,
        dates_of: str | None,
        compressed: tuple[str, ...],
    ) -> WriteStats:
        """See `Warehouse.replace`; the rows are copied in by SQL, never through Python.

        The warehouse file is attached to the staging connection for the write, so DuckDB reads
        the staged tables and writes the file in one engine, in one transaction.
        """
        with self._attached(rows.connection) as catalog:
            target = f'"{catalog}".{self.qualified(table)}'
            connection = rows.connection
            connection.execute("BEGIN TRANSACTION")
            try:
                self._ensure_table(connection, catalog, table, rows, compressed)
                stats = _replace_rows(
                    _Rows(connection, target, rows.sql_name, dates_of),
                    rows.height,
                    window,
                    unique_key,
                )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return stats

    @contextmanager
    def _attached(self, connection: duckdb.DuckDBPyConnection) -> Iterator[str]:
        path = self._prepared_path()
        self._waiting_for_lock(
            path, lambda: connection.execute(f"ATTACH $path AS {_CATALOG}", {"path": str(path)})
        )
        try:
            yield _CATALOG
        finally:
            connection.execute(f"DETACH {_CATALOG}")

    def _ensure_table(
        self,
        connection: duckdb.DuckDBPyConnection,
        catalog: str,
        table: str,
        rows: StagedTable,
        compressed: tuple[str, ...],
    ) -> None:
        """Creates the table from the staged columns, or adds the columns it lacks, by name.

        Columns named in `compressed` (raw JSON text) are stored with zstd, which is both
        smaller and faster to write than DuckDB's default for long text.
        """
        schema = checked_identifier(self.schema_name)
        target = f'"{catalog}".{self.qualified(table)}'
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{catalog}"."{schema}"')
        columns = rows.columns()
        if not _table_exists(connection, schema, table, catalog):
            definitions = ", ".join(
                f'"{checked_identifier(name)}" {column_type}'
                + (" USING COMPRESSION zstd" if name in compressed else "")
                for name, column_type in columns
            )
            connection.execute(f"CREATE TABLE {target} ({definitions})")
            return
        existing = {
            row[0]
            for row in connection.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_catalog = $catalog AND table_schema = $schema "
                "AND table_name = $table",
                {"catalog": catalog, "schema": schema, "table": table},
            ).fetchall()
        }
        for name, column_type in columns:
            if name not in existing:
                column = checked_identifier(name)
                connection.execute(f'ALTER TABLE {target} ADD COLUMN "{column}" {column_type}')

    def _open_waiting_for_lock(self, path: Path) -> duckdb.DuckDBPyConnection:
        return self._waiting_for_lock(path, lambda: duckdb.connect(str(path)))

    def _waiting_for_lock(self, path: Path, action: Callable[[], T]) -> T:
        limit = self.resolved_lock_timeout()
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_lock_conflict),
            wait=tenacity.wait_exponential(multiplier=0.2, max=5),
            stop=tenacity.stop_after_delay(limit),
            before_sleep=_log_lock_wait(path, limit),
            reraise=True,
        )
        try:
            return retrying(action)
        except duckdb.IOException as error:
            if not _is_lock_conflict(error):
                raise
            raise DuckDBLockTimeout(
                f"{path} stayed locked by another process for {limit:g} s "
                f"({_first_line(error)}). Close the other connection (a notebook, a BI tool, "
                "another `aquatech materialize`) and re-run; the re-run is safe. To wait longer, "
                "set AQUATECH_DUCKDB_LOCK_TIMEOUT (seconds)."
            ) from error

    def resolved_lock_timeout(self) -> float:
        if self.lock_timeout_seconds is not None:
            return self.lock_timeout_seconds
        return settings.duckdb_lock_timeout()


@dataclass
class _Rows:
    """Deletes from one table, remembering the dates of the rows it deleted."""

    connection: duckdb.DuckDBPyConnection
    target: str
    source: str
    dates_of: str | None
    removed_dates: set = field(default_factory=set)

    def execute(self, sql: str, params: dict | None = None) -> int:
        return _count(self.connection.execute(sql, params))

    def delete(self, where: str, params: dict | None = None) -> int:
        if self.dates_of is not None:
            column = checked_identifier(self.dates_of)
            dates = self.connection.execute(
                f"SELECT DISTINCT CAST(timezone('UTC', \"{column}\") AS DATE) "
                f"FROM {self.target} WHERE {where}",
                params,
            ).fetchall()
            self.removed_dates.update(row[0] for row in dates if row[0] is not None)
        return self.execute(f"DELETE FROM {self.target} WHERE {where}", params)


def _replace_rows(
    rows: _Rows, incoming_rows: int, window: PartitionWindow | None, unique_key: str | None
) -> WriteStats:
    insert_all = f"INSERT INTO {rows.target} BY NAME SELECT * FROM {rows.source}"
    if window is None:
        replaced = rows.delete("true")
        written = rows.execute(insert_all)
        return WriteStats(written, replaced, removed_dates=tuple(sorted(rows.removed_dates)))

    column = checked_identifier(window.column)
    replaced = rows.delete(
        f'"{column}" >= $start AND "{column}" < $end', {"start": window.start, "end": window.end}
    )
    if unique_key is None:
        written = rows.execute(insert_all)
        return WriteStats(written, replaced, removed_dates=tuple(sorted(rows.removed_dates)))

    key = checked_identifier(unique_key)
    written = rows.execute(
        f"""
        INSERT INTO {rows.target} BY NAME
        SELECT * FROM {rows.source} AS i
        WHERE NOT EXISTS (
            SELECT 1 FROM {rows.target} AS stored
            WHERE stored."{key}" = i."{key}" AND stored."{column}" < $start
        )
        """,
        {"start": window.start},
    )
    later = rows.delete(
        f'"{column}" >= $end AND "{key}" IN (SELECT "{key}" FROM {rows.source})',
        {"end": window.end},
    )
    return WriteStats(
        rows_written=written,
        rows_replaced=replaced,
        redeliveries_dropped=incoming_rows - written,
        later_deliveries_removed=later,
        removed_dates=tuple(sorted(rows.removed_dates)),
    )


def _count(result: duckdb.DuckDBPyConnection) -> int:
    rows = result.fetchall()
    return int(rows[0][0]) if rows else 0


def _table_exists(
    connection: duckdb.DuckDBPyConnection, schema: str, table: str, catalog: str | None = None
) -> bool:
    rows = connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $schema "
        "AND table_name = $table AND ($catalog IS NULL OR table_catalog = $catalog)",
        {"schema": schema, "table": table, "catalog": catalog},
    ).fetchall()
    return rows[0][0] > 0


def _is_lock_conflict(error: BaseException) -> bool:
    return isinstance(error, duckdb.IOException) and "lock" in str(error).lower()


def _first_line(error: BaseException) -> str:
    """DuckDB's lock message up to its advice on read-only mode, which a writer cannot take."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text.split(" However, ")[0]


def _log_lock_wait(path: Path, limit: float):
    def log(state: tenacity.RetryCallState) -> None:
        # DuckDB's message names the process holding the file, by program and PID.
        cause = _first_line(state.outcome.exception()) if state.outcome else "locked"
        _logger.warning(
            f"waiting for {path}: another process holds it ({cause}); waited "
            f"{state.seconds_since_start:.1f} s of at most {limit:g} s "
            "(AQUATECH_DUCKDB_LOCK_TIMEOUT)"
        )

    return log
