"""`python -m flows stream` as users run it, against a local Jetstream and AppView: a post is in
the warehouse's views while the stream still runs, a deleted post leaves them, Ctrl+C flushes and
exits 130, `--duration` exits 0, and `kill -9` then a restart gives exact counts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_jetstream import FakeAppView, FakeJetstream, delete_event, did, post_event

from flows.lake.lake import Lake
from flows.lake.runs import RunLog
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse

ROOT = Path(__file__).parent.parent
TAG = "dataengineering"


def write_config(tmp_path: Path, jetstream: FakeJetstream, appview: FakeAppView, **stream) -> Path:
    settings = {"sources": "jetstream", "flush_seconds": "0.2", "analyze_seconds": "0", **stream}
    config = tmp_path / "configuration.conf"
    config.write_text(
        f"[pipeline]\nlake = {tmp_path / 'lake'}\nwarehouse = duckdb:///{tmp_path / 'w.duckdb'}\n"
        "[stream]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        + f"[jetstream]\nurls = {jetstream.url}\nappview_url = {appview.url}/xrpc\n"
    )
    return config


def start(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flows", "stream", "--config", str(config), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def stream_for(config: Path, seconds: int) -> None:
    """`python -m flows stream --duration`, to its end: it flushes and exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", "flows", "stream", "--config", str(config),
         "--duration", str(seconds)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def wait_for(condition, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def tagged(n: int) -> dict:
    return post_event(n, n % 4, f"post {n} on pipelines #{TAG}", facet_tags=(TAG,))


def lake_ids(tmp_path: Path) -> list[str]:
    lake = Lake(str(tmp_path / "lake"))
    return [
        post_id
        for path in lake.manifest()
        for post_id in lake.read_posts(path, ["post_id"]).column(0).to_pylist()
    ]


def in_views(tmp_path: Path) -> set[str]:
    path = tmp_path / "w.duckdb"
    if not path.exists():
        return set()
    with DuckDBWarehouse(path) as warehouse:
        rows = warehouse.query("SELECT post_id FROM posts_enriched").column(0).to_pylist()
    return set(rows)


def uri_id(n: int) -> str:
    return f"bluesky:at://{did(n % 4)}/app.bsky.feed.post/3mmoojp{n:06d}"


@pytest.fixture
def network():
    profiles = {did(a): f"a{a}.test" for a in range(4)}
    with FakeJetstream() as jetstream, FakeAppView(profiles) as appview:
        yield jetstream, appview


def test_a_post_reaches_the_views_while_the_stream_runs_and_a_deleted_one_leaves(tmp_path, network):
    jetstream, appview = network
    config = write_config(tmp_path, jetstream, appview, analyze_seconds="0.5")
    process = start(config)
    try:
        wait_for(lambda: jetstream.connections, what="the connection")
        jetstream.publish(tagged(1), post_event(2, 1, "no tag here"), tagged(3))
        wait_for(lambda: in_views(tmp_path) == {uri_id(1), uri_id(3)}, what="posts in the views")
        assert process.poll() is None  # still streaming
        jetstream.publish(delete_event(4, 3))  # of a post we never had: nothing happens
        jetstream.publish(delete_event(3, 3))
        wait_for(lambda: in_views(tmp_path) == {uri_id(1)}, what="the deletion in the views")
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, out
    assert "| jetstream |" in out
    (run,) = RunLog(Lake(str(tmp_path / "lake"))).read(
        RunLog(Lake(str(tmp_path / "lake"))).pending("nowhere")
    ).to_pylist()
    assert (run["status"], run["posts_new"], run["events"]) == ("stopped", 2, 5)


def test_ctrl_c_flushes_what_waits_and_duration_exits_0(tmp_path, network):
    jetstream, appview = network
    config = write_config(tmp_path, jetstream, appview, flush_seconds="3600")  # only at the end
    process = start(config)
    try:
        wait_for(lambda: jetstream.connections, what="the connection")
        jetstream.publish(*(tagged(n) for n in range(1, 6)))
        wait_for(lambda: jetstream.sent == 5, what="the events sent")
        time.sleep(0.5)  # read by the source (it waits up to 0.5 s for handles)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, out
    assert sorted(lake_ids(tmp_path)) == sorted(uri_id(n) for n in range(1, 6))
    # the next run resumes from the cursor the flush saved, and ends by itself
    stream_for(config, 2)
    assert "cursor" in jetstream.connections[-1]
    assert len(lake_ids(tmp_path)) == 5


def test_kill_9_then_a_restart_loses_nothing_and_duplicates_nothing(tmp_path):
    posts = [tagged(n) for n in range(1, 121)]
    noise = [post_event(n, 1, "nothing to see") for n in range(121, 241)]
    events = sorted(posts + noise, key=lambda e: e["time_us"])
    profiles = {did(a): f"a{a}.test" for a in range(4)}
    with FakeJetstream(pace=0.01) as jetstream, FakeAppView(profiles) as appview:
        config = write_config(tmp_path, jetstream, appview)
        process = start(config)
        try:
            wait_for(lambda: jetstream.connections, what="the connection")
            jetstream.publish(*events)
            wait_for(lambda: len(lake_ids(tmp_path)) >= 20, what="some flushes")
            os.kill(process.pid, signal.SIGKILL)
            process.wait(30)
        finally:
            process.kill()
        landed = len(lake_ids(tmp_path))
        assert 20 <= landed < 120  # killed in the middle
        stream_for(config, 8)
    ids = lake_ids(tmp_path)
    assert len(ids) == len(set(ids)) == 120


def test_killed_before_its_first_flush_the_restart_replays_from_the_start(tmp_path, network):
    jetstream, appview = network
    config = write_config(tmp_path, jetstream, appview, flush_seconds="3600")
    process = start(config)
    try:
        wait_for(lambda: jetstream.connections, what="the connection")
        jetstream.publish(*(tagged(n) for n in range(1, 11)))
        wait_for(lambda: jetstream.sent == 10, what="the events sent")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        process.kill()
    assert lake_ids(tmp_path) == []  # nothing had landed: the buffer died with the process
    jetstream.publish(tagged(11))  # while it was down
    stream_for(config, 3)
    assert sorted(lake_ids(tmp_path)) == sorted(uri_id(n) for n in range(1, 12))
