"""Collection health on the dashboard: whether a quiet day was quiet or collection failed.

`warn` puts a warning on the first screen when a source failed or missed time in the shown days;
`section` shows, per source, its last run, how it ended, and its posts, rate-limit waits, gaps and
cost, from the rows of `dashboard.queries.collection_health`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import streamlit as st

def month_start(now: datetime | None = None) -> date:
    """The first day of this month (UTC), from which "cost this month" counts."""
    return (now or datetime.now(UTC)).astimezone(UTC).date().replace(day=1)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def warn(health: pd.DataFrame) -> None:
    """A warning naming each source that failed or has a gap in the shown days."""
    problems = []
    for row in health.itertuples():
        found = [
            _plural(int(n), what)
            for n, what in ((row.failures, "failed run"), (row.gaps, "gap"))
            if n
        ]
        if found:
            problems.append(f"**{row.source}**: {' and '.join(found)}")
    if problems:
        st.warning(
            "Collection trouble in these days, so some posts may be missing: "
            + "; ".join(problems)
            + ". See *Collection health* below.",
            icon=":material/warning:",
        )


def section(health: pd.DataFrame) -> None:
    """Per source: last run and status, then the shown days' posts, waits, gaps and failures,
    and this month's cost."""
    st.subheader("Collection health")
    if health.empty:
        st.caption(
            "No collection runs recorded here yet: each `python -m flows run` records one per "
            "source, and analyze loads them."
        )
        return
    shown = health.assign(
        status=[
            f"{status}: {reason}" if pd.notna(reason) else status
            for status, reason in zip(health["last_status"], health["last_reason"], strict=True)
        ],
        rate_limit_wait_min=health["rate_limit_wait_s"].fillna(0) / 60,
    )[
        [
            "source",
            "last_run",
            "status",
            "runs",
            "posts",
            "rate_limit_wait_min",
            "gaps",
            "failures",
            "cost_this_month",
        ]
    ]
    st.dataframe(
        shown,
        hide_index=True,
        column_config={
            "source": st.column_config.TextColumn("Source", width=80),
            "last_run": st.column_config.DatetimeColumn(
                "Last run", format="D MMM YYYY, HH:mm", timezone="UTC", width=130
            ),
            "status": st.column_config.TextColumn(
                "Last status", help="How the last run ended, and why it stopped", width=330
            ),
            "runs": st.column_config.NumberColumn("Runs", format="localized", width=55),
            "posts": st.column_config.NumberColumn(
                "New posts", help="New posts the runs of these days landed", width=75
            ),
            "rate_limit_wait_min": st.column_config.NumberColumn(
                "Waits (min)", help="Minutes spent waiting for rate limits", format="%.1f",
                width=80,
            ),
            "gaps": st.column_config.NumberColumn(
                "Gaps", help="Spans of time a source could not see", width=50
            ),
            "failures": st.column_config.NumberColumn("Failed runs", width=75),
            "cost_this_month": st.column_config.NumberColumn(
                "Cost this month", help="What the API billed this calendar month (UTC)",
                format="$%.2f", width=105,
            ),
        },
    )
    st.caption("Counts over the days shown; the last run and this month's cost whatever the days.")
