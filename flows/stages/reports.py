"""Run summaries as Markdown: printed by the CLI and published as Prefect artifacts."""

from __future__ import annotations

from collections.abc import Sequence

from flows.cursors import SourceCursor
from flows.stages.analyze import AnalyzeReport
from flows.stages.collect import SourceReport


def collect_markdown(hashtag: str, lake: str, reports: Sequence[SourceReport]) -> str:
    """Per source: posts collected, new, duplicates, files written, requests, retries,
    rate-limit waits, lag, cost, cursor range, and how the run ended (its `collection_runs` row)."""
    lines = [
        f"### Collected #{hashtag} into `{lake}`",
        "",
        "| source | collected | new | duplicates | files | requests | retries | rate-limit wait "
        "| lag | cost | cursor before | cursor after | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in reports:
        run = r.run
        lines.append(
            f"| {r.source} | {r.fetched:,} | {r.new:,} | {r.duplicates:,} | {r.files:,} "
            f"| {run.requests:,} | {run.retries:,} | {_seconds(run.rate_limit_wait_s)} "
            f"| {_seconds(run.lag_s)} | ${run.cost_usd:,.3f} "
            f"| {_cursor(r.cursor_before)} | {_cursor(r.cursor_after)} | {_status(r)} |"
        )
    if len(reports) > 1:
        runs = [r.run for r in reports]
        lines.append(
            f"| **all sources** | {sum(r.fetched for r in reports):,} "
            f"| {sum(r.new for r in reports):,} | {sum(r.duplicates for r in reports):,} "
            f"| {sum(r.files for r in reports):,} | {sum(run.requests for run in runs):,} "
            f"| {sum(run.retries for run in runs):,} "
            f"| {_seconds(sum(run.rate_limit_wait_s for run in runs))} | "
            f"| ${sum(run.cost_usd for run in runs):,.3f} | | | |"
        )
    warnings = [f"- {r.source}: {w}" for r in reports for w in r.warnings[:20]]
    return "\n".join(lines + ([""] + warnings if warnings else []))


def _status(report: SourceReport) -> str:
    run = report.run
    status = f"{run.status}: {run.reason}" if run.reason else run.status
    return status + (f", {len(report.warnings)} warnings" if report.warnings else "")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} s"


def _cursor(cursor: SourceCursor | None) -> str:
    return (str(cursor) if cursor is not None else "") or "-"


def _alerts(report: AnalyzeReport) -> str:
    if report.alerts is None:
        return "- (no [alerts] destination)"
    failed = report.alerts.failed
    return f"{len(report.alerts.sent):,}" + (
        f", {len(failed):,} failed (sent by the next run): " + "; ".join(failed.values())[:300]
        if failed else ""
    )


def analyze_markdown(report: AnalyzeReport) -> str:
    """Files and rows loaded, posts analysed, their sentiment split, the model, warehouse totals."""
    total = sum(report.sentiment.values())
    split = " / ".join(
        f"{label} {report.sentiment.get(label, 0):,} ({report.sentiment.get(label, 0) / total:.0%})"
        for label in ("positive", "neutral", "negative")
    ) if total else "-"
    return "\n".join(
        [
            f"### Analysed into `{report.warehouse}`",
            "",
            "| | this run |",
            "|---|---|",
            f"| lake files loaded | {report.files:,} |",
            f"| posts loaded (new rows) | {report.posts_loaded:,} |",
            f"| posts analysed | {report.analysed:,} |",
            f"| collection runs loaded | {report.runs_loaded:,} |",
            f"| counter snapshots, deletions loaded | {report.snapshots_loaded:,}, "
            f"{report.deletions_loaded:,} |",
            f"| sentiment of analysed posts | {split} |",
            f"| conversations of the latest week | {report.conversations:,} |",
            f"| signals sent | {_alerts(report)} |",
            f"| model | `{report.model_id}` |",
            f"| warehouse totals | {report.totals.get('posts', 0):,} posts, "
            f"{report.totals.get('post_nlp', 0):,} NLP results, "
            f"{report.totals.get('collection_runs', 0):,} collection runs |",
        ]
    )
