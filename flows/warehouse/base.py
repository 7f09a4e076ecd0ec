"""The warehouse: tables `posts` and `post_nlp`, loaded idempotently, and the views over them.

Open one by URL with `open_warehouse`; the pipeline loads into it and the dashboards read its views
through `Warehouse.query`. The tables, the MERGE and the views are written once, in
`flows.warehouse.views`.

Example:
    >>> with open_warehouse("duckdb:///data/warehouse.duckdb") as warehouse:  # doctest: +SKIP
    ...     warehouse.load_posts(posts)
    ...     warehouse.query("SELECT * FROM daily_sentiment WHERE day >= ?", [start])
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

import pyarrow as pa


class WarehouseError(Exception):
    """A warehouse URL is wrong, or the warehouse refused an operation."""


class WarehouseLockedError(WarehouseError):
    """Another process held the warehouse for longer than the lock timeout."""


class Warehouse(Protocol):
    """Where posts and their NLP results are kept and queried.

    Loads are idempotent: loading the same rows twice changes nothing, and a key that appears
    twice in one batch is stored once. Implementations are context managers (`close` on exit).
    """

    url: str

    def load_posts(self, posts: pa.Table, files: Sequence[str] = ()) -> int:
        """Merge POST_SCHEMA rows on ``post_id``: insert new posts, refresh the counters of
        known ones from a newer collection. Returns the number of posts inserted.

        `files`, when given, are the lake files that hold exactly these rows: a warehouse that
        reads them itself (BigQuery, from ``gs://``) loads them instead of `posts`."""
        ...

    def load_nlp(self, results: pa.Table) -> int:
        """Merge NLP_SCHEMA rows on ``(post_id, model_id)``. Returns the number inserted."""
        ...

    def analysed_ids(self, post_ids: Sequence[str], model_id: str) -> set[str]:
        """Those of `post_ids` that already have a result from `model_id`."""
        ...

    def counts(self) -> dict[str, int]:
        """Rows per table: ``{"posts": n, "post_nlp": m}``."""
        ...

    def query(self, sql: str, params: Sequence | None = None) -> pa.Table:
        """Run a read-only query (``?`` placeholders take `params`) and return its rows."""
        ...

    def close(self) -> None:
        """Release the warehouse; later calls raise `WarehouseError`."""
        ...

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


_URL_HELP = (
    "use duckdb:///relative/path.duckdb or duckdb:////absolute/path.duckdb (three slashes, then "
    "the path), or bigquery://project/dataset"
)


def open_warehouse(url: str, *, credentials: object | None = None, location: str = "") -> Warehouse:
    """Open the warehouse at `url`, creating its tables and (re)creating its views.

    A table made by an earlier version of the pipeline gains the columns added to `flows.schema`
    since (`flows.warehouse.views.columns_to_add`).

    ``duckdb:///data/w.duckdb`` is relative to the working directory, ``duckdb:////srv/w.duckdb``
    absolute (SQLAlchemy's convention); the folder is created. ``bigquery://project/dataset``
    uses `credentials` (google-auth; None: application-default credentials) and creates a
    missing dataset in `location`.

    Raises:
        WarehouseError: the URL is not one of those, or the warehouse refused to open.
    """
    scheme, _, rest = url.partition("://")
    if scheme == "duckdb":
        path = rest.removeprefix("/")
        if not rest.startswith("/") or not path:
            raise WarehouseError(f"warehouse URL {url!r} has no file path: {_URL_HELP}.")
        if path == ":memory:":
            raise WarehouseError(
                f"warehouse URL {url!r}: an in-memory DuckDB does not outlive a load, and the "
                "warehouse opens a connection per operation; name a file instead."
            )
        from flows.warehouse.duckdb_warehouse import DuckDBWarehouse

        return DuckDBWarehouse(path)
    if scheme == "bigquery":
        project, _, dataset = rest.partition("/")
        if not project or not dataset or "/" in dataset:
            raise WarehouseError(
                f"warehouse URL {url!r} needs a project and a dataset: {_URL_HELP}."
            )
        from flows.warehouse.bigquery_warehouse import BigQueryWarehouse

        return BigQueryWarehouse(project, dataset, credentials=credentials, location=location)
    raise WarehouseError(f"warehouse URL {url!r} is not supported: {_URL_HELP}.")
