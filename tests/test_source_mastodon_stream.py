"""The mastodon-stream source against local fake instances that stream as Mastodon does:
events mapped, heartbeats, tokens, a drop in the middle read back from the timeline, stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Self

import pytest
from fake_apis import Reply, serving
from fake_mastodon_stream import STREAM_PATH, FakeMastodonStream
from fake_networks import mastodon_status

from flows.cursors import WalkCursor
from flows.settings import ConfigError
from flows.sources.base import SourceError, StreamItem
from flows.sources.mastodon import MastodonSettings, status_to_post
from flows.sources.mastodon_stream import MastodonStreamSource, sse_events

TAG = "dataengineering"
ENV = "TEST_MASTODON_TOKENS"
FAST = {"backoff": 0.01, "max_backoff": 0.05, "attempts": 2}  # reconnects and retries at once


def status(local_id: int, n: int | None = None, **extra: Any) -> dict[str, Any]:
    """A status of the hashtag, local id `local_id` on the instance (the polling fixtures')."""
    return mastodon_status(local_id, "social.example", local_id if n is None else n, **extra)


def post_id(status: dict[str, Any]) -> str:
    return f"mastodon:{status['uri']}"


def source(*fakes: FakeMastodonStream, **options: Any) -> MastodonStreamSource:
    settings = MastodonSettings(instances=tuple(f.url for f in fakes), access_token_env=ENV)
    return MastodonStreamSource(settings, **{**FAST, **options})


class Run:
    """The source's stream in a thread, as the stream stage runs it; stopped on exit."""

    def __init__(self, source: MastodonStreamSource, cursor: WalkCursor | None = None) -> None:
        self.source = source
        self.items: list[StreamItem] = []
        self.error: Exception | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._consume, args=(cursor or WalkCursor(),))

    def _consume(self, cursor: WalkCursor) -> None:
        try:
            for item in self.source.stream(TAG, cursor, self.stop):
                self.items.append(item)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    @property
    def posts(self) -> list[dict[str, Any]]:
        return [item.post for item in self.items if item.post]

    def wait(self, done: Callable[[Run], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not done(self):
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"timed out; items: {self.items}"
            time.sleep(0.01)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.fixture
def token(monkeypatch) -> str:
    monkeypatch.setenv(ENV, "token-1")
    return "token-1"


def test_updates_edits_and_deletes_are_mapped(token):
    fake = FakeMastodonStream([status(1), status(2)], token=token)
    with serving(fake), Run(source(fake)) as run:
        # a first run reads the timeline's newest page, then streams
        run.wait(lambda r: len(r.posts) == 2 and r.items[-1].cursor.floors)
        fake.publish(status(3))
        fixed = "<p>fixed #dataengineering</p>"
        edited = status(3, content=fixed, edited_at="2026-11-20T09:00:00Z")
        fake.edit(edited)
        fake.delete("2")  # read from the timeline
        fake.delete("3")  # read from the stream
        fake.delete("99")  # never seen: left to the refresh
        run.wait(lambda r: sum(item.deleted is not None for item in r.items) == 2)
        run.wait(lambda r: r.source.stats.events == 5)
    assert [p["post_id"] for p in run.posts] == [post_id(status(n)) for n in (2, 1, 3, 3)]
    assert [p["source"] for p in run.posts] == ["mastodon"] * 4
    assert run.posts[3]["text"] == "fixed #dataengineering"
    streamed = {**run.posts[2], "collected_at": None}
    polled = status_to_post(status(3), TAG, datetime.now(UTC))
    assert streamed == {**polled, "collected_at": None}  # as the polling source maps it
    deleted = [item.deleted for item in run.items if item.deleted]
    assert deleted == [post_id(status(2)), post_id(status(3))]
    assert run.source.unmapped_deletes == 1
    # the timeline's items keep the old floor until the whole gap is in; the stream moves it
    with_posts = [item for item in run.items if item.post]
    assert [item.cursor.floors.get(fake.url) for item in with_posts] == [None, None, "3", "3"]
    assert run.items[-1].cursor.floors == {fake.url: "3"}
    assert with_posts[3].event_time == datetime(2026, 11, 20, 9, tzinfo=UTC).timestamp()
    assert all(r.headers["authorization"] == "Bearer token-1" for r in fake.requests)
    # the timeline's pages are counted; the stream is not
    timeline = [r for r in fake.requests if r.path.startswith("/api/v1/timelines")]
    assert run.source.stats.usage.requests == len(timeline) == 2


def test_heartbeats_keep_the_cursor_coming(token):
    fake = FakeMastodonStream([status(1)], token=token)
    with serving(fake), Run(source(fake)) as run:
        run.wait(lambda r: r.items and r.items[-1].cursor.floors)
        for _ in range(6):
            fake.heartbeat()
            time.sleep(0.25)
        run.wait(lambda r: len(r.items) >= 3)
    bare = [item for item in run.items if item.post is None and item.deleted is None]
    assert len(bare) >= 2  # the floor after the timeline, then a heartbeat a second later
    assert all(item.cursor.floors == {fake.url: "1"} for item in bare)
    assert run.source.stats.events == 0  # heartbeats are not events


def test_a_refused_token_stops_with_the_instance_and_the_fix(monkeypatch):
    monkeypatch.setenv(ENV, "stale-token")
    fake = FakeMastodonStream([status(1)], token="token-1")
    with serving(fake), Run(source(fake)) as run:
        run.thread.join(5)
    assert isinstance(run.error, SourceError)
    message = str(run.error)
    assert fake.url in message and "401" in message and "Invalid access token" in message
    assert "read:statuses" in message and "access_token_env" in message
    assert "stale-token" not in message
    assert not any(r.path.startswith("/api/v1/timelines") for r in fake.requests)


def test_tokens_per_instance(monkeypatch):
    instances = ("https://a.example", "https://b.example", "https://c.example")
    settings = MastodonSettings(instances=instances, access_token_env=ENV)
    monkeypatch.setenv(ENV, "one-for-all")
    assert {k: v.reveal() for k, v in settings.tokens().items()} == dict.fromkeys(
        instances, "one-for-all"
    )
    monkeypatch.setenv(ENV, "https://a.example=ta  b.example/=tb\n")
    assert {k: v.reveal() for k, v in settings.tokens().items()} == {
        "https://a.example": "ta",
        "https://b.example": "tb",
    }
    monkeypatch.setenv(ENV, "https://a.example=ta https://d.example=td")
    with pytest.raises(ConfigError, match=r"https://d\.example has a token but is not in"):
        settings.tokens()
    monkeypatch.setenv(ENV, "https://a.example=ta bare-secret")
    with pytest.raises(ConfigError, match="item 2 of that variable") as refused:
        settings.tokens()
    assert "bare-secret" not in str(refused.value)
    monkeypatch.setenv(ENV, " ")
    with pytest.raises(ConfigError, match=f"{ENV}: the environment variable {ENV} is not set"):
        MastodonStreamSource(settings)  # a stream checks its tokens before it starts
    with pytest.raises(ValueError, match="name an environment variable") as named:
        MastodonSettings(access_token_env="abc-def.123")
    assert "abc-def" not in str(named.value)
    polling_only = MastodonSettings(instances=instances)
    assert polling_only.tokens() == {}  # polling needs none
    with pytest.raises(ConfigError, match="access_token_env is empty"):
        MastodonStreamSource(polling_only)


def test_only_instances_with_a_token_stream(monkeypatch):
    with serving(FakeMastodonStream([status(1)]), FakeMastodonStream([status(2)])) as fakes:
        polled, streamed = fakes
        monkeypatch.setenv(ENV, f"{streamed.url}=token-1")
        with Run(source(polled, streamed)) as run:
            run.wait(lambda r: r.items and r.items[-1].cursor.floors)
    assert [p["post_id"] for p in run.posts] == [post_id(status(2))]
    assert polled.requests == []


def test_a_drop_in_the_middle_is_read_back_from_the_timeline(token):
    fake = FakeMastodonStream([status(1)], token=token)
    with serving(fake), Run(source(fake)) as run:
        run.wait(lambda r: r.items and r.items[-1].cursor.floors)
        fake.publish(status(2))
        run.wait(lambda r: len(r.posts) == 2)
        fake.drop(missed=[status(3), status(4)])
        fake.wait_opened(2)
        run.wait(lambda r: len(r.posts) == 4 and r.items[-1].cursor.floors[fake.url] == "4")
        fake.publish(status(5))
        run.wait(lambda r: len(r.posts) == 5)
    assert [p["post_id"] for p in run.posts] == [post_id(status(n)) for n in (1, 2, 4, 3, 5)]
    timeline = [r.query for r in fake.requests if r.path.startswith("/api/v1/timelines")]
    walks = [q.get("since_id") for q in timeline if "max_id" not in q]  # each walk's 1st page
    assert walks == [None, "2"]
    assert run.source.stats.reconnects == 1
    assert run.source.stats.gaps == []
    assert run.items[-1].cursor.floors == {fake.url: "5"}


def test_a_failing_stream_is_retried_and_an_unreadable_gap_recorded(token):
    last_run = datetime(2026, 11, 20, 8, 1, tzinfo=UTC)
    with serving(FakeMastodonStream([status(1), status(2)], token=token)) as (fake,):
        cursor = WalkCursor({fake.url: "1"}, newest_time=last_run)
        fake.fail(Reply(503, {"error": "busy"}), when=lambda r: r.path == STREAM_PATH)
        fake.fail(Reply(500, {}), when=lambda r: r.path.startswith("/api/v1/timelines"), times=2)
        with Run(source(fake), cursor) as run:
            fake.wait_opened(1)
            fake.publish(status(3))
            run.wait(lambda r: len(r.posts) == 1)
    assert run.source.stats.reconnects == 1
    ((start, end),) = run.source.stats.gaps  # status 2 is lost: the timeline failed twice
    assert start == last_run and end <= datetime.now(UTC)
    assert [p["post_id"] for p in run.posts] == [post_id(status(3))]
    assert run.source.stats.usage.retries == 1


def test_a_stream_on_another_host_gets_the_token(token):
    with serving(FakeMastodonStream(token=token)) as (streaming,):
        fake = FakeMastodonStream([status(1)], stream_at=streaming)
        with serving(fake), Run(source(fake)) as run:
            streaming.wait_opened(1)
            streaming.publish(status(2))
            run.wait(lambda r: len(r.posts) == 2)
    assert [p["post_id"] for p in run.posts] == [post_id(status(1)), post_id(status(2))]


def test_stop_is_noticed_within_a_second(token):
    with serving(FakeMastodonStream([status(1)], token=token)) as (fake,):
        run = Run(source(fake)).__enter__()
        fake.wait_opened(1)
        run.wait(lambda r: r.items and r.items[-1].cursor.floors)
        started = time.monotonic()
        run.__exit__()
        assert time.monotonic() - started < 1.2  # about a second, on a busy machine too
        threads = [t for t in threading.enumerate() if t.name.startswith("mastodon-stream")]
        assert not threads  # the instance's thread is gone too: its socket was shut


def test_server_sent_events_are_parsed_as_the_standard_says():
    lines = [":)", "event: update", 'data:{"a":', "data: 1}", "", "event: x", "", "data: 2", ""]
    assert list(sse_events(lines)) == [(None, ")"), ("update", '{"a":\n1}'), ("message", "2")]
