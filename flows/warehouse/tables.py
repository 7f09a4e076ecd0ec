"""The warehouse's tables, written once for every engine: their columns and types, the DDL and
the load MERGE.

The column lists come from `flows.schema`, so a column added there reaches the tables and the
MERGE without an edit here. The SQL is the DuckDB dialect that `flows.warehouse.views` describes,
which sqlglot translates for BigQuery; table names go through a `Ref` so that an engine can
qualify them (``project.dataset.name``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import pyarrow as pa

from flows.schema import (
    COLLECTION_RUN_SCHEMA,
    CONVERSATION_SCHEMA,
    EMBEDDING_SCHEMA,
    NLP_RESULT_SCHEMA,
    NLP_SCHEMA,
    POST_DELETION_SCHEMA,
    POST_METRICS_SCHEMA,
    POST_SCHEMA,
)
from flows.warehouse.errors import WarehouseError


@dataclass(frozen=True)
class TableSpec:
    """A warehouse table and how a load merges into it.

    Attributes:
        name: the table name.
        schema: its columns, in order.
        key: the columns that identify a row.
        version: a column whose greater value marks the newer copy of a row.
        updated: the columns a newer copy of an existing row replaces.
    """

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    version: str
    updated: tuple[str, ...]

    def conform(self, rows: pa.Table) -> pa.Table:
        """`rows` as this table's columns, in order and with its types, ready to stage.

        Raises:
            WarehouseError: a column of the table is missing from `rows`.
        """
        missing = [name for name in self.schema.names if name not in rows.column_names]
        if missing:
            raise WarehouseError(
                f"rows for {self.name} lack the columns {', '.join(missing)} (see flows/schema.py)"
            )
        return rows.select(self.schema.names).cast(self.schema)


POSTS = TableSpec(
    name="posts",
    schema=POST_SCHEMA,
    key=("post_id",),
    version="collected_at",  # a later collection saw the newest counters
    updated=("like_count", "repost_count", "reply_count", "quote_count", "collected_at"),
)

POST_NLP = TableSpec(
    name="post_nlp",
    schema=NLP_SCHEMA,
    key=("post_id", "model_id"),
    version="analysed_at",  # a deliberate re-classification with the same model replaces it
    updated=tuple(n for n in NLP_SCHEMA.names if n not in ("post_id", "model_id")),
)

COLLECTION_RUNS = TableSpec(
    name="collection_runs",
    schema=COLLECTION_RUN_SCHEMA,
    key=("run_id", "source"),
    version="finished_at",  # a retried run's record holds all its tries
    updated=tuple(n for n in COLLECTION_RUN_SCHEMA.names if n not in ("run_id", "source")),
)

POST_METRICS = TableSpec(
    name="post_metrics",
    schema=POST_METRICS_SCHEMA,
    key=("post_id", "observed_at"),
    version="observed_at",
    updated=(),  # a snapshot never changes: loading it again inserts nothing
)

POST_DELETIONS = TableSpec(
    name="post_deletions",
    schema=POST_DELETION_SCHEMA,
    key=("post_id",),
    version="observed_at",
    updated=(),  # the first record of a deletion stands
)

POST_EMBEDDINGS = TableSpec(
    name="post_embeddings",
    schema=EMBEDDING_SCHEMA,
    key=("post_id", "model_id"),
    version="embedded_at",
    updated=(),  # the same model embeds a text the same way
)

CONVERSATIONS = TableSpec(
    name="conversations",
    schema=CONVERSATION_SCHEMA,
    key=("hashtag", "window_start", "conversation_id", "computed_at"),
    version="computed_at",
    updated=(),  # each computation is kept; the view reads the latest of a window
)

TABLES = (
    POSTS, POST_NLP, COLLECTION_RUNS, POST_METRICS, POST_DELETIONS, POST_EMBEDDINGS, CONVERSATIONS
)

# The columns that posts_enriched adds to the posts columns.
NLP_COLUMNS = tuple(NLP_RESULT_SCHEMA.names) + ("analysed_at",)

# Each Arrow type the warehouse stores or binds, as DuckDB spells it (the dialect of the SQL
# here) and as BigQuery does (table schemas, query parameters); lists and structs are built from
# these. A timestamp is an instant in both (flows.schema gives each one the UTC zone).
SCALAR_TYPES: tuple[tuple[Callable[[pa.DataType], bool], str, str], ...] = (
    (pa.types.is_string, "VARCHAR", "STRING"),
    (pa.types.is_int64, "BIGINT", "INT64"),
    (pa.types.is_float64, "DOUBLE PRECISION", "FLOAT64"),
    (pa.types.is_boolean, "BOOLEAN", "BOOL"),
    (pa.types.is_timestamp, "TIMESTAMP WITH TIME ZONE", "TIMESTAMP"),
    (pa.types.is_date32, "DATE", "DATE"),
    (pa.types.is_binary, "BLOB", "BYTES"),
)

Ref = Callable[[str], str]  # a table or view name → how the SQL names it


def unqualified(name: str) -> str:
    """The `Ref` of an engine that takes names as they are (DuckDB)."""
    return name


def _scalar_types(arrow_type: pa.DataType) -> tuple[str, str]:
    for matches, duckdb_type, bigquery_type in SCALAR_TYPES:
        if matches(arrow_type):
            return duckdb_type, bigquery_type
    raise TypeError(
        f"no warehouse type for {arrow_type}: add it to flows.warehouse.tables.SCALAR_TYPES"
    )


def sql_type(arrow_type: pa.DataType) -> str:
    """The SQL type of a column of `arrow_type` (DuckDB spelling; sqlglot maps it to others)."""
    if pa.types.is_list(arrow_type):
        return f"{sql_type(arrow_type.value_type)}[]"
    if pa.types.is_struct(arrow_type):
        fields = ", ".join(f"{f.name} {sql_type(f.type)}" for f in arrow_type)
        return f"STRUCT({fields})"
    return _scalar_types(arrow_type)[0]


def bigquery_type(arrow_type: pa.DataType) -> str:
    """BigQuery's name for the scalar `arrow_type` (a list is a REPEATED column of one)."""
    return _scalar_types(arrow_type)[1]


def create_table_sql(table: TableSpec, ref: Ref = unqualified) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for `table`, with NOT NULL columns and the key."""
    columns = [
        f"{f.name} {sql_type(f.type)}" + ("" if f.nullable else " NOT NULL") for f in table.schema
    ]
    columns.append(f"PRIMARY KEY ({', '.join(table.key)})")
    body = ",\n    ".join(columns)
    return f"CREATE TABLE IF NOT EXISTS {ref(table.name)} (\n    {body}\n)"


def columns_to_add(table: TableSpec, existing: Collection[str], where: str) -> list[pa.Field]:
    """The columns of `table` that its copy in warehouse `where`, with columns `existing`, lacks.

    A warehouse made by an earlier version of the pipeline gains the columns added to
    `flows.schema` since, NULL in the rows it holds (as dlt's destinations evolve their tables);
    columns of its own beyond ours are left alone.

    Raises:
        WarehouseError: a missing column is NOT NULL, which the rows already there cannot fill.
    """
    missing = [field for field in table.schema if field.name not in existing]
    required = [field.name for field in missing if not field.nullable]
    if required:
        raise WarehouseError(
            f"table {table.name} in {where} lacks the NOT NULL columns {', '.join(required)} of "
            "flows/schema.py, and its rows have no value for them: declare them nullable there, "
            "or add them to the table with a value for every row (ADD COLUMN, UPDATE, then SET "
            "NOT NULL) before the pipeline opens it"
        )
    return missing


def add_column_sql(table: TableSpec, field: pa.Field, ref: Ref = unqualified) -> str:
    """``ALTER TABLE ... ADD COLUMN`` for a nullable column of `columns_to_add`."""
    column = f"{field.name} {sql_type(field.type)}"
    return f"ALTER TABLE {ref(table.name)} ADD COLUMN IF NOT EXISTS {column}"


def merge_sql(table: TableSpec, staging: str, ref: Ref = unqualified) -> str:
    """``MERGE`` the rows of `staging` (a table or view with `table`'s columns) into `table`.

    A key that appears more than once in `staging` counts once, its newest copy (by
    ``table.version``). New keys are inserted; an existing row takes the ``updated`` columns (if
    any) of a strictly newer copy, so loading the same rows again changes nothing and an older
    copy never overwrites a newer one.
    """
    names = table.schema.names
    key = ", ".join(table.key)
    columns = ", ".join(names)
    newest = (
        f"SELECT {columns} FROM (\n"
        f"        SELECT {columns}, ROW_NUMBER() OVER (\n"
        f"            PARTITION BY {key} ORDER BY {table.version} DESC\n"
        f"        ) AS copy_rank\n"
        f"        FROM {staging}\n"
        f"    ) AS copies WHERE copy_rank = 1"
    )
    on = " AND ".join(f"target.{k} = source.{k}" for k in table.key)
    updates = ", ".join(f"{c} = source.{c}" for c in table.updated)
    values = ", ".join(f"source.{c}" for c in names)
    matched = (
        f"WHEN MATCHED AND source.{table.version} > target.{table.version} THEN\n"
        f"    UPDATE SET {updates}\n"
        if table.updated
        else ""
    )
    return (
        f"MERGE INTO {ref(table.name)} AS target\n"
        f"USING (\n    {newest}\n) AS source\n"
        f"ON {on}\n"
        f"{matched}"
        f"WHEN NOT MATCHED THEN\n"
        f"    INSERT ({columns}) VALUES ({values})"
    )
