"""The jetstream source against a local Jetstream and AppView: matching, deletes, handles,
reconnects from the cursor, gaps, stop, settings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fake_apis import FakeTime, Reply
from fake_jetstream import (
    POST,
    T0_US,
    FakeAppView,
    FakeJetstream,
    account_event,
    delete_event,
    did,
    identity_event,
    like_event,
    post_event,
    rkey,
)

from flows.config import parse_section
from flows.cursors import JetstreamCursor
from flows.settings import ConfigError
from flows.sources.base import SourceError, StreamItem
from flows.sources.jetstream import PUBLIC_INSTANCES, JetstreamSettings, JetstreamSource

TAG = "dataengineering"
START = JetstreamCursor(T0_US - 1)  # before every event of the fakes' logs


def post_id(n: int, author: int) -> str:
    return f"bluesky:at://{did(author)}/{POST}/{rkey(n)}"


def tagged(n: int, author: int = 1, **more) -> dict:
    return post_event(n, author, f"Post {n} on #{TAG} pipelines", facet_tags=(TAG,), **more)


def source(jetstream: FakeJetstream, appview: FakeAppView, **more) -> JetstreamSource:
    settings = JetstreamSettings(
        urls=more.pop("urls", (jetstream.url,)), appview_url=f"{appview.url}/xrpc", **more
    )
    return JetstreamSource(settings, **FakeTime().options())


def run(
    src: JetstreamSource,
    until: Callable[[list[StreamItem]], bool],
    cursor: JetstreamCursor = START,
    timeout: float = 10.0,
) -> list[StreamItem]:
    """Stream in a thread, as the stage does, until `until(items)`; then stop it."""
    items: list[StreamItem] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            for item in src.stream(TAG, cursor, stop):
                items.append(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=consume)
    thread.start()
    deadline = time.monotonic() + timeout
    while not until(items) and not errors and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(5)
    assert not thread.is_alive(), "the stream did not notice stop"
    if errors:
        raise errors[0]
    assert until(items), f"timed out; got {items}"
    return items


def posts(items: list[StreamItem]) -> list[dict]:
    return [item.post for item in items if item.post]


def count_posts(n: int) -> Callable[[list[StreamItem]], bool]:
    return lambda items: len({p["post_id"] for p in posts(items)}) >= n


@pytest.fixture
def appview():
    with FakeAppView({did(a): f"author{a}.bsky.social" for a in range(100)}) as api:
        yield api


def test_tags_in_facets_record_tags_any_case_and_nothing_else(appview) -> None:
    events = [
        tagged(1),
        post_event(2, 2, "Tagged in the record only", tags=("DataEngineering",)),
        post_event(3, 3, "Shouting #DATAENGINEERING", facet_tags=("DATAENGINEERING",)),
        post_event(4, 4, "Plain text #dataengineering without a facet is no tag"),
        post_event(5, 5, "Another #topic", facet_tags=("topic",), tags=("dataengineeringjobs",)),
        post_event(6, 6, f"A chat message #{TAG}", facet_tags=(TAG,), collection="x.chat.msg"),
        like_event(7, 7, subject=1),
        account_event(8, 1),
        tagged(9, 2, operation="update"),
        tagged(10, 3),  # the end marker
    ]
    with FakeJetstream(events) as jetstream:
        src = source(jetstream, appview)
        items = run(src, count_posts(5))
    got = {p["post_id"]: p for p in posts(items)}
    assert list(got) == [post_id(n, a) for n, a in ((1, 1), (2, 2), (3, 3), (9, 2), (10, 3))]
    assert jetstream.connections[0]["wantedCollections"] == [POST]
    assert src.stats.events == len(events) - 2  # the instance sends no chat message, no like
    first = got[post_id(1, 1)]
    uri = f"at://{did(1)}/{POST}/{rkey(1)}"
    assert first == first | {
        "source": "bluesky",
        "native_id": uri,
        "hashtag": TAG,
        "author_handle": "author1.bsky.social",
        "author_name": "Name of author1.bsky.social",
        "url": f"https://bsky.app/profile/author1.bsky.social/post/{rkey(1)}",
        "text": f"Post 1 on #{TAG} pipelines",
        "hashtags": [TAG],
        "lang": "en",
        "like_count": None,
        "created_at": datetime(2026, 5, 25, 14, 23, 28, 757000, tzinfo=UTC),
    }
    assert got[post_id(2, 2)]["hashtags"] == [TAG]
    post_item = next(item for item in items if item.post)
    assert post_item.event_time == pytest.approx((T0_US + 1000) / 1e6)
    assert post_item.cursor.time_us == T0_US + 1000


def test_other_collections_ignored_when_the_server_sends_them(appview) -> None:
    events = [
        post_event(1, 1, f"Chat #{TAG}", facet_tags=(TAG,), collection="x.chat.msg"),
        like_event(2, 2, subject=1),
        delete_event(3, 1, collection="app.bsky.feed.like"),
        tagged(4),
    ]
    with FakeJetstream(events, filter_collections=False) as jetstream:
        src = source(jetstream, appview)
        items = run(src, count_posts(1))
    assert [p["post_id"] for p in posts(items)] == [post_id(4, 1)]
    assert not [item for item in items if item.deleted]
    assert src.stats.events == 4


def test_every_post_delete_is_reported(appview) -> None:
    events = [tagged(1), delete_event(2, 1), delete_event(3, 9), tagged(4)]
    with FakeJetstream(events) as jetstream:
        items = run(source(jetstream, appview), count_posts(2))
    kinds = [
        ("post", i.post["post_id"]) if i.post else ("deleted", i.deleted)
        for i in items
        if i.post or i.deleted
    ]
    # in the stream's order; the stage keeps the deletes of posts it holds
    assert kinds == [
        ("post", post_id(1, 1)),
        ("deleted", f"bluesky:at://{did(1)}/{POST}/{rkey(2)}"),
        ("deleted", f"bluesky:at://{did(9)}/{POST}/{rkey(3)}"),
        ("post", post_id(4, 1)),
    ]


def test_handles_resolved_in_batches_cached_and_kept_current(appview) -> None:
    # 30 authors at once: two calls (25 + 5); their next posts ask nothing more
    first = [tagged(n, author=n) for n in range(30)]
    again = [tagged(100 + n, author=n) for n in range(30)]
    renamed = [identity_event(200, 3, handle="renamed.example.com"), tagged(201, 3)]
    rehomed = [identity_event(202, 4), tagged(203, 4)]  # no handle: ask again
    unknown = [tagged(204, 999)]
    events = first + again + renamed + rehomed + unknown
    with FakeJetstream(events) as jetstream:
        src = source(jetstream, appview)
        items = run(src, count_posts(63))
    calls = appview.calls()
    assert len(calls[0]) == 25 and all(len(call) <= 25 for call in calls)
    asked = sorted(a for call in calls for a in call)
    # each author once (cached), but author 4 again after an identity event without a handle
    assert asked == sorted([did(n) for n in range(30)] + [did(4), did(999)])
    assert src.stats.usage.requests == len(calls)
    by_id = {p["post_id"]: p for p in posts(items)}
    assert by_id[post_id(129, 29)]["author_handle"] == "author29.bsky.social"
    assert by_id[post_id(201, 3)]["author_handle"] == "renamed.example.com"
    assert by_id[post_id(203, 4)]["author_handle"] == "author4.bsky.social"
    # not known to the AppView: the DID is the handle, and the post is kept
    assert by_id[post_id(204, 999)]["author_handle"] == did(999)
    assert by_id[post_id(204, 999)]["url"].endswith(f"/profile/{did(999)}/post/{rkey(204)}")
    # posts waiting for handles keep the stream's order
    times = [item.cursor.time_us for item in items]
    assert times == sorted(times)


def test_appview_failing_keeps_the_posts_with_dids(appview, caplog) -> None:
    appview.fail(Reply(503, {"error": "Unavailable"}), times=10)
    with FakeJetstream([tagged(1, 5), tagged(2, 6)]) as jetstream:
        src = source(jetstream, appview)
        with caplog.at_level(logging.WARNING, "flows.sources.jetstream"):
            items = run(src, count_posts(2))
    assert [p["author_handle"] for p in posts(items)] == [did(5), did(6)]
    assert src.stats.usage.requests == 2 and src.stats.usage.retries == 1  # one call, 2 tries
    assert "cannot look up authors' handles" in caplog.text


def test_disconnect_reconnects_from_cursor_minus_rewind_and_misses_nothing(appview) -> None:
    events = [tagged(n, author=n % 3) if n % 2 else like_event(n, 1, 1) for n in range(1, 41)]
    events += [account_event(41, 1), tagged(43)]
    wanted = {post_id(n, n % 3) for n in range(1, 41, 2)} | {post_id(43, 1)}
    with FakeJetstream(events, cut_after=[7]) as jetstream:
        src = source(jetstream, appview, rewind_seconds=0.004)
        items = run(src, lambda items: {p["post_id"] for p in posts(items)} >= wanted)
    assert src.stats.reconnects == 1
    assert src.stats.gaps == []
    first, second = jetstream.connections
    assert first["cursor"] == [str(START.time_us - 4000)]
    # the 7th event sent was post 13 (likes are not sent): resume 4 ms (4 events) before it
    assert second["cursor"] == [str(T0_US + 13 * 1000 - 4000)]
    assert second["wantedCollections"] == [POST]
    assert len(posts(items)) > len(wanted)  # the replay came twice; the lake drops it


def test_gap_recorded_when_the_instance_cannot_replay(appview, caplog) -> None:
    events = [tagged(n) for n in range(1, 6)]
    floor = T0_US + 3000  # the instance keeps nothing older
    saved = JetstreamCursor(T0_US - 60_000_000)  # a minute before its first event
    with FakeJetstream(events, floor_us=floor) as jetstream:
        src = source(jetstream, appview)
        with caplog.at_level(logging.WARNING, "flows.sources.jetstream"):
            items = run(src, count_posts(3), cursor=saved)
    assert [p["post_id"] for p in posts(items)] == [post_id(n, 1) for n in (3, 4, 5)]
    assert src.stats.gaps == [
        (
            datetime.fromtimestamp(saved.time_us / 1e6, UTC),
            datetime.fromtimestamp((T0_US + 3000) / 1e6, UTC),
        )
    ]
    assert "could not replay" in caplog.text


def test_bare_cursors_while_events_do_not_match(appview) -> None:
    events = [like_event(n, 1, 1) for n in range(1, 30)] + [account_event(30, 2)]
    with FakeJetstream(events, filter_collections=False, pace=0.05) as jetstream:
        items = run(source(jetstream, appview), lambda items: len(items) >= 1, timeout=5)
    assert items[0].post is None and items[0].deleted is None
    assert T0_US < items[0].cursor.time_us <= T0_US + 30 * 1000


def stops_quickly(src: JetstreamSource) -> None:
    stop = threading.Event()
    items: list = []
    thread = threading.Thread(target=lambda: items.extend(src.stream(TAG, START, stop)))
    thread.start()
    time.sleep(1.0)  # connected and waiting, or pausing between failed connections
    began = time.monotonic()
    stop.set()
    thread.join(3)
    assert not thread.is_alive()
    assert time.monotonic() - began < 1.5
    assert items == []


def test_stop_is_noticed_within_a_second(appview) -> None:
    with FakeJetstream([]) as jetstream:  # an idle instance: no event comes
        stops_quickly(source(jetstream, appview))
        assert len(jetstream.connections) == 1
        gone = source(jetstream, appview)
    # nothing listens there any more: connections fail, and the source pauses between tries
    stops_quickly(gone)


def test_next_url_after_failures_and_refusal_everywhere(appview) -> None:
    with FakeJetstream([tagged(1)]) as jetstream:
        dead = jetstream.url.replace("/subscribe", "/nothing-here")
        src = source(jetstream, appview, urls=(dead, jetstream.url), failures_per_url=1)
        items = run(src, count_posts(1))
        assert [p["post_id"] for p in posts(items)] == [post_id(1, 1)]
        refused = source(jetstream, appview, urls=(dead,))
        with pytest.raises(SourceError, match=r"every instance refused.*answered 404.*urls"):
            run(refused, lambda items: False, timeout=3)


def test_settings_defaults_and_errors() -> None:
    defaults = JetstreamSettings()
    assert defaults.urls == PUBLIC_INSTANCES
    assert PUBLIC_INSTANCES[0] == "wss://jetstream1.us-east.bsky.network/subscribe"
    assert len(set(PUBLIC_INSTANCES)) == 4
    assert defaults.appview_url == "https://public.api.bsky.app/xrpc"
    assert defaults.rewind_seconds == 5
    parsed = parse_section(
        JetstreamSettings,
        {"urls": "ws://127.0.0.1:6008/subscribe,\n" + PUBLIC_INSTANCES[3]},
        "jetstream",
        "test.conf",
    )
    assert parsed.urls == (
        "ws://127.0.0.1:6008/subscribe",
        "wss://jetstream2.us-west.bsky.network/subscribe",
    )
    assert JetstreamSettings(urls=(PUBLIC_INSTANCES[0],) * 2).urls == PUBLIC_INSTANCES[:1]
    bad = {
        "urls = https://jetstream1.us-east.bsky.network/subscribe": r"urls: .*wss://host/subscribe",
        "urls = wss://host/subscribe?wantedCollections=x": r"urls: .*without a query",
        "urls = ,": r"urls: name at least one",
        "appview_url = public.api.bsky.app": r"appview_url: expected https://",
        "rewind_seconds = -1": r"rewind_seconds: must be 0 or more",
        "max_backoff = 0": r"max_backoff: must be at least",
        "failures_per_url = 0": r"failures_per_url: must be 1 or more",
    }
    for line, message in bad.items():
        key, value = line.split(" = ")
        with pytest.raises(ConfigError, match=r"\[jetstream\] " + message):
            parse_section(JetstreamSettings, {key: value}, "jetstream", "test.conf")


def test_a_deleted_account_deletes_its_posts_a_deactivated_one_does_not(appview) -> None:
    events = [
        tagged(1, 1),
        account_event(2, 1, active=False, status="deactivated"),  # may come back
        account_event(3, 2, active=False, status="deleted"),
        account_event(4, 3, active=False, status="takendown"),
        tagged(5, 4),  # the end marker
    ]
    with FakeJetstream(events) as jetstream:
        items = run(source(jetstream, appview), count_posts(2))
    gone = [item.deleted_author for item in items if item.deleted_author]
    assert gone == [f"bluesky:at://{did(2)}/"]
