"""BigQuery as the warehouse: the DuckDB warehouse's semantics, with BigQuery's native layout.

Frames go in as Parquet load jobs into a staging table created with an explicit schema (no
streaming inserts, so every row is at once visible to DML, and no pandas round trip that would
turn a DATE into a TIMESTAMP). A partition is then replaced by one multi-statement transaction
that deletes the window and inserts from staging: a failed write changes nothing and a re-run
writes the same rows. Tables are created with an explicit schema, partitioned and clustered so
that the writes and the aggregates read as few bytes as they can (see `LAYOUTS`).

Settings come from the environment when a run first uses the resource, never at import or when
the definitions load, so loading them needs neither a project nor the network.
"""

import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import polars as pl
from google.api_core.client_options import ClientOptions
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import bigquery
from pydantic import PrivateAttr

from aquatech_assets import aggregates
from aquatech_assets.resources.warehouse import (
    PartitionWindow,
    Warehouse,
    WriteStats,
    checked_identifier,
)
from aquatech_assets.settings import SettingsError
from aquatech_assets.staging import StagedTable

PROJECT_ENV = "AQUATECH_BIGQUERY_PROJECT"
DATASET_ENV = "AQUATECH_BIGQUERY_DATASET"
LOCATION_ENV = "AQUATECH_BIGQUERY_LOCATION"
ENDPOINT_ENV = "AQUATECH_BIGQUERY_ENDPOINT"
DEFAULT_DATASET = "aquatech"
DEFAULT_LOCATION = "US"
# A staging table outlives its write only if the process dies mid-write; BigQuery then drops it.
STAGING_LIFETIME = timedelta(hours=6)
JOB_LABELS = {"app": "aquatech"}

_PROJECT = re.compile(r"^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_DATASET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
_TIME_TYPES = ("TIMESTAMP", "DATE", "DATETIME")

_logger = dg.get_dagster_logger()


@dataclass(frozen=True)
class TableLayout:
    """How a table is partitioned and clustered when this warehouse creates it."""

    partition_column: str
    partition_type: str
    clustering: tuple[str, ...] = ()


# The pull-hour tables are partitioned by day, not hour: a table may hold only a few thousand
# partitions (hourly ones would run out within the first year or two) and a 24-hour backfill run
# replaces exactly one day partition. event_data is clustered by event_time because that is
# what every aggregate filters on (pulled_at, its partition column, does not bound event_time:
# late records arrive weeks after their day), so once partitions span several storage blocks a
# day's recount skips the blocks of other days. uuid comes next, for lookups of one event; the
# first-delivery check is a join, on which BigQuery prunes nothing.
LAYOUTS = {
    "raw_events": TableLayout("pulled_at", "DAY"),
    "event_data": TableLayout("pulled_at", "DAY", ("event_time", "uuid")),
    "rejected_events": TableLayout("pulled_at", "DAY"),
    "dau": TableLayout("event_date", "DAY"),
    "event_activity": TableLayout("event_date", "DAY"),
    "mau": TableLayout("event_month", "MONTH"),
}


@dataclass(frozen=True)
class BigQuerySettings:
    project: str
    dataset: str
    location: str
    endpoint: str | None


class BigQueryWarehouse(Warehouse):
    """A BigQuery dataset; unset fields are read from AQUATECH_BIGQUERY_* when a run uses it.

    With an endpoint (AQUATECH_BIGQUERY_ENDPOINT, for an emulator) the client sends anonymous
    credentials there; without one it finds the usual Google credentials (application default
    credentials, a service account's key file, the metadata server). Credentials are never part
    of this resource's config, so Dagster never shows or stores them.
    """

    dialect: ClassVar[str] = "bigquery"

    project: str | None = None
    dataset: str | None = None
    location: str | None = None
    endpoint: str | None = None

    _client: Any = PrivateAttr(default=None)
    _client_settings: Any = PrivateAttr(default=None)
    _dataset_ready: bool = PrivateAttr(default=False)

    def resolved_settings(self) -> BigQuerySettings:
        project = self.project or os.environ.get(PROJECT_ENV, "").strip()
        if not project:
            raise SettingsError(
                f"{PROJECT_ENV} is not set: name the Google Cloud project that holds the "
                "dataset (AQUATECH_WAREHOUSE=bigquery needs it)."
            )
        if not _PROJECT.match(project):
            raise SettingsError(f"{PROJECT_ENV}={project!r} is not a Google Cloud project id.")
        dataset = self.dataset or os.environ.get(DATASET_ENV, "").strip() or DEFAULT_DATASET
        if not _DATASET.match(dataset):
            raise SettingsError(f"{DATASET_ENV}={dataset!r} is not a BigQuery dataset name.")
        location = self.location or os.environ.get(LOCATION_ENV, "").strip() or DEFAULT_LOCATION
        endpoint = self.endpoint or os.environ.get(ENDPOINT_ENV, "").strip() or None
        return BigQuerySettings(project, dataset, location, endpoint)

    def client(self) -> bigquery.Client:
        """One client per resource and settings; built on first use, never at load time."""
        settings = self.resolved_settings()
        if self._client is None or self._client_settings != settings:
            if settings.endpoint:
                client = bigquery.Client(
                    project=settings.project,
                    location=settings.location,
                    credentials=AnonymousCredentials(),
                    client_options=ClientOptions(api_endpoint=settings.endpoint),
                )
            else:
                client = _google_client(settings)
            self._client, self._client_settings, self._dataset_ready = client, settings, False
        return self._client

    def qualified(self, table: str) -> str:
        return f"`{self._table_id(table)}`"

    def table_exists(self, table: str) -> bool:
        try:
            self.client().get_table(self._table_id(table))
        except NotFound:
            return False
        return True

    def query(self, sql: str, params: dict | None = None) -> pl.DataFrame:
        """Runs SQL with `@name` parameters, typed from the values (a date binds as DATE)."""
        parameters = [_parameter(name, value) for name, value in (params or {}).items()]
        return self._run(sql, parameters)

    def aggregate(self, name: str, start: datetime, end: datetime) -> pl.DataFrame:
        sql = aggregates.aggregate_sql(name, aggregates.BIGQUERY, self.qualified("event_data"))
        parameters = [
            bigquery.ScalarQueryParameter("start", "TIMESTAMP", _as_timestamp(start)),
            bigquery.ScalarQueryParameter("end", "TIMESTAMP", _as_timestamp(end)),
        ]
        return self._run(sql, parameters, what=f"aggregate {name}")

    def read(self, table: str, window: PartitionWindow | None) -> pl.DataFrame:
        sql = f"SELECT * FROM {self.qualified(table)}"
        if window is None:
            return self._run(sql, [])
        column = checked_identifier(window.column)
        field_type = _field_types(self.client().get_table(self._table_id(table))).get(column)
        sql += f" WHERE `{column}` >= @start AND `{column}` < @end"
        return self._run(sql, window_parameters(window, field_type))

    def replace_staged(
        self,
        table: str,
        rows: StagedTable,
        window: PartitionWindow | None,
        unique_key: str | None,
        dates_of: str | None,
        compressed: tuple[str, ...],
    ) -> WriteStats:
        """See `Warehouse.replace`: one load job into a staging table, one transaction.

        Staged rows go to BigQuery as a Parquet file that DuckDB writes from the staging
        connection, so they never sit in Python memory; BigQuery compresses every column itself,
        so `compressed` changes nothing here.
        """
        frame = rows.to_polars(limit=0)
        height = rows.height
        target = self.qualified(table)
        incoming = _schema(frame)
        client = self.client()
        self._ensure_dataset(client)
        field_types = self._ensure_table(client, table, incoming, window)
        # One staging table per write, so that concurrent writes never share one.
        staging_id = self._table_id(f"_staging_{uuid.uuid4().hex}")
        staging = bigquery.Table(staging_id, schema=incoming)
        staging.expires = datetime.now(UTC) + STAGING_LIFETIME
        client.create_table(staging)
        try:
            if height:
                self._load(client, staging_id, rows, incoming)
            script = replace_script(
                ReplacePlan(
                    target=target,
                    staging=f"`{staging_id}`",
                    columns=tuple(field.name for field in incoming),
                    window=window_literals(window, field_types) if window else None,
                    unique_key=checked_identifier(unique_key) if unique_key else None,
                    dates_of=checked_identifier(dates_of) if dates_of else None,
                )
            )
            result = self._run(script, [], what=f"replace {table}")
        finally:
            client.delete_table(staging_id, not_found_ok=True)
        replaced, written, later, removed = result.row(0)
        return WriteStats(
            rows_written=written,
            rows_replaced=replaced,
            redeliveries_dropped=height - written if unique_key else 0,
            later_deliveries_removed=later,
            removed_dates=tuple(sorted(set(removed or ()))),
        )

    def _table_id(self, table: str) -> str:
        settings = self.resolved_settings()
        return f"{settings.project}.{settings.dataset}.{checked_identifier(table)}"

    def _run(self, sql: str, parameters: list, what: str | None = None) -> pl.DataFrame:
        """Runs a query job; `what` names the jobs whose bytes billed the run log should show.

        Results come back over the REST API as Arrow (the project does not install the Storage
        Read API client, and its results are small), straight into polars.
        """
        job = self.client().query(
            sql,
            job_config=bigquery.QueryJobConfig(query_parameters=parameters, labels=JOB_LABELS),
        )
        rows = job.result()
        if what is not None and job.total_bytes_billed is not None:
            _logger.info(f"BigQuery {what}: {job.total_bytes_billed:,} bytes billed")
        return pl.from_arrow(rows.to_arrow(create_bqstorage_client=False))

    def _ensure_dataset(self, client: bigquery.Client) -> None:
        """Creates the dataset in the location on first write, if it is not there yet.

        It is looked up first: an account allowed to write the dataset but not to create
        datasets (the least it needs) must not fail on a create call.
        """
        if self._dataset_ready:
            return
        settings = self.resolved_settings()
        dataset_id = f"{settings.project}.{settings.dataset}"
        try:
            client.get_dataset(dataset_id)
        except NotFound:
            dataset = bigquery.Dataset(dataset_id)
            dataset.location = settings.location
            client.create_dataset(dataset, exists_ok=True)
        self._dataset_ready = True

    def _ensure_table(
        self,
        client: bigquery.Client,
        table: str,
        incoming: list[bigquery.SchemaField],
        window: PartitionWindow | None,
    ) -> dict[str, str]:
        """Creates the table with the frame's schema and layout, or adds the columns it lacks.

        Adding a column is DDL, which BigQuery does not allow inside a transaction, so it runs
        before the write: a write that then fails leaves the new (empty, nullable) column.
        """
        table_id = self._table_id(table)
        try:
            existing = client.get_table(table_id)
        except NotFound:
            client.create_table(_new_table(table_id, table, incoming, window), exists_ok=True)
            return _field_types(incoming)
        known = _field_types(existing)
        missing = [field for field in incoming if field.name not in known]
        if missing:
            additions = ", ".join(
                f"ADD COLUMN IF NOT EXISTS `{field.name}` {field.field_type}" for field in missing
            )
            self._run(f"ALTER TABLE {self.qualified(table)} {additions}", [], what="alter")
        return known | _field_types(missing)

    def _load(
        self,
        client: bigquery.Client,
        staging_id: str,
        rows: StagedTable,
        incoming: list[bigquery.SchemaField],
    ) -> None:
        with tempfile.TemporaryDirectory(prefix="aquatech-load-") as folder:
            path = Path(folder) / "rows.parquet"
            rows.to_parquet(path)
            with path.open("rb") as parquet:
                job = client.load_table_from_file(
                    parquet,
                    staging_id,
                    job_config=bigquery.LoadJobConfig(
                        source_format=bigquery.SourceFormat.PARQUET,
                        schema=incoming,
                        create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
                        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
                        labels=JOB_LABELS,
                    ),
                )
                job.result()


def _google_client(settings: BigQuerySettings) -> bigquery.Client:
    """A client with the usual Google credentials, or a message saying how to provide them."""
    try:
        return bigquery.Client(project=settings.project, location=settings.location)
    except DefaultCredentialsError as error:
        raise SettingsError(
            f"no usable Google credentials for BigQuery ({error}). Run `gcloud auth "
            "application-default login`, attach a service account, or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a key file."
        ) from error


@dataclass(frozen=True)
class WindowLiterals:
    column: str
    start: str
    end: str


@dataclass(frozen=True)
class ReplacePlan:
    target: str
    staging: str
    columns: tuple[str, ...]
    window: WindowLiterals | None
    unique_key: str | None
    dates_of: str | None


def replace_script(plan: ReplacePlan) -> str:
    """The transaction that replaces a window and reports what it changed, as its last SELECT.

    The emulator runs a script without its query parameters, so the window's bounds are typed
    literals (TIMESTAMP '...' or DATE '...'), written from datetime and date values, never from
    text; real BigQuery prunes partitions on them as it does on parameters. Counts are taken
    before each DML statement because scripts expose no per-statement row count the emulator
    supports (@@row_count), and each DELETE runs only when it has rows to delete, so a first
    write or a forward run never pays for a DELETE scan.
    """
    statements = [
        "DECLARE rows_replaced INT64 DEFAULT 0;",
        "DECLARE rows_written INT64 DEFAULT 0;",
        "DECLARE later_removed INT64 DEFAULT 0;",
        "DECLARE removed_dates ARRAY<DATE> DEFAULT [];",
        "BEGIN TRANSACTION;",
    ]
    window = plan.window
    in_window = "TRUE"
    if window is not None:
        in_window = f"`{window.column}` >= {window.start} AND `{window.column}` < {window.end}"
    statements += _delete_counting(plan, in_window, "rows_replaced")
    if window is not None and plan.unique_key is not None:
        key = plan.unique_key
        # Earliest window wins: rows of later windows with an incoming key give way ...
        later = (
            f"`{window.column}` >= {window.end} AND `{key}` IN (SELECT `{key}` FROM {plan.staging})"
        )
        statements += _delete_counting(plan, later, "later_removed")
        # ... and incoming rows whose key an earlier window holds are not written.
        statements.append(
            f"DELETE FROM {plan.staging} AS incoming WHERE EXISTS (SELECT 1 FROM {plan.target} "
            f"AS stored WHERE stored.`{key}` = incoming.`{key}` "
            f"AND stored.`{window.column}` < {window.start});"
        )
    columns = ", ".join(f"`{checked_identifier(column)}`" for column in plan.columns)
    statements += [
        f"SET rows_written = (SELECT COUNT(*) FROM {plan.staging});",
        f"INSERT INTO {plan.target} ({columns}) SELECT {columns} FROM {plan.staging};",
        "COMMIT TRANSACTION;",
        "SELECT rows_replaced, rows_written, later_removed, removed_dates;",
    ]
    return "\n".join(statements)


def _delete_counting(plan: ReplacePlan, where: str, counter: str) -> list[str]:
    statements = []
    if plan.dates_of is not None:
        day = f"DATE(`{plan.dates_of}`, 'UTC')"
        statements.append(
            f"SET removed_dates = ARRAY_CONCAT(removed_dates, ARRAY(SELECT DISTINCT {day} "
            f"FROM {plan.target} WHERE ({where}) AND `{plan.dates_of}` IS NOT NULL));"
        )
    statements += [
        f"SET {counter} = (SELECT COUNT(*) FROM {plan.target} WHERE {where});",
        f"IF {counter} > 0 THEN DELETE FROM {plan.target} WHERE {where}; END IF;",
    ]
    return statements


def window_parameters(
    window: PartitionWindow, field_type: str | None
) -> list[bigquery.ScalarQueryParameter]:
    """@start and @end typed as the column is: BigQuery refuses a DATE column >= a TIMESTAMP.

    The partition windows Dagster hands a reader are datetimes even for a DATE column (dau's
    event_date), so they are bound as that day's DATE, not as the instant.
    """
    if field_type not in _TIME_TYPES:
        raise ValueError(
            f"{window.column} is {field_type or 'missing'}, not a TIMESTAMP, DATE or DATETIME "
            "column: it cannot bound a partition window"
        )
    convert = {"TIMESTAMP": _as_timestamp, "DATE": _as_date, "DATETIME": _as_datetime}[field_type]
    return [
        bigquery.ScalarQueryParameter("start", field_type, convert(window.start)),
        bigquery.ScalarQueryParameter("end", field_type, convert(window.end)),
    ]


def window_literals(window: PartitionWindow, field_types: dict[str, str]) -> WindowLiterals:
    column = checked_identifier(window.column)
    field_type = field_types.get(column)
    bounds = [parameter.value for parameter in window_parameters(window, field_type)]
    return WindowLiterals(column, *(_literal(field_type, bound) for bound in bounds))


def _literal(field_type: str, value: datetime | date) -> str:
    if field_type == "TIMESTAMP":
        return f"TIMESTAMP '{value.isoformat(sep=' ', timespec='microseconds')}'"
    if field_type == "DATETIME":
        return f"DATETIME '{value.isoformat(sep=' ', timespec='microseconds')}'"
    return f"DATE '{value.isoformat()}'"


def _as_timestamp(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(), tzinfo=UTC)


def _as_date(value: datetime | date) -> date:
    """A partition window's bound as a day: windows of DATE columns start at midnight."""
    return value.date() if isinstance(value, datetime) else value


def _as_datetime(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime.combine(value, time())


def _parameter(name: str, value: Any) -> bigquery.ScalarQueryParameter:
    if isinstance(value, bool):
        field_type = "BOOL"
    elif isinstance(value, int):
        field_type = "INT64"
    elif isinstance(value, float):
        field_type = "FLOAT64"
    elif isinstance(value, str):
        field_type = "STRING"
    elif isinstance(value, datetime):
        field_type = "TIMESTAMP" if value.tzinfo else "DATETIME"
    elif isinstance(value, date):
        field_type = "DATE"
    else:
        raise TypeError(f"parameter {name!r}: cannot bind a {type(value).__name__} in BigQuery")
    return bigquery.ScalarQueryParameter(checked_identifier(name), field_type, value)


def _bigquery_type(name: str, dtype: pl.DataType) -> str:
    if dtype in (pl.String, pl.Categorical, pl.Null) or isinstance(dtype, pl.Enum):
        return "STRING"
    if dtype.is_integer():
        return "INT64"
    if dtype.is_float():
        return "FLOAT64"
    if dtype == pl.Boolean:
        return "BOOL"
    if dtype == pl.Date:
        return "DATE"
    if dtype == pl.Binary:
        return "BYTES"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP" if dtype.time_zone else "DATETIME"
    raise TypeError(f"column {name!r} is {dtype}, which this warehouse does not store")


def _schema(frame: pl.DataFrame) -> list[bigquery.SchemaField]:
    """The frame's schema in BigQuery types: tables are never left to infer theirs."""
    return [
        bigquery.SchemaField(checked_identifier(name), _bigquery_type(name, dtype))
        for name, dtype in frame.schema.items()
    ]


def _field_types(source: bigquery.Table | list[bigquery.SchemaField]) -> dict[str, str]:
    fields = source.schema if isinstance(source, bigquery.Table) else source
    return {field.name: field.field_type for field in fields}


def _new_table(
    table_id: str,
    table: str,
    incoming: list[bigquery.SchemaField],
    window: PartitionWindow | None,
) -> bigquery.Table:
    """The table with the frame's schema, and its layout (or a day partition of its window)."""
    created = bigquery.Table(table_id, schema=incoming)
    field_types = _field_types(incoming)
    layout = LAYOUTS.get(table)
    if layout is None and window is not None:
        layout = TableLayout(window.column, "DAY")
    if layout is None or field_types.get(layout.partition_column) not in _TIME_TYPES:
        return created
    created.time_partitioning = bigquery.TimePartitioning(
        type_=layout.partition_type, field=layout.partition_column
    )
    clustering = [column for column in layout.clustering if column in field_types]
    if clustering:
        created.clustering_fields = clustering
    return created
