"""One IO manager for every table, writing staged rows through whichever warehouse is chosen.

Assets declare how their table is partitioned with the usual `partition_expr` metadata (the
column holding the partition's time); event_data adds `aquatech/unique_key` (one row per uuid)
and `aquatech/dates_of` (report the event dates of the rows a write removes), and raw_events
`aquatech/compressed_columns` (long JSON text: stored compressed, left out of the preview).
Column schemas are definition metadata (`schemas.column_schema`), not repeated per partition.
Assets hand over a `StagedTable` (or, for a few rows, a polars frame). The IO manager
replaces exactly the partitions of the run (a range, for backfills) in one transaction, stamps
`dl_updated_at`, and reports what every asset would otherwise repeat.
"""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from aquatech_assets.resources import PartitionWindow, Warehouse
from aquatech_assets.staging import StagedTable, staged_frame

PARTITION_EXPR = "partition_expr"
UNIQUE_KEY = "aquatech/unique_key"
DATES_OF = "aquatech/dates_of"
COMPRESSED = "aquatech/compressed_columns"
EVENT_DATES_REMOVED = "event_dates_removed"
PREVIEW_ROWS = 10


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Stores each asset as the table of its name in the configured warehouse."""

    warehouse: dg.ResourceDependency[Warehouse]

    def handle_output(self, context: dg.OutputContext, obj: StagedTable | pl.DataFrame) -> None:
        if isinstance(obj, pl.DataFrame):
            with staged_frame(obj) as staged:
                self._store(context, staged)
        else:
            self._store(context, obj)

    def _store(self, context: dg.OutputContext, staged: StagedTable) -> None:
        table = context.asset_key.path[-1]
        metadata = context.definition_metadata or {}
        columns = staged.columns()
        window = _partition_window(context, metadata, dict(columns))
        staged.add_constant("dl_updated_at", datetime.now(UTC))
        stats = self.warehouse.replace(
            table,
            staged,
            window,
            metadata.get(UNIQUE_KEY),
            metadata.get(DATES_OF),
            tuple(metadata.get(COMPRESSED, ())),
        )
        output_metadata = {
            "dagster/row_count": stats.rows_written,
            "dagster/table_name": self.warehouse.qualified(table),
            "rows_replaced": stats.rows_replaced,
        }
        if _single_partition(context) and not metadata.get(COMPRESSED):
            output_metadata["preview"] = _preview(staged.to_polars(limit=PREVIEW_ROWS))
        if metadata.get(UNIQUE_KEY):
            output_metadata["redeliveries_of_stored_events_dropped"] = stats.redeliveries_dropped
            output_metadata["later_deliveries_removed"] = stats.later_deliveries_removed
        if metadata.get(DATES_OF):
            output_metadata[EVENT_DATES_REMOVED] = dg.MetadataValue.json(
                [day.isoformat() for day in stats.removed_dates]
            )
        context.add_output_metadata(output_metadata)
        context.log.info(
            f"{self.warehouse.qualified(table)}: wrote {stats.rows_written} rows, replacing "
            f"{stats.rows_replaced}" + (f" in {window.start} .. {window.end}" if window else "")
        )

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        table = context.asset_key.path[-1]
        metadata = (
            (context.upstream_output.definition_metadata or {}) if context.upstream_output else {}
        )
        window = None
        if context.has_asset_partitions and metadata.get(PARTITION_EXPR):
            time_window = context.asset_partitions_time_window
            window = PartitionWindow(metadata[PARTITION_EXPR], time_window.start, time_window.end)
        return self.warehouse.read(table, window)


def _partition_window(
    context: dg.OutputContext, metadata: dict, column_types: dict[str, str]
) -> PartitionWindow | None:
    if not context.has_asset_partitions:
        return None
    column = metadata.get(PARTITION_EXPR)
    if column is None:
        raise ValueError(
            f"{context.asset_key.to_user_string()} is partitioned but has no "
            f"'{PARTITION_EXPR}' metadata naming the column that holds its partition's time"
        )
    time_window = context.asset_partitions_time_window
    start, end = time_window.start, time_window.end
    if column_types.get(column) == "DATE":
        return PartitionWindow(column, start.date(), end.date())
    return PartitionWindow(column, start, end)


def _single_partition(context: dg.OutputContext) -> bool:
    """Whether the output is one partition (or none).

    Dagster copies an output's metadata onto the materialization of every partition of a range
    run, so a 168-hour run would store the same preview table 168 times for each asset.
    """
    return not context.has_asset_partitions or len(context.asset_partition_keys) == 1


def _preview(frame: pl.DataFrame) -> dg.TableMetadataValue:
    head = frame.head(PREVIEW_ROWS).with_columns(pl.all().cast(pl.String).fill_null(""))
    return dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in head.to_dicts()],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, "string") for name in head.columns]),
    )
