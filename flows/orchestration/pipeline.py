"""Prefect flow `hashtag-pulse`: `web-to-gcs`, then `gcs-to-bq`, as subflows of one run."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.config import load_config
from flows.orchestration.gcs_to_bq import gcs_to_bq
from flows.stages.reports import analyze_markdown, collect_markdown
from flows.orchestration.web_to_gcs import web_to_gcs


@flow(name="hashtag-pulse")
def hashtag_pulse(config_path: str | None = None) -> None:
    """Collect, then analyze: the whole path for the configured hashtag."""
    config = load_config(config_path)
    collected = web_to_gcs(config_path)
    analysed = gcs_to_bq(config_path)
    summary = [collect_markdown(config.hashtag, config.lake, collected), analyze_markdown(analysed)]
    create_markdown_artifact(
        key="hashtag-pulse-summary",
        markdown="\n\n".join(summary),
        description=f"the whole path for #{config.hashtag}",
    )
