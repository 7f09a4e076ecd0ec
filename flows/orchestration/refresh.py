"""Prefect flow `refresh`: the counters of recent posts read again, deleted posts noted."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.config import Config, load_config
from flows.orchestration.blocks import gcp_auth
from flows.orchestration.prefect_ui import show_logs_in_ui
from flows.orchestration.retries import retried_task
from flows.sources.lookups import refreshable
from flows.stages.refresh import RefreshReport, refresh_markdown, refresh_source
from flows.stages.stores import open_lake


@retried_task(task_run_name="refresh-{name}")
def refresh_source_task(config: Config, name: str, run_id: str) -> RefreshReport:
    """One source's due posts; a retry finds the posts the failed try read no longer due."""
    return refresh_source(config, name, run_id, lake=open_lake(config, gcp_auth(config)))


@flow(name="refresh")
def refresh_flow(config_path: str | None = None) -> list[RefreshReport]:
    """Read again the posts of the last `[refresh] days` that are due, source by source."""
    show_logs_in_ui()
    config = load_config(config_path)
    run_id = f"refresh-{flow_run.id}"  # the same across task retries: its record adds up
    reports = [
        refresh_source_task(config, name, run_id)
        for name in config.pipeline.sources
        if refreshable(name, config.settings(name))
    ]
    get_run_logger().info(
        "refreshed %d posts, %d gone", sum(r.read for r in reports), sum(r.gone for r in reports)
    )
    create_markdown_artifact(
        key="refresh-summary",
        markdown=refresh_markdown(reports),
        description=f"counters read again for #{config.hashtag}",
    )
    return reports
