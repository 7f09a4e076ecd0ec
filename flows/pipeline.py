"""Prefect flow `hashtag-pulse`: `web-to-gcs`, then `gcs-to-bq`, as subflows of one run."""

from __future__ import annotations

from prefect import flow

from flows.gcs_to_bq import gcs_to_bq
from flows.web_to_gcs import web_to_gcs


@flow(name="hashtag-pulse")
def hashtag_pulse(config_path: str | None = None) -> None:
    """Collect, then analyze: the whole path for the configured hashtag."""
    web_to_gcs(config_path)
    gcs_to_bq(config_path)
