"""The warehouse's SQL, written once for every engine: table columns, the load MERGE, the views.

The column lists come from `flows.schema`, so a column added there reaches the tables, the MERGE
and `posts_enriched` without an edit here. The SQL is the DuckDB dialect restricted to forms that
have a standard (and BigQuery) equivalent, so that another engine can run it through a transpiler
(sqlglot ``read="duckdb"``): ``CAST``, ``COALESCE``, ``CASE``, ``ROW_NUMBER() OVER``, ``AT TIME
ZONE``, ``MERGE``, ``CROSS JOIN UNNEST(...) AS alias(column)`` with the column then named bare
(BigQuery has no ``alias.column`` there); no ``QUALIFY``, no ``FILTER``, no ``::`` casts. Table
and view names go through a ``ref`` function so that an engine can qualify them
(``project.dataset.name``).

Views pick, per post, ONE NLP result: the latest ``analysed_at``, ties going to the greatest
``model_id``. They are day-grain with the dimension columns ``day``, ``source``, ``hashtag`` and
``topic``, so that a dashboard filters on them and re-aggregates by summing ``posts``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import pyarrow as pa

from flows.schema import NLP_RESULT_SCHEMA, NLP_SCHEMA, POST_SCHEMA
from flows.warehouse.base import WarehouseError


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

TABLES = (POSTS, POST_NLP)

# The columns that posts_enriched adds to the posts columns.
NLP_COLUMNS = tuple(NLP_RESULT_SCHEMA.names) + ("analysed_at",)

Ref = Callable[[str], str]


def _identity(name: str) -> str:
    return name


def sql_type(arrow_type: pa.DataType) -> str:
    """The SQL type of a column of `arrow_type` (DuckDB spelling; sqlglot maps it to others)."""
    if pa.types.is_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_int64(arrow_type):
        return "BIGINT"
    if pa.types.is_float64(arrow_type):
        return "DOUBLE PRECISION"
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    if pa.types.is_timestamp(arrow_type) and arrow_type.tz is not None:
        return "TIMESTAMP WITH TIME ZONE"
    if pa.types.is_list(arrow_type):
        return f"{sql_type(arrow_type.value_type)}[]"
    if pa.types.is_struct(arrow_type):
        fields = ", ".join(f"{f.name} {sql_type(f.type)}" for f in arrow_type)
        return f"STRUCT({fields})"
    raise TypeError(f"no SQL type for {arrow_type}: add it to flows.warehouse.views.sql_type")


def create_table_sql(table: TableSpec, ref: Ref = _identity) -> str:
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


def add_column_sql(table: TableSpec, field: pa.Field, ref: Ref = _identity) -> str:
    """``ALTER TABLE ... ADD COLUMN`` for a nullable column of `columns_to_add`."""
    column = f"{field.name} {sql_type(field.type)}"
    return f"ALTER TABLE {ref(table.name)} ADD COLUMN IF NOT EXISTS {column}"


def merge_sql(table: TableSpec, staging: str, ref: Ref = _identity) -> str:
    """``MERGE`` the rows of `staging` (a table or view with `table`'s columns) into `table`.

    A key that appears more than once in `staging` counts once, its newest copy (by
    ``table.version``). New keys are inserted; an existing row takes the ``updated`` columns of a
    strictly newer copy, so loading the same rows again changes nothing and an older copy never
    overwrites a newer one.
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
    return (
        f"MERGE INTO {ref(table.name)} AS target\n"
        f"USING (\n    {newest}\n) AS source\n"
        f"ON {on}\n"
        f"WHEN MATCHED AND source.{table.version} > target.{table.version} THEN\n"
        f"    UPDATE SET {updates}\n"
        f"WHEN NOT MATCHED THEN\n"
        f"    INSERT ({columns}) VALUES ({values})"
    )


def _count_sentiment(label: str) -> str:
    # SUM(CASE ...) rather than COUNT(*) FILTER / COUNTIF: the one form every engine has.
    return f"CAST(SUM(CASE WHEN sentiment = '{label}' THEN 1 ELSE 0 END) AS BIGINT)"


NET_SENTIMENT = (
    f"CAST({_count_sentiment('positive')} - {_count_sentiment('negative')} AS DOUBLE PRECISION)"
    " / COUNT(*)"
)

DIMENSIONS = "day, source, hashtag, topic"


def _posts_enriched(ref: Ref) -> str:
    post_columns = ",\n    ".join(f"p.{name}" for name in POST_SCHEMA.names)
    nlp_columns = ",\n    ".join(f"n.{name}" for name in NLP_COLUMNS)
    engagement = " + ".join(
        f"COALESCE(p.{c}, 0)" for c in ("like_count", "repost_count", "reply_count", "quote_count")
    )
    return f"""SELECT
    {post_columns},
    {nlp_columns},
    CAST(p.created_at AT TIME ZONE 'UTC' AS DATE) AS day,
    {engagement} AS engagement
FROM {ref("posts")} AS p
LEFT JOIN (
    SELECT post_id, {", ".join(NLP_COLUMNS)}, ROW_NUMBER() OVER (
        PARTITION BY post_id ORDER BY analysed_at DESC, model_id DESC
    ) AS result_rank
    FROM {ref("post_nlp")}
) AS n ON n.post_id = p.post_id AND n.result_rank = 1"""


def _daily_sentiment(ref: Ref) -> str:
    # Posts not analysed yet stay in, with a null sentiment, so that a day's total is all posts.
    return f"""SELECT
    {DIMENSIONS}, sentiment,
    COUNT(*) AS posts,
    AVG(sentiment_score) AS avg_sentiment_score
FROM {ref("posts_enriched")}
GROUP BY {DIMENSIONS}, sentiment"""


def _topic_trends(ref: Ref) -> str:
    # `topic` is the post's top topic, the dimension every view shares (what a topic filter
    # picks); `label` is each label the post carries: a post counts once under each of its
    # labels, so summing over labels counts a post more than once. A post with no label over the
    # threshold counts under its top topic, unless that has no score (an empty post).
    return f"""SELECT
    {DIMENSIONS}, label,
    COUNT(*) AS posts,
    {_count_sentiment("positive")} AS positive,
    {_count_sentiment("neutral")} AS neutral,
    {_count_sentiment("negative")} AS negative,
    {NET_SENTIMENT} AS net_sentiment
FROM (
    SELECT e.day, e.source, e.hashtag, e.topic, e.sentiment, label
    FROM {ref("posts_enriched")} AS e
    CROSS JOIN UNNEST(e.topics) AS t(label)
    UNION ALL
    SELECT day, source, hashtag, topic, sentiment, topic AS label
    FROM {ref("posts_enriched")}
    WHERE topic_score > 0 AND COALESCE(ARRAY_LENGTH(topics), 0) = 0
) AS labelled
GROUP BY {DIMENSIONS}, label"""


def _top_entities(ref: Ref) -> str:
    # One row per post and name first: an entity named twice in one post, or typed two ways
    # there, is one post mentioning it (under the greatest type), so that summing `posts` by
    # entity counts posts.
    return f"""SELECT
    {DIMENSIONS}, entity, entity_type,
    COUNT(*) AS posts,
    {NET_SENTIMENT} AS net_sentiment
FROM (
    SELECT post_id, day, source, hashtag, topic, sentiment, entity, MAX(type) AS entity_type
    FROM (
        SELECT
            e.post_id, e.day, e.source, e.hashtag, e.topic, e.sentiment,
            mention.text AS entity, mention.type AS type
        FROM {ref("posts_enriched")} AS e
        CROSS JOIN UNNEST(e.entities) AS m(mention)
    ) AS named
    GROUP BY post_id, day, source, hashtag, topic, sentiment, entity
) AS mentions
GROUP BY {DIMENSIONS}, entity, entity_type"""


def _own(column: str) -> str:
    # A repost carries the counters of the post it repeats (a Mastodon boost does): they are
    # that post's author's, not the reposter's.
    return f"CAST(SUM(CASE WHEN is_repost THEN 0 ELSE {column} END) AS BIGINT)"


def _top_authors(ref: Ref) -> str:
    return f"""SELECT
    {DIMENSIONS}, author_handle, author_name,
    COUNT(*) AS posts,
    {_own("COALESCE(like_count, 0)")} AS likes,
    {_own("COALESCE(repost_count, 0)")} AS reposts,
    {_own("engagement")} AS engagement
FROM {ref("posts_enriched")}
GROUP BY {DIMENSIONS}, author_handle, author_name"""


def _top_posts(ref: Ref) -> str:
    # Reposts stay in, flagged by is_repost: the dashboard decides whether to show them.
    return f"""SELECT
    post_id, day, created_at, source, hashtag, topic, sentiment, author_handle, text, url,
    like_count, repost_count, reply_count, quote_count, engagement, is_repost
FROM {ref("posts_enriched")}"""


# In dependency order: posts_enriched first, the others read it.
_VIEWS: dict[str, Callable[[Ref], str]] = {
    "posts_enriched": _posts_enriched,
    "daily_sentiment": _daily_sentiment,
    "topic_trends": _topic_trends,
    "top_entities": _top_entities,
    "top_authors": _top_authors,
    "top_posts": _top_posts,
}

VIEW_NAMES = tuple(_VIEWS)


def view_sql(name: str, ref: Ref = _identity) -> str:
    """The SELECT that defines view `name`."""
    return _VIEWS[name](ref)


def create_views_sql(ref: Ref = _identity) -> list[str]:
    """``CREATE OR REPLACE VIEW`` for every view, in dependency order.

    Run on every open, so that a change of the SQL here reaches databases made before it.
    """
    return [f"CREATE OR REPLACE VIEW {ref(name)} AS\n{view_sql(name, ref)}" for name in VIEW_NAMES]
