"""The stream stage (`flows.stages.stream`) over a scripted streaming source: flushes, cursors,
deletions of held posts, posts deleted before their flush, run records, analyze while it runs.

The sources themselves, against local servers that answer as Jetstream and Mastodon do, are
tested in test_source_jetstream.py and test_source_mastodon_stream.py; the whole path with a
killed process in test_stream_live.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import ClassVar

from conftest import EchoBackend, make_post

from flows.config import Config, PipelineConfig, StreamConfig
from flows.cursors import JetstreamCursor
from flows.lake.facts import DELETIONS, FactLog
from flows.lake.lake import Lake
from flows.lake.runs import RunLog
from flows.sources.base import StreamItem, StreamStats
from flows.stages.stream import run_stream
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse


class ScriptedStream:
    """A streaming source that plays `script` (one item per event, its cursor the event's
    number) from the cursor on, then idles until stopped, as a quiet live stream does."""

    name: ClassVar[str] = "jetstream"

    def __init__(self, script: list[tuple[str, object]], pause: float = 0.0) -> None:
        self.script = script
        self.pause = pause
        self.stats = StreamStats()

    def first_cursor(self) -> JetstreamCursor:
        return JetstreamCursor(0)

    def stream(self, hashtag: str, cursor: JetstreamCursor, stop: threading.Event) -> Iterator:
        for n, (what, value) in enumerate(self.script, start=1):
            if cursor.time_us is not None and n <= cursor.time_us:
                continue
            if what == "wait":  # until the test says go on (nothing to yield meanwhile)
                value.wait(30)
            self.stats.events += 1
            at = JetstreamCursor(n)
            if what == "post":
                post = value if isinstance(value, dict) else make_post(value, source="bluesky")
                yield StreamItem(at, post=post, event_time=time.time())
            elif what == "account deleted":
                yield StreamItem(at, deleted_author=value, event_time=time.time())
            elif what == "delete":
                yield StreamItem(at, deleted=f"bluesky:{value}", event_time=time.time())
            else:
                yield StreamItem(at)
            time.sleep(self.pause)
        while not stop.wait(0.05):
            pass


def config(tmp_path, **stream) -> Config:
    return Config(
        pipeline=PipelineConfig(
            sources=("sample",), lake=str(tmp_path / "lake"),
            warehouse=f"duckdb:///{tmp_path / 'w.duckdb'}",
        ),
        stream=StreamConfig(**{"flush_seconds": 0.2, "analyze_seconds": 0, **stream}),
    )


def lake_ids(lake: Lake) -> list[str]:
    return sorted(
        post_id
        for path in lake.manifest()
        for post_id in lake.read_posts(path, ["post_id"]).column(0).to_pylist()
    )


def test_posts_land_with_their_cursor_and_deletions_of_held_posts_are_recorded(tmp_path):
    script = [("post", 1), ("post", 2), ("post", 3), ("tick", None), ("delete", 2),
              ("delete", 99), ("post", 4), ("delete", 4)]
    report = run_stream(  # posts 1-3 flush at once (flush_posts), before the deletes come
        config(tmp_path, flush_seconds=60, flush_posts=3), duration=1.0,
        sources={"jetstream": ScriptedStream(script)},
    )
    lake = Lake(str(tmp_path / "lake"))
    # post 4 was deleted before its flush: it never lands; 99 was never held: no record
    assert lake_ids(lake) == ["bluesky:1", "bluesky:2", "bluesky:3"]
    facts = FactLog(lake, DELETIONS)
    deleted = facts.read(facts.pending("nowhere")).to_pylist()
    assert [(row["post_id"], row["how"]) for row in deleted] == [("bluesky:2", "stream")]
    assert lake.read_cursor("jetstream", "dataengineering") == JetstreamCursor(8)
    source = report.sources["jetstream"]
    assert (source.events, source.posts, source.new, source.deleted, source.dropped) == (8, 4, 3, 1, 1)
    (run,) = RunLog(lake).read(RunLog(lake).pending("nowhere")).to_pylist()
    assert (run["source"], run["status"], run["events"], run["posts_new"]) == ("jetstream", "ok", 8, 3)


def test_a_second_run_replays_nothing_twice_and_holds_posts_across_runs(tmp_path):
    script = [("post", 1), ("post", 2)]
    run_stream(config(tmp_path), duration=0.5, sources={"jetstream": ScriptedStream(script)})
    # the source replays a few events before the cursor (as Jetstream's rewind does)
    script += [("post", 3), ("delete", 1)]
    replaying = ScriptedStream(script)
    replaying.stream = _rewound(replaying.stream, by=2)
    report = run_stream(config(tmp_path), duration=0.5, sources={"jetstream": replaying})
    lake = Lake(str(tmp_path / "lake"))
    assert lake_ids(lake) == ["bluesky:1", "bluesky:2", "bluesky:3"]
    source = report.sources["jetstream"]
    # post 1 came again, then its delete before the flush: out of the buffer, and recorded as a
    # deletion since the lake holds it from run one; post 2 landed again as a duplicate
    assert (source.new, source.duplicates, source.dropped, source.deleted) == (1, 1, 1, 1)


def _rewound(stream, by: int):
    def replay(hashtag, cursor, stop):
        return stream(hashtag, JetstreamCursor(max((cursor.time_us or 0) - by, 0)), stop)

    return replay


def test_flush_posts_flushes_before_flush_seconds(tmp_path):
    script = [("post", n) for n in range(10)]
    flushed_at: list[int] = []
    lake = Lake(str(tmp_path / "lake"))
    source = ScriptedStream(script, pause=0.05)
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            flushed_at.append(len(lake.manifest()))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run_stream(
            config(tmp_path, flush_seconds=60, flush_posts=3), duration=1.0,
            sources={"jetstream": source},
        )
    finally:
        stop.set()
        watcher.join()
    assert max(flushed_at) >= 3  # three flushes of three landed during the run, not one at the end
    assert len(lake_ids(lake)) == 10


def test_analyze_runs_while_streaming_and_deleted_posts_leave_the_views(tmp_path):
    analyzed, stop = threading.Event(), threading.Event()
    seen: list[int] = []

    def count_in_views(report) -> None:
        with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
            sql = "SELECT COUNT(*) AS n FROM posts_enriched"
            seen.append(warehouse.query(sql).column(0)[0].as_py())
        analyzed.set()
        if source.stats.events == 5:  # the delete came before this analyze
            stop.set()

    # three posts; once they are on the views, post 3 is deleted; the next analyze shows it
    source = ScriptedStream(
        [("post", 1), ("post", 2), ("post", 3), ("wait", analyzed), ("delete", 3)]
    )
    report = run_stream(
        config(tmp_path, analyze_seconds=0.3), duration=120, stop=stop,
        sources={"jetstream": source}, backend=EchoBackend(), on_analyze=count_in_views,
    )
    assert stop.is_set() and report.analyses == len(seen) >= 2
    assert seen[0] == 3  # posts reach the views while the stream runs
    assert seen[-1] == 2  # and the deleted one leaves them


def by(author: str, n: int) -> dict:
    uri = f"at://did:plc:{author}/app.bsky.feed.post/{n}"
    return make_post(n, source="bluesky", post_id=f"bluesky:{uri}", native_id=uri)


def test_a_deleted_account_takes_its_held_posts_with_it(tmp_path):
    script = [
        ("post", by("ann", 1)), ("post", by("ann", 2)), ("post", by("bob", 3)),  # a flush
        ("post", by("bob", 4)),
        ("account deleted", "bluesky:at://did:plc:ann/"),
        ("account deleted", "bluesky:at://did:plc:bob/"),  # post 4 waits: it never lands
        ("account deleted", "bluesky:at://did:plc:cyd/"),  # never held: nothing
    ]
    report = run_stream(
        config(tmp_path, flush_seconds=60, flush_posts=3), duration=1.0,
        sources={"jetstream": ScriptedStream(script)},
    )
    lake = Lake(str(tmp_path / "lake"))
    facts = FactLog(lake, DELETIONS)
    deleted = sorted(row["post_id"] for row in facts.read(facts.pending("nowhere")).to_pylist())
    assert deleted == sorted(by(a, n)["post_id"] for a, n in (("ann", 1), ("ann", 2), ("bob", 3)))
    assert lake_ids(lake) == sorted(by(a, n)["post_id"] for a, n in (("ann", 1), ("ann", 2), ("bob", 3)))
    assert (report.sources["jetstream"].deleted, report.sources["jetstream"].dropped) == (3, 1)
