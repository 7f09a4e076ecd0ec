"""Prefect flow `gcs-to-bq`: new lake files → NLP → the warehouse (BigQuery or DuckDB)."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.config import Config, load_config
from flows.orchestration.blocks import gcp_auth
from flows.orchestration.notify import alert_sender, publish_weekly_digest
from flows.orchestration.prefect_ui import ProgressArtifact, show_logs_in_ui
from flows.orchestration.retries import retried_task
from flows.stages.analyze import AnalyzeReport, analyze
from flows.stages.reports import analyze_markdown


@retried_task()
def analyze_task(config: Config) -> AnalyzeReport:
    """A retry picks up the files the failed try did not mark as loaded; MERGE absorbs overlap."""
    progress = ProgressArtifact("gcs-to-bq-progress", "posts analysed")
    return analyze(
        config, on_progress=progress, auth=gcp_auth(config), send=alert_sender(config)
    )


@retried_task()
def digest_task(config: Config) -> bool:
    """Once a week (kept in the lake): the digest as an artifact, sent when [alerts] digest."""
    return publish_weekly_digest(config, gcp_auth(config), alert_sender(config))


@flow(name="gcs-to-bq")
def gcs_to_bq(config_path: str | None = None) -> AnalyzeReport:
    """Classify and load every lake file that the warehouse does not hold yet."""
    show_logs_in_ui()
    config = load_config(config_path)
    report = analyze_task(config)
    digest_task(config)
    get_run_logger().info("analysed %d posts with %s", report.analysed, report.model_id)
    create_markdown_artifact(
        key="gcs-to-bq-summary",
        markdown=analyze_markdown(report),
        description=f"posts analysed for #{config.hashtag}",
    )
    return report
