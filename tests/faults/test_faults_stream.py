"""`python -m flows stream` killed with SIGKILL in the middle of a flush, then restarted with
``--duration``: every post with the hashtag in the lake once, the deleted ones out of the views.

A flush lands a source's posts (a file written, then listed in the manifest), then the deletions
of held posts (a fact file written, then listed), then the cursor. The kill points are made
certain from outside, with nothing in the pipeline's code: the test holds the lake's state lock
(so a written file waits to be listed), or puts a named pipe that no one writes in place of the
cursors file (so the cursor save, the step after the listing, waits for ever). Each run streams
from a local Jetstream; the restart replays from the cursor the last whole flush saved. Analyze
runs in the test's process with `EchoBackend` and a fake encoder (the views are the same; no
model to load).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_jetstream import FakeAppView, FakeJetstream, delete_event, post_event
from faultkit import kill, lake_ids, parquet_on_disk, pulse, start, wait_for
from test_analyze import CountingEncoder
from test_stream_live import TAG, in_views, network, tagged, uri_id, write_config

from conftest import EchoBackend
from flows.config import load_config
from flows.cursors import JetstreamCursor
from flows.lake.facts import DELETIONS, FactLog
from flows.lake.lake import Lake
from flows.lake.runs import RunLog
from flows.stages.analyze import analyze
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse

FIRST = range(1, 11)  # posts 1-10: landed and their cursor saved before the fault


@pytest.fixture
def streams():
    """The stream processes a test starts; one that a failed assertion left running is killed."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def cursor(folder: Path) -> JetstreamCursor:
    return Lake(str(folder / "lake")).read_cursor("jetstream", TAG)


def stream_first_posts(
    folder: Path, network: tuple[FakeJetstream, FakeAppView], streams: list[subprocess.Popen]
):
    """A stream process that has landed posts 1-10 and saved their cursor, and is idle (no
    event comes, so no flush touches the lake until the test publishes more); and that cursor's
    time_us."""
    jetstream, appview = network
    config = write_config(folder, jetstream, appview)
    log = folder / "stream.log"
    process = start([sys.executable, "-m", "flows", "stream", "--config", str(config)], folder, log)
    streams.append(process)
    wait_for(lambda: jetstream.connections, process, log)
    first_us = jetstream.publish(*(tagged(n) for n in FIRST))[-1]["time_us"]
    wait_for(lambda: cursor(folder).time_us == first_us, process, log)
    assert sorted(lake_ids(folder / "lake")) == sorted(uri_id(n) for n in FIRST)
    return process, log, config, first_us


def waiting_for_the_state_lock(log: Path) -> Callable[[], bool]:
    """Whether the process has logged a wait for the lake's state lock since this call."""
    before = log.read_text().count("state.lock")
    return lambda: log.read_text().count("state.lock") > before


def restart(config: Path, folder: Path) -> None:
    done = pulse("stream", "--config", str(config), "--duration", "3", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr


def assert_runs(folder: Path, new_on_restart: int) -> None:
    """The killed run's record says "running" (its heartbeat, which the dashboard reads as
    "stopped reporting"); the restart's says "ok" with the posts it added."""
    runs = RunLog(Lake(str(folder / "lake")))
    rows = sorted(runs.read(runs.pending("nowhere")).to_pylist(), key=lambda r: r["started_at"])
    assert [(r["source"], r["status"]) for r in rows] == [
        ("jetstream", "running"), ("jetstream", "ok")
    ]
    assert rows[0]["run_id"] != rows[1]["run_id"]
    assert rows[1]["posts_new"] == new_on_restart


def test_killed_with_a_posts_file_written_but_not_listed(tmp_path, network, streams):
    jetstream = network[0]
    process, log, config, first_us = stream_first_posts(tmp_path, network, streams)
    lake = Lake(str(tmp_path / "lake"))
    waiting = waiting_for_the_state_lock(log)
    with lake.lock("state"):  # the next flush writes its posts file, then waits to list it
        jetstream.publish(*(tagged(n) for n in range(11, 21)))
        wait_for(waiting, process, log)
        on_disk = {str(path.relative_to(lake.root)) for path in parquet_on_disk(tmp_path / "lake")}
        (unlisted,) = on_disk - set(lake.manifest())
        kill(process)
    assert sorted(lake_ids(tmp_path / "lake")) == sorted(uri_id(n) for n in FIRST)
    assert cursor(tmp_path).time_us == first_us

    restart(config, tmp_path)
    ids = lake_ids(tmp_path / "lake")
    assert sorted(ids) == sorted(uri_id(n) for n in range(1, 21))  # each once
    assert unlisted not in lake.manifest()  # the killed run's file is read by no one
    assert_runs(tmp_path, new_on_restart=10)


def test_killed_after_the_posts_are_listed_before_the_cursor_is_saved(tmp_path, network, streams):
    jetstream = network[0]
    process, log, config, _ = stream_first_posts(tmp_path, network, streams)
    cursors = tmp_path / "lake" / "_state" / "cursors.json"
    saved = cursors.read_bytes()
    cursors.unlink()
    os.mkfifo(cursors)  # the cursor save reads it first (under the state lock): it waits there
    last_us = jetstream.publish(*(tagged(n) for n in range(11, 21)))[-1]["time_us"]
    wait_for(lambda: len(lake_ids(tmp_path / "lake")) > len(FIRST), process, log)
    kill(process)
    assert stat.S_ISFIFO(cursors.stat().st_mode)  # the cursor save never finished
    landed = lake_ids(tmp_path / "lake")
    cursors.unlink()
    cursors.write_bytes(saved)  # as the killed run left it: posts 1-10's cursor
    assert len(FIRST) < len(landed) == len(set(landed)) <= 20

    restart(config, tmp_path)
    ids = lake_ids(tmp_path / "lake")
    assert sorted(ids) == sorted(uri_id(n) for n in range(1, 21))  # the replayed ones not twice
    assert cursor(tmp_path).time_us == last_us
    assert_runs(tmp_path, new_on_restart=20 - len(landed))


def test_killed_with_deletions_written_but_not_listed(tmp_path, network, streams):
    jetstream, appview = network
    process, log, config, first_us = stream_first_posts(tmp_path, network, streams)
    analyze(load_config(config), backend=EchoBackend(), encoder=CountingEncoder())
    assert in_views(tmp_path) == {uri_id(n) for n in FIRST}
    lake = Lake(str(tmp_path / "lake"))
    edit = post_event(5, 5 % 4, f"post 5, edited, #{TAG}", facet_tags=(TAG,), operation="update")
    waiting = waiting_for_the_state_lock(log)
    with lake.lock("state"):
        # posts 2 and 3 deleted (held), 99 (never held), post 5 edited (held: no new file, so
        # the first thing of the flush to wait for the lock is the deletions' listing)
        jetstream.publish(delete_event(2, 2), delete_event(3, 3), delete_event(99, 3), edit)
        wait_for(waiting, process, log)
        assert len(list((tmp_path / "lake" / "deletions").rglob("*.parquet"))) == 1
        kill(process)
    facts = FactLog(lake, DELETIONS)
    assert facts.entries() == {}  # the fact file is not listed: no one reads it
    assert cursor(tmp_path).time_us == first_us

    # while the stream is down: post 11, and post 13 with its deletion (one flush at the end of
    # the restart holds both: it never lands)
    jetstream.publish(tagged(11), tagged(13), delete_event(13, 1))
    write_config(tmp_path, jetstream, appview, flush_seconds="3600")
    restart(config, tmp_path)
    assert sorted(lake_ids(tmp_path / "lake")) == sorted(uri_id(n) for n in [*FIRST, 11])
    deleted = facts.read(facts.pending("nowhere"), ["post_id"]).column(0).to_pylist()
    assert sorted(deleted) == sorted([uri_id(2), uri_id(3)])  # recorded once, by the restart

    analyze(load_config(config), backend=EchoBackend(), encoder=CountingEncoder())
    assert in_views(tmp_path) == {uri_id(n) for n in (1, 4, 5, 6, 7, 8, 9, 10, 11)}
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        sql = "SELECT text FROM posts_enriched WHERE post_id = ?"
        (text,) = warehouse.query(sql, [uri_id(5)]).column(0).to_pylist()
    assert text == tagged(5)["commit"]["record"]["text"]  # an edit keeps the first text
    assert_runs(tmp_path, new_on_restart=1)
