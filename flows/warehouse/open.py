"""A warehouse opened by its URL, in the engine the URL names: DuckDB or BigQuery.

Example:
    >>> with open_warehouse("duckdb:///data/warehouse.duckdb") as warehouse:  # doctest: +SKIP
    ...     warehouse.load_posts(posts)
    ...     warehouse.query("SELECT * FROM daily_sentiment WHERE day >= ?", [start])
"""

from __future__ import annotations

from flows.settings import ConfigError, parse_warehouse_url
from flows.warehouse.base import Warehouse
from flows.warehouse.errors import WarehouseError


def open_warehouse(url: str, *, credentials: object | None = None, location: str = "") -> Warehouse:
    """Open the warehouse at `url`, creating its tables and (re)creating its views.

    A table made by an earlier version of the pipeline gains the columns added to `flows.schema`
    since (`flows.warehouse.tables.columns_to_add`).

    ``duckdb:///data/w.duckdb`` is relative to the working directory, ``duckdb:////srv/w.duckdb``
    absolute (SQLAlchemy's convention); the folder is created. ``bigquery://project/dataset``
    uses `credentials` (google-auth; None: application-default credentials) and creates a
    missing dataset in `location`.

    Raises:
        WarehouseError: the URL is not one of those (`flows.settings.parse_warehouse_url`), or
            the warehouse refused to open.
    """
    try:
        where = parse_warehouse_url(url)
    except ConfigError as exc:
        raise WarehouseError(str(exc)) from None
    # each engine's library is imported when a URL names it
    if where.scheme == "duckdb":
        from flows.warehouse.duckdb_warehouse import DuckDBWarehouse

        return DuckDBWarehouse(where.path)
    from flows.warehouse.bigquery_warehouse import BigQueryWarehouse

    return BigQueryWarehouse(
        where.project, where.dataset, credentials=credentials, location=location
    )
