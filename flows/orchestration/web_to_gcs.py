"""Prefect flow `web-to-gcs`: every configured source → the lake (GCS bucket or local folder)."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.config import Config, load_config
from flows.orchestration.blocks import gcp_auth
from flows.orchestration.prefect_ui import show_logs_in_ui
from flows.orchestration.retries import retried_task
from flows.stages.collect import SourceReport, check_sources, collect_source
from flows.stages.reports import collect_markdown
from flows.stages.stores import open_lake


@retried_task(task_run_name="collect-{name}")
def collect_source_task(config: Config, name: str, run_id: str) -> SourceReport:
    """One source into the lake; a retry resumes from the cursor the failed try saved."""
    return collect_source(config, name, run_id, lake=open_lake(config, gcp_auth(config)))


@flow(name="web-to-gcs")
def web_to_gcs(config_path: str | None = None) -> list[SourceReport]:
    """Collect the configured hashtag from every configured source into the lake."""
    show_logs_in_ui()
    config = load_config(config_path)
    check_sources(config)
    run_id = f"run-{flow_run.id}"  # the same across task retries: a retry's files go on after
    reports = [collect_source_task(config, name, run_id) for name in config.pipeline.sources]
    get_run_logger().info(
        "collected %d posts, %d new", sum(r.fetched for r in reports), sum(r.new for r in reports)
    )
    create_markdown_artifact(
        key="web-to-gcs-summary",
        markdown=collect_markdown(config.hashtag, config.lake, reports),
        description=f"posts collected for #{config.hashtag}",
    )
    return reports
