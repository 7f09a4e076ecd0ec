"""The dashboard's live indicator, and its own refresh while a stream runs (issue #16).

The warehouse is written the way the stream stage writes it, through its load functions: posts,
and a collection run record per stream whose status is ``running`` and whose ``finished_at`` is
rewritten at each heartbeat, until the run ends.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from test_dashboard import (
    ARTIFACTS,
    browser,
    build_warehouse,
    dashboard,
    metrics,
    needs_chromium,
    settled_text,
)
from test_warehouse_duckdb import post

from dashboard import live
from flows.lake.runs import CollectionRun
from flows.schema import COLLECTION_RUN_SCHEMA, posts_table
from flows.warehouse.open import open_warehouse

STARTED = datetime.now(UTC) - timedelta(minutes=20)
INDICATOR = ".st-key-live-indicator"


def stream_post(n: int, created: datetime, lag: timedelta = timedelta(seconds=3)) -> dict:
    """A post as the jetstream source gives it, landed `lag` after it was posted."""
    rkey = f"3lstream{n:04d}"
    return post(
        "bluesky",
        f"at://did:plc:ana/app.bsky.feed.post/{rkey}",
        created,
        "ana.bsky.social",
        collected_at=created + lag,
        text=f"Streamed post {n} about #dataengineering",
    )


def stream_run(heartbeat: datetime, events: int, status: str = "running") -> CollectionRun:
    return CollectionRun(
        "stream-1", "jetstream", "dataengineering", STARTED, heartbeat, status=status,
        posts_new=3, events=events, reconnects=1, lag_s=2.5,
    )


def load(url: str, posts: list[dict] = (), runs: list[CollectionRun] = ()) -> None:
    with open_warehouse(url) as warehouse:
        if posts:
            warehouse.load_posts(posts_table(list(posts)))
        if runs:
            rows = [run.to_row() for run in runs]
            warehouse.load_runs(pa.Table.from_pylist(rows, schema=COLLECTION_RUN_SCHEMA))


def live_warehouse(path: Path, heartbeat: datetime) -> str:
    """Sample posts, two just streamed, a polling run yesterday and a stream whose last beat
    was at `heartbeat`."""
    url = build_warehouse(path, n=80)
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    polled = CollectionRun(
        "poll-1", "mastodon", "dataengineering", yesterday, yesterday + timedelta(minutes=2),
        posts_new=5,
    )
    newest = [
        stream_post(1, now - timedelta(seconds=95)),
        stream_post(2, now - timedelta(seconds=40)),
    ]
    load(url, newest, [polled, stream_run(heartbeat, events=12_345)])
    return url


def test_the_live_state_tells_a_beating_stream_from_a_silent_one(tmp_path):
    now = datetime.now(UTC)
    url = live_warehouse(tmp_path / "beating.duckdb", heartbeat=now - timedelta(seconds=20))
    with open_warehouse(url) as warehouse:
        state = live.read(warehouse)
        assert [run["source"] for run in state.streams] == ["jetstream"]
        assert [run["source"] for run in state.runs] == ["jetstream", "mastodon"]
        assert live.stream_text(state.streams[0]) == (
            "**jetstream**: 12,345 events, 1 reconnect, lag 2.5 s"
        )
        posted = state.newest["created_at"]
        assert live.newest_text(replace(state, now=posted + timedelta(seconds=40))) == (
            "newest post 40 s ago (bluesky, collected 3 s after it was posted)"
        )
        before = state.signature
        # a heartbeat rewrites the record: the page has news
        load(url, runs=[stream_run(now, events=12_400)])
        assert live.read(warehouse).signature != before

        load(url, runs=[stream_run(now + timedelta(seconds=1), events=12_500, status="ok")])
        assert live.read(warehouse).streams == []

    # killed without closing its record: no heartbeat for longer than HEARTBEAT_S
    silent = now - timedelta(seconds=live.HEARTBEAT_S + 30)
    with open_warehouse(live_warehouse(tmp_path / "silent.duckdb", silent)) as warehouse:
        state = live.read(warehouse)
        assert state.streams == [] and state.runs[0]["status"] == "running"
        assert live.last_collection_text(replace(state, now=silent + timedelta(minutes=4))) == (
            "last collection **jetstream** 4 min ago (stopped reporting)"
        )


def test_durations_read_as_people_say_them():
    assert [live.duration(s) for s in (-2, 40, 89, 90, 3599, 7200, 47 * 3600, 3 * 86400)] == [
        "0 s", "40 s", "89 s", "2 min", "60 min", "2 h", "47 h", "3 days",
    ]


def _tick_on_a_held_warehouse() -> None:
    """A timed rerun of the indicator while a load holds the warehouse (an AppTest script)."""
    from dashboard import live
    from flows.warehouse.errors import WarehouseLockedError

    class Held:
        def query(self, sql, params=None):
            raise WarehouseLockedError("w.duckdb is held by another process")

    live._indicator(Held(), on_change=lambda: None)


def test_a_tick_that_cannot_read_the_warehouse_says_so_and_waits_for_the_next():
    from streamlit.testing.v1 import AppTest

    page = AppTest.from_function(_tick_on_a_held_warehouse).run()
    assert not page.exception
    assert [caption.value for caption in page.caption] == [
        "The live indicator could not read the warehouse just now (w.duckdb is held by another "
        f"process); it tries again in {live.REFRESH_S} s."
    ]


def indicator_text(page) -> str:
    """The indicator as read, without its badge icon (whose name is the icon font's ligature)."""
    return page.locator(INDICATOR).first.evaluate(
        "node => { const copy = node.cloneNode(true);"
        " copy.querySelectorAll('[role=img]').forEach(icon => icon.remove());"
        " return copy.textContent.trim(); }"
    )


def wait_for(page, check, timeout: float, what: str) -> None:
    """Poll `check()` (through Playwright, so that its events run) until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:g} s; the page reads:\n"
                                 f"{page.inner_text('body')}")
        page.wait_for_timeout(500)


@needs_chromium
def test_the_page_refreshes_itself_while_a_stream_runs_and_not_after(tmp_path):
    url = live_warehouse(tmp_path / "warehouse.duckdb", datetime.now(UTC) - timedelta(seconds=20))
    sent: list[float] = []  # when the browser sent Streamlit a message (a rerun asks by one)
    with dashboard(url, tmp_path / "streamlit.log") as address, browser() as page:
        page.on("websocket", lambda ws: ws.on("framesent", lambda _: sent.append(time.monotonic())))
        page.goto(address)
        page.wait_for_selector('[data-testid="stMetric"]', timeout=45_000)
        settled_text(page)
        shown = indicator_text(page)
        assert shown.startswith("Live jetstream: 12,345 events, 1 reconnect, lag 2.5 s")
        assert "newest post" in shown and "(bluesky, collected 3 s after it was posted)" in shown
        posts = int(metrics(page)["Posts"])
        assert posts == 82
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "dashboard-live.png")

        # The stream lands a post and beats; the page shows both without being reloaded.
        page.evaluate("window.loadedOnce = true")
        now = datetime.now(UTC)
        asked = len(sent)
        load(url, [stream_post(3, now - timedelta(seconds=4))], [stream_run(now, events=12_400)])
        wait_for(
            page,
            lambda: metrics(page).get("Posts") == str(posts + 1),
            live.REFRESH_S + 30,
            "the new post never showed",
        )
        assert "12,400 events" in indicator_text(page)
        assert page.evaluate("window.loadedOnce === true")  # a rerun, not a reload
        assert len(sent) > asked  # the page asked for it

        # The stream ends: the page says so, then stops asking.
        load(url, runs=[stream_run(datetime.now(UTC), events=12_450, status="ok")])
        wait_for(
            page,
            lambda: indicator_text(page).startswith("Not streaming"),
            live.REFRESH_S + 30,
            "the end of the stream never showed",
        )
        assert "last collection jetstream" in indicator_text(page)
        settled_text(page)
        page.locator(INDICATOR).screenshot(path=ARTIFACTS / "dashboard-live-ended.png")
        load(url, [stream_post(4, datetime.now(UTC))])
        asked = len(sent)
        page.wait_for_timeout((live.REFRESH_S + 5) * 1000)
        assert len(sent) == asked and metrics(page)["Posts"] == str(posts + 1)
        assert page.evaluate("window.loadedOnce === true")
        # the post was there: asking for it shows it
        page.get_by_role("button", name="Reload data").click()
        settled_text(page)
        assert metrics(page)["Posts"] == str(posts + 2)
