"""Prefect flow `stream`: the live sources into the lake for most of an hour, analyzed every
minute; the deployment starts one each hour, so a stream that died is back within the hour."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.config import load_config
from flows.orchestration.blocks import gcp_auth
from flows.orchestration.notify import alert_sender
from flows.orchestration.prefect_ui import show_logs_in_ui
from flows.stages.stream import StreamReport, run_stream, stream_markdown

ARTIFACT_KEY = "stream-counts"


@flow(name="stream")
def stream_flow(config_path: str | None = None, minutes: float = 55.0) -> StreamReport | None:
    """Stream `[stream] sources` for `minutes`, then flush and record; counts as an artifact.

    Without `[stream] sources` it logs so and ends. No retries: a stream that stops early has
    flushed what it had, and the next hourly run resumes from the saved cursors.
    """
    show_logs_in_ui()
    config = load_config(config_path)
    if not config.stream.sources:  # a schedule that fails every hour would only be noise
        get_run_logger().warning(
            "[stream] sources is empty: nothing to stream. Name jetstream and/or mastodon "
            "there (docs/sources.md), or pause this deployment."
        )
        return None

    def publish(report: StreamReport) -> None:
        create_markdown_artifact(
            key=ARTIFACT_KEY,
            markdown=stream_markdown(report),
            description=f"live collection of #{config.hashtag}",
        )

    report = run_stream(
        config, duration=minutes * 60, auth=gcp_auth(config), send=alert_sender(config),
        handle_signals=False, on_analyze=publish,
    )
    publish(report)
    get_run_logger().info("stream: %d new posts in %.0f s", report.new, report.seconds)
    failed = [s for s in report.sources.values() if s.error]
    if failed and len(failed) == len(report.sources):
        raise RuntimeError("; ".join(f"{s.name}: {s.error}" for s in failed))
    return report
