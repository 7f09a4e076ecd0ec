"""Run summaries as Markdown: printed by the CLI and published as Prefect artifacts."""

from __future__ import annotations

from collections.abc import Sequence

from flows.cursors import SourceCursor
from flows.stages.analyze import AnalyzeReport
from flows.stages.collect import SourceReport


def collect_markdown(hashtag: str, lake: str, reports: Sequence[SourceReport]) -> str:
    """Per source: posts collected, new, duplicates, files written, cursor range, status."""
    lines = [
        f"### Collected #{hashtag} into `{lake}`",
        "",
        "| source | collected | new | duplicates | files | cursor before | cursor after | status |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for r in reports:
        status = f"error: {r.error}" if r.error else (f"{len(r.warnings)} warnings" if r.warnings else "ok")
        lines.append(
            f"| {r.source} | {r.fetched:,} | {r.new:,} | {r.duplicates:,} | {r.files:,} "
            f"| {_cursor(r.cursor_before)} | {_cursor(r.cursor_after)} | {status} |"
        )
    if len(reports) > 1:
        lines.append(
            f"| **all sources** | {sum(r.fetched for r in reports):,} | {sum(r.new for r in reports):,} "
            f"| {sum(r.duplicates for r in reports):,} | {sum(r.files for r in reports):,} | | | |"
        )
    warnings = [f"- {r.source}: {w}" for r in reports for w in r.warnings[:20]]
    return "\n".join(lines + ([""] + warnings if warnings else []))


def _cursor(cursor: SourceCursor | None) -> str:
    return (str(cursor) if cursor is not None else "") or "-"


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
            f"| sentiment of analysed posts | {split} |",
            f"| model | `{report.model_id}` |",
            f"| warehouse totals | {report.totals.get('posts', 0):,} posts, "
            f"{report.totals.get('post_nlp', 0):,} NLP results |",
        ]
    )
