"""A Looker Studio report over the BigQuery views, opened by one Linking API URL.

The Linking API (https://developers.google.com/looker-studio/integrate/linking-api) takes the
whole report configuration in the query string: ``c.*`` control parameters, ``r.*`` report
parameters and, per data source alias, ``ds.<alias>.*`` connector settings. Each view becomes a
BigQuery data source of type TABLE whose alias is the view's name, so that a template report
built as `docs/looker-studio.md` describes (with those aliases) is re-pointed at any project.

Example:
    >>> looker_url("bigquery://my-proj/pulse")  # doctest: +ELLIPSIS
    'https://lookerstudio.google.com/reporting/create?r.reportName=...'
"""

from __future__ import annotations

from contextlib import suppress
from urllib.parse import quote, urlencode

from flows.settings import ConfigError, parse_warehouse_url
from flows.warehouse.errors import WarehouseError

CREATE_URL = "https://lookerstudio.google.com/reporting/create"

# The views a person reads; posts_enriched is the one they are built from, not a report page.
REPORT_VIEWS = (
    "daily_sentiment", "topic_trends", "top_entities", "top_authors", "top_posts", "source_health"
)


def bigquery_location(warehouse: str) -> tuple[str, str]:
    """``bigquery://project/dataset`` → ``(project, dataset)``.

    Raises:
        WarehouseError: `warehouse` is not a BigQuery URL with a project and a dataset.
    """
    with suppress(ConfigError):  # a malformed URL names no BigQuery dataset either
        where = parse_warehouse_url(warehouse)
        if where.scheme == "bigquery":
            return where.project, where.dataset
    raise WarehouseError(
        f"warehouse {warehouse!r} is not on BigQuery: Looker Studio reads the views from "
        "BigQuery. Set [pipeline] warehouse = bigquery://project/dataset, or [gcp_config] "
        "project_id and bq_dataset."
    )


def looker_url(
    warehouse: str,
    report_name: str = "Hashtag pulse",
    template_report_id: str | None = None,
    views: tuple[str, ...] = REPORT_VIEWS,
) -> str:
    """The Linking API URL that creates a report over `views` of the BigQuery `warehouse`.

    Args:
        warehouse: ``bigquery://project/dataset``.
        report_name: the new report's name (``r.reportName``).
        template_report_id: a report to copy (``c.reportId``) whose data sources have the view
            names as aliases; without one Looker Studio starts from its default template.
        views: the views to add as data sources, each under its own name as alias.

    Raises:
        WarehouseError: the warehouse is not on BigQuery.
    """
    project, dataset = bigquery_location(warehouse)
    params: dict[str, str] = {}
    if template_report_id:
        params["c.reportId"] = template_report_id
    params["r.reportName"] = report_name
    for view in views:
        params.update(
            {
                f"ds.{view}.connector": "bigQuery",
                f"ds.{view}.datasourceName": f"{report_name}: {view}",
                f"ds.{view}.type": "TABLE",
                f"ds.{view}.projectId": project,
                f"ds.{view}.datasetId": dataset,
                f"ds.{view}.tableId": view,
            }
        )
    # %20, not +, for spaces: the form Looker Studio's own examples use
    return f"{CREATE_URL}?{urlencode(params, quote_via=quote)}"
