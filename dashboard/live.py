"""The live indicator at the top of the page, and the page's own refresh while a stream runs.

A running stream rewrites its collection run record (status ``running``) at every analyze, about
once a minute: a record whose heartbeat (``finished_at``) is younger than `HEARTBEAT_S` is a live
stream. While one is live, the indicator checks the warehouse every `REFRESH_S` seconds and reruns
the whole page when something changed (new posts, a heartbeat, the stream's end); once none is,
the page stops checking until it is reloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import streamlit as st

from dashboard import queries
from flows.warehouse.base import Warehouse
from flows.warehouse.errors import WarehouseError

REFRESH_S = 15  # how often a page checks for news while a stream runs
HEARTBEAT_S = 180  # three missed heartbeats of ~60 s: the stream is gone
# session state: what the page shows now, and the state its full run just read
SHOWN_KEY = "live_shown"
READ_KEY = "live_read"


@dataclass(frozen=True)
class LiveState:
    """What the warehouse says about the inflow at `now`.

    Attributes:
        newest: the newest post (`queries.newest_post`), None without posts.
        runs: each source's newest run record (`queries.latest_runs`), newest first.
    """

    now: datetime
    newest: dict | None
    runs: list[dict]

    @property
    def streams(self) -> list[dict]:
        """The records of the streams running now (heartbeat within `HEARTBEAT_S`)."""
        return [
            run
            for run in self.runs
            if run["status"] == "running" and age_s(run["finished_at"], self.now) < HEARTBEAT_S
        ]

    @property
    def signature(self) -> tuple:
        """What, when it changes, makes the page worth drawing again: the newest post, every
        record's end and counts, and which streams are live (a killed one stops beating)."""
        newest = None if self.newest is None else (
            self.newest["post_id"], self.newest["collected_at"]
        )
        runs = tuple((r["source"], r["status"], r["finished_at"], r["events"]) for r in self.runs)
        return newest, runs, tuple(run["source"] for run in self.streams)


def read(warehouse: Warehouse) -> LiveState:
    """The live state, read now (uncached: the page asks every `REFRESH_S` seconds)."""

    def rows(query: queries.Query) -> list[dict]:
        sql, params = query
        return warehouse.query(sql, list(params)).to_pylist()

    newest = rows(queries.newest_post())
    return LiveState(datetime.now(UTC), newest[0] if newest else None, rows(queries.latest_runs()))


def age_s(then: datetime, now: datetime) -> float:
    return (now - then).total_seconds()


def duration(seconds: float) -> str:
    """``40 s``, ``12 min``, ``5 h``, ``3 days``: a span as a person reads it."""
    seconds = max(seconds, 0)  # a clock a little ahead of ours
    for limit, unit, size in ((90, "s", 1), (90 * 60, "min", 60), (48 * 3600, "h", 3600)):
        if seconds < limit:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds / 86400:.0f} days"


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def stream_text(run: dict) -> str:
    """``jetstream: 12,345 events, 1 reconnect, lag 2.1 s`` (and its gaps, if any)."""
    parts = [_count(run["reconnects"], "reconnect")]
    if run["events"] is not None:
        parts.insert(0, _count(run["events"], "event"))
    if run["gaps"]:
        parts.append(_count(run["gaps"], "gap"))
    if run["lag_s"] is not None:
        parts.append(f"lag {run['lag_s']:.1f} s")
    return f"**{run['source']}**: {', '.join(parts)}"


def newest_text(state: LiveState) -> str:
    newest = state.newest
    if newest is None:
        return "no posts yet"
    posted = duration(age_s(newest["created_at"], state.now))
    took = duration(age_s(newest["created_at"], newest["collected_at"]))
    return f"newest post {posted} ago ({newest['source']}, collected {took} after it was posted)"


def last_collection_text(state: LiveState) -> str:
    if not state.runs:
        return "no collection recorded yet"
    run = state.runs[0]
    # a running record without a heartbeat: the stream was killed before it could close it
    status = "stopped reporting" if run["status"] == "running" else run["status"]
    return (
        f"last collection **{run['source']}** "
        f"{duration(age_s(run['finished_at'], state.now))} ago ({status})"
    )


def show(state: LiveState) -> None:
    """One line: Live (each stream's counts) or Not streaming (the last collection), and the
    newest post."""
    if state.streams:
        badge = ":green-badge[:material/sensors: Live]"
        parts = [
            *(stream_text(run) for run in state.streams),
            newest_text(state),
            f"checks for news every {REFRESH_S} s",
        ]
    else:
        badge = ":gray-badge[:material/sensors_off: Not streaming]"
        parts = [last_collection_text(state), newest_text(state)]
    with st.container(key="live-indicator"):
        st.markdown(f"{badge} " + " · ".join(parts))


def section(warehouse: Warehouse, on_change: Callable[[], None]) -> None:
    """The live indicator; while a stream runs it checks every `REFRESH_S` seconds, and on news
    calls `on_change` (which drops the page's cached results) and reruns the page.

    Nothing shows while the warehouse has neither posts nor runs.
    """
    state = read(warehouse)
    if state.newest is None and not state.runs:
        return
    st.session_state[SHOWN_KEY] = state.signature
    st.session_state[READ_KEY] = state
    run_every = REFRESH_S if state.streams else None
    st.fragment(_indicator, run_every=run_every)(warehouse, on_change)


def _indicator(warehouse: Warehouse, on_change: Callable[[], None]) -> None:
    # The full run just read the state; a timed rerun of this fragment alone reads it again.
    state = st.session_state.pop(READ_KEY, None)
    if state is None:
        try:
            state = read(warehouse)
        except WarehouseError as exc:  # a load held the file too long: the next tick retries
            st.caption(
                f"The live indicator could not read the warehouse just now ({exc}); "
                f"it tries again in {REFRESH_S} s."
            )
            return
    if state.signature != st.session_state.get(SHOWN_KEY):
        on_change()
        st.rerun(scope="app")
    show(state)
