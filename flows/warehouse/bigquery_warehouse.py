"""The warehouse in a BigQuery dataset: what the pipeline loads on GCP, and Looker Studio reads.

Loads are BigQuery load jobs (free, unlike streaming inserts): posts straight from the lake's
``gs://`` Parquet files, NLP results as one Parquet upload, each into a staging table of its own
that a ``MERGE`` then folds into the table, so that a repeated load changes nothing. The tables,
the MERGE and the views are the SQL of `flows.warehouse.tables` and `flows.warehouse.views`,
translated from its DuckDB dialect by sqlglot; queries (the dashboard's) are translated the same
way, with ``?`` parameters.

Every job's id, rows and bytes go to the log, so that a bill can be traced to a run.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import google.auth.exceptions
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from google.api_core import exceptions as google_errors
from google.cloud import bigquery

from flows.warehouse.base import Warehouse
from flows.warehouse.errors import WarehouseError
from flows.warehouse.tables import (
    COLLECTION_RUNS,
    POST_METRICS,
    POST_NLP,
    POSTS,
    TABLES,
    TableSpec,
    add_column_sql,
    bigquery_type,
    columns_to_add,
    merge_sql,
)
from flows.warehouse.views import VIEW_NAMES, view_sql

log = logging.getLogger(__name__)

# How BigQuery stores each table: posts by day of creation (the dashboards' time filter prunes
# partitions) and clustered by the filter columns; results clustered for `analysed_ids` and joins.
PARTITION_BY = {POSTS.name: "created_at"}
CLUSTER_BY = {
    POSTS.name: ["source", "hashtag"],
    POST_NLP.name: ["model_id", "post_id"],
    COLLECTION_RUNS.name: ["source"],
    POST_METRICS.name: ["post_id"],  # the views join each post's newest snapshots
}

STAGING_TTL = timedelta(hours=6)  # a staging table left by a killed run expires by itself


def to_bigquery_sql(sql: str) -> str:
    """`sql` in the DuckDB dialect of `flows.warehouse.views`, in BigQuery's (``?`` stays ``?``).

    DuckDB's ``DATE_DIFF`` in hours, minutes or seconds is between timestamps, where BigQuery's
    ``DATE_DIFF`` takes dates only: those become ``TIMESTAMP_DIFF``.
    """
    tree = sqlglot.parse_one(sql, read="duckdb").transform(_timestamp_diff)
    return tree.sql(dialect="bigquery")


def _timestamp_diff(node: sqlglot.exp.Expression) -> sqlglot.exp.Expression:
    unit = node.args.get("unit") if isinstance(node, sqlglot.exp.DateDiff) else None
    if unit is not None and unit.name.upper() in ("HOUR", "MINUTE", "SECOND"):
        return sqlglot.exp.TimestampDiff(this=node.this, expression=node.expression, unit=unit)
    return node


def bigquery_schema(schema: pa.Schema) -> list[bigquery.SchemaField]:
    """BigQuery columns for an Arrow schema: lists become REPEATED, structs RECORD."""
    return [_field(f.name, f.type, "NULLABLE" if f.nullable else "REQUIRED") for f in schema]


def _field(name: str, arrow_type: pa.DataType, mode: str) -> bigquery.SchemaField:
    if pa.types.is_list(arrow_type):
        return _field(name, arrow_type.value_type, "REPEATED")
    if pa.types.is_struct(arrow_type):
        fields = [_field(f.name, f.type, "NULLABLE") for f in arrow_type]
        return bigquery.SchemaField(name, "RECORD", mode=mode, fields=fields)
    return bigquery.SchemaField(name, bigquery_type(arrow_type), mode=mode)


def _parameter(value: object) -> bigquery.ScalarQueryParameter:
    """A positional query parameter for one ``?``, of the type Arrow gives `value`."""
    try:
        kind = bigquery_type(pa.scalar(value).type)
    except (TypeError, pa.ArrowException) as exc:
        raise WarehouseError(
            f"no BigQuery parameter type for {value!r} ({type(value).__name__})"
        ) from exc
    return bigquery.ScalarQueryParameter(None, kind, value)


class BigQueryWarehouse(Warehouse):
    """The warehouse in BigQuery dataset `dataset` of `project`.

    The dataset is created when missing (in `location`; BigQuery's default, US, when empty), the
    tables too (a table lacking columns added since gains them), and a view whose SQL changed is
    replaced. Terraform creates the dataset on GCP, so
    the pipeline's service account needs no project-wide dataset rights.

    Args:
        project: the GCP project of the dataset (jobs run there too).
        dataset: the dataset id.
        credentials: google-auth credentials; None for application-default credentials.
        location: where a missing dataset is created.

    ``BIGQUERY_EMULATOR_HOST`` (read by google-cloud-bigquery) points it at an emulator.
    """

    def __init__(
        self,
        project: str,
        dataset: str,
        *,
        credentials: object | None = None,
        location: str = "",
    ) -> None:
        self.project, self.dataset = project, dataset
        self.url = f"bigquery://{project}/{dataset}"
        try:
            self.client = bigquery.Client(project=project, credentials=credentials)
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise WarehouseError(
                f"no Google credentials for {self.url}: on a laptop run `gcloud auth "
                "application-default login`, or name a GcpCredentials block in [prefect_config] "
                "gcp_credentials (python blocks/make_gcp_blocks.py --key-file KEY.json)."
            ) from exc
        self._closed = False
        with self._errors("open the dataset"):
            self.location = self._dataset(location).location
            for table in TABLES:
                self._table(table)
            for name in VIEW_NAMES:
                self._view(name)

    def __repr__(self) -> str:
        return f"BigQueryWarehouse({self.project!r}, {self.dataset!r})"

    # ------------------------------------------------------------------ names and errors
    def table_id(self, name: str) -> str:
        return f"{self.project}.{self.dataset}.{name}"

    def _ref(self, name: str) -> str:
        """A qualified name in the DuckDB dialect, for the SQL of `tables` and `views`."""
        return f'"{self.project}"."{self.dataset}"."{name}"'

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn a BigQuery API error into a `WarehouseError` that says what was being done and
        how to fix the common causes."""
        if self._closed:
            raise WarehouseError(f"{self!r} is closed")
        try:
            yield
        except google_errors.GoogleAPICallError as exc:
            hint = ""
            if isinstance(exc, google_errors.Forbidden):
                hint = (
                    " The credentials need roles/bigquery.dataEditor on the dataset and "
                    "roles/bigquery.jobUser on the project (terraform/ grants both), and "
                    "roles/storage.objectViewer on the lake's bucket for loads."
                )
            elif isinstance(exc, google_errors.NotFound):
                hint = " Check [gcp_config] project_id and bq_dataset, or the warehouse URL."
            raise WarehouseError(
                f"BigQuery could not {doing} in {self.url}: {exc.message}.{hint}"
            ) from exc

    # ------------------------------------------------------------------ what open creates
    def _dataset(self, location: str) -> bigquery.Dataset:
        try:
            return self.client.get_dataset(f"{self.project}.{self.dataset}")
        except google_errors.NotFound:
            dataset = bigquery.Dataset(f"{self.project}.{self.dataset}")
            dataset.location = location or "US"  # BigQuery's own default, said out loud
            log.info("creating BigQuery dataset %s in %s", dataset.dataset_id, dataset.location)
            return self.client.create_dataset(dataset, exists_ok=True)

    def _table(self, spec: TableSpec) -> None:
        table = bigquery.Table(self.table_id(spec.name), schema=bigquery_schema(spec.schema))
        if spec.name in PARTITION_BY:
            table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=PARTITION_BY[spec.name]
            )
        table.clustering_fields = CLUSTER_BY.get(spec.name)
        table = self.client.create_table(table, exists_ok=True)  # or the one there already
        for field in columns_to_add(spec, [field.name for field in table.schema], self.url):
            log.info("adding column %s to %s in %s", field.name, spec.name, self.url)
            # DDL rather than a schema update through the API: the same SQL as DuckDB's
            sql = to_bigquery_sql(add_column_sql(spec, field, self._ref))
            self.client.query(sql, location=self.location).result()

    def _view(self, name: str) -> None:
        sql = to_bigquery_sql(view_sql(name, self._ref))
        try:
            view = self.client.get_table(self.table_id(name))
        except google_errors.NotFound:
            view = bigquery.Table(self.table_id(name))
            view.view_query = sql
            self.client.create_table(view)
            return
        if view.view_query != sql:
            view.view_query = sql
            self.client.update_table(view, ["view_query"])

    # ------------------------------------------------------------------ loads
    def _job_config(self, spec: TableSpec) -> bigquery.LoadJobConfig:
        parquet = bigquery.ParquetOptions()
        parquet.enable_list_inference = True  # Parquet LIST columns load as REPEATED, not records
        return bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            schema=bigquery_schema(spec.schema),
            parquet_options=parquet,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        )

    def _stage(self, spec: TableSpec, rows: pa.Table, files: Sequence[str]) -> str:
        """Load the rows into a new staging table: from `files` when all are on GCS, else from
        `rows` as one Parquet upload. Returns the staging table's id."""
        staging = bigquery.Table(
            self.table_id(f"_staging_{spec.name}_{uuid.uuid4().hex[:12]}"),
            schema=bigquery_schema(spec.schema),
        )
        staging.expires = datetime.now(timezone.utc) + STAGING_TTL
        self.client.create_table(staging)
        config = self._job_config(spec)
        if files and all(f.startswith("gs://") for f in files):
            job = self.client.load_table_from_uri(
                list(files), staging.reference, job_config=config, location=self.location
            )
        else:
            body = io.BytesIO()
            pq.write_table(rows, body, compression="zstd")
            job = self.client.load_table_from_file(
                body, staging.reference, rewind=True, job_config=config, location=self.location
            )
        job.result()
        log.info(
            "BigQuery load job %s: %s rows from %s into %s",
            job.job_id,
            job.output_rows,
            f"{len(files)} lake files" if files else "an upload",
            staging.table_id,
        )
        return staging.table_id

    def _merge(self, spec: TableSpec, staging: str) -> int:
        """MERGE the staging table into `spec`'s table; the number of rows it inserted.

        Counted before and after (``COUNT(*)`` reads no bytes on BigQuery), which holds because one
        analyze runs at a time per lake; the job's own DML statistics are logged.
        """
        before = self._row_counts([spec.name])[spec.name]
        job = self.client.query(
            to_bigquery_sql(merge_sql(spec, self._ref(staging), self._ref)), location=self.location
        )
        job.result()
        inserted = self._row_counts([spec.name])[spec.name] - before
        stats = job.dml_stats
        log.info(
            "BigQuery MERGE job %s into %s: %d inserted, %s updated, %s bytes processed",
            job.job_id,
            spec.name,
            inserted,
            stats.updated_row_count if stats else "?",
            job.total_bytes_processed,
        )
        return inserted

    def load(self, spec: TableSpec, rows: pa.Table, files: Sequence[str] = ()) -> int:
        rows = spec.conform(rows)
        if rows.num_rows == 0:
            return 0
        with self._errors(f"load {spec.name}"):
            staging = self._stage(spec, rows, files)
            try:
                return self._merge(spec, staging)
            finally:
                self.client.delete_table(self.table_id(staging), not_found_ok=True)

    # ------------------------------------------------------------------ reads
    def _run(self, sql: str, parameters: list, doing: str) -> pa.Table:
        config = bigquery.QueryJobConfig(
            query_parameters=parameters, default_dataset=f"{self.project}.{self.dataset}"
        )
        with self._errors(doing):
            job = self.client.query(sql, job_config=config, location=self.location)
            # The REST API, not the Storage Read API: results here are small, and the read
            # sessions would need one more role.
            table = job.result().to_arrow(create_bqstorage_client=False)
        log.debug(
            "BigQuery query job %s: %s bytes processed", job.job_id, job.total_bytes_processed
        )
        return table

    def analysed_ids(self, post_ids: Sequence[str], model_id: str) -> set[str]:
        if len(post_ids) == 0:  # also a pyarrow or numpy array, whose truth is ambiguous
            return set()
        sql = (
            "SELECT DISTINCT post_id FROM post_nlp"
            " WHERE model_id = @model_id AND post_id IN UNNEST(@post_ids)"
        )
        parameters = [
            bigquery.ScalarQueryParameter("model_id", "STRING", model_id),
            bigquery.ArrayQueryParameter("post_ids", "STRING", [str(i) for i in post_ids]),
        ]
        return set(self._run(sql, parameters, "read analysed posts").column(0).to_pylist())

    def _row_counts(self, names: Sequence[str]) -> dict[str, int]:
        sql = ", ".join(f"(SELECT COUNT(*) FROM {name}) AS {name}" for name in names)
        row = self._run(f"SELECT {sql}", [], "count rows").to_pylist()[0]
        return {name: int(n) for name, n in row.items()}

    def counts(self) -> dict[str, int]:
        return self._row_counts([table.name for table in TABLES])

    def query(self, sql: str, params: Sequence | None = None) -> pa.Table:
        parameters = [_parameter(value) for value in params or ()]
        return self._run(to_bigquery_sql(sql), parameters, "query")

    def close(self) -> None:
        if not self._closed:
            self.client.close()
        self._closed = True
