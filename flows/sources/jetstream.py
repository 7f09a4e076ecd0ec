"""The `jetstream` streaming source: Bluesky's public JSON firehose, read without an account.

A Jetstream instance (`wss://…/subscribe`) sends every event of the network as one JSON text
message: ``{"did", "time_us", "kind": "commit"|"identity"|"account", ...}``. The source asks for
post commits only (``wantedCollections=app.bsky.feed.post``; identity and account events come
regardless) and, to resume, ``cursor=<time_us>``: the instance replays from that time, as far
back as it keeps (about a day and a half), and silently starts at its oldest event when asked
for older ones.

- A post matches when the hashtag is one of its tag facets or record ``tags`` (any letter case);
  it is mapped by `flows.sources.bluesky.post_record_to_post`, so its ``post_id``
  (``bluesky:<at:// uri>``) is the one the search source gives. Counters are unknown (null).
- Every delete of a post is reported (``deleted``); the stream stage keeps those it holds.
- Events carry DIDs, not handles: the authors of matching posts are looked up with
  ``app.bsky.actor.getProfiles`` on the public AppView (25 a call, through `HttpClient`), their
  posts waiting at most `RESOLVE_WAIT_S`; the answers are cached and identity events keep the
  cache current. A DID the AppView does not know, or cannot answer for, stays the handle.
- A dropped connection is opened again from the last ``time_us`` less ``rewind_seconds`` (events
  come slightly out of time order, and instances' clocks differ), with a growing pause, and on the
  next URL after ``failures_per_url`` failures in a row. When the first event after (re)connecting
  is later than the last one seen by more than `GAP_SLACK_US`, the instance could not replay: the
  span is logged and recorded in ``stats.gaps``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from flows.cursors import JetstreamCursor
from flows.sources.base import SourceError, StreamItem, StreamStats
from flows.sources.bluesky import post_record_to_post, record_tags
from flows.sources.http import USER_AGENT, HttpClient, HttpError

log = logging.getLogger(__name__)

POST = "app.bsky.feed.post"
PUBLIC_INSTANCES = tuple(
    f"wss://jetstream{n}.us-{side}.bsky.network/subscribe"
    for side in ("east", "west")
    for n in (1, 2)
)
PROFILES_PER_CALL = 25  # getProfiles' cap on `actors`
RESOLVE_WAIT_S = 0.5  # the longest a post waits for its author's handle
TICK_S = 1.0  # a bare cursor at least this often while events flow
RECV_WAIT_S = 0.25  # how long one read waits: `stop` is noticed within it
# How much later than the last event seen the first event of a connection may be without a gap:
# events arrive out of time order by up to a second or two.
GAP_SLACK_US = 2_000_000
CONNECT_TIMEOUT_S = 10.0
FIRST_BACKOFF_S = 0.5
APPVIEW_PAUSE_S = 60.0  # after the AppView failed, authors stay DIDs this long before asking again
# Frames the connection buffers while the source waits for the AppView; the instances drop
# clients that fall too far behind.
MAX_QUEUE = 4096


@dataclass(frozen=True)
class JetstreamSettings:
    """`[jetstream]`: which Jetstream instances to read, and how to resume.

    Attributes:
        urls: Jetstream ``/subscribe`` addresses (``wss://``; ``ws://`` for a local server), in
            the order tried, separated by commas or new lines.
        appview_url: the XRPC root of a public AppView, where authors' handles are looked up.
        rewind_seconds: how far before the last event seen a reconnect asks to replay from.
        max_backoff: the longest pause, in seconds, between two connection attempts.
        failures_per_url: failed connections in a row after which the next URL is tried.
    """

    urls: tuple[str, ...] = PUBLIC_INSTANCES
    appview_url: str = "https://public.api.bsky.app/xrpc"
    rewind_seconds: float = 5.0
    max_backoff: float = 60.0
    failures_per_url: int = 3

    def __post_init__(self) -> None:
        urls = tuple(dict.fromkeys(url.strip() for url in self.urls if url.strip()))
        if not urls:
            raise ValueError(
                f"urls: name at least one Jetstream instance, e.g. {PUBLIC_INSTANCES[0]}"
            )
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("wss", "ws") or not parts.netloc or parts.query:
                raise ValueError(
                    f"urls: {url!r} is not a Jetstream address; write wss://host/subscribe (or "
                    "ws://host:port/subscribe for a local server), without a query: the source "
                    "adds wantedCollections and cursor"
                )
        object.__setattr__(self, "urls", urls)
        if not self.appview_url.startswith(("https://", "http://")):
            raise ValueError(
                f"appview_url: expected https://host/xrpc (e.g. https://public.api.bsky.app/xrpc), "
                f"got {self.appview_url!r}"
            )
        if self.rewind_seconds < 0:
            raise ValueError(f"rewind_seconds: must be 0 or more, got {self.rewind_seconds}")
        if self.max_backoff < FIRST_BACKOFF_S:
            raise ValueError(
                f"max_backoff: must be at least {FIRST_BACKOFF_S} seconds, got {self.max_backoff}"
            )
        if self.failures_per_url < 1:
            raise ValueError(f"failures_per_url: must be 1 or more, got {self.failures_per_url}")


class JetstreamSource:
    """Posts with the hashtag, and deletes of posts, from a Jetstream instance, live.

    Args:
        settings: the ``[jetstream]`` section.
        client_options: `HttpClient` options for the AppView calls (tests pass a fake clock);
            by default few, short tries, since posts wait for the answer.
    """

    name: ClassVar[str] = "jetstream"

    def __init__(self, settings: JetstreamSettings, **client_options: Any) -> None:
        self.settings = settings
        self.stats = StreamStats()
        self._client_options = {
            "attempts": 2,
            "timeout": 5.0,
            "backoff": 0.5,
            "max_backoff": 2.0,
            "max_wait": 5.0,
            **client_options,
        }
        self._profiles: dict[str, tuple[str, str | None]] = {}  # DID → (handle, display name)
        self._appview_paused_until = 0.0
        # the stream's state, shared by its helpers
        self._client: HttpClient | None = None
        self._hashtag = ""
        self._last_us: int | None = None  # the latest time_us seen
        self._yielded_us: int | None = None  # the time_us of the last cursor yielded
        self._newest: datetime | None = None  # the newest created_at yielded
        self._waiting: list[StreamItem | _Pending] = []  # items behind a post waiting for a handle
        self._unknown: dict[str, None] = {}  # the DIDs those posts wait for, in order
        self._deadline = 0.0  # when the oldest waiting post stops waiting

    def first_cursor(self) -> JetstreamCursor:
        """Now: a first run reads what is posted from its start on (a restart goes back to it)."""
        return JetstreamCursor(time.time_ns() // 1000)

    def stream(
        self, hashtag: str, cursor: JetstreamCursor, stop: threading.Event
    ) -> Iterator[StreamItem]:
        """Yield posts with `hashtag`, deletes and bare cursors from `cursor` on, until `stop`.

        Raises:
            SourceError: every URL refused the connection (a wrong address).
        """
        tag = hashtag.removeprefix("#").lower()
        self._hashtag = hashtag
        self._last_us = self._yielded_us = cursor.time_us
        self._newest = cursor.newest_time
        self._waiting, self._unknown = [], {}
        urls = self.settings.urls
        index = failures = url_failures = 0
        refused: dict[str, str] = {}
        opened = False
        with HttpClient(self.name, **self._client_options) as client:
            client.usage = self.stats.usage  # its counts are the stream's
            self._client = client
            while not stop.is_set():
                url = urls[index]
                try:
                    connection = connect(
                        self._address(url),
                        open_timeout=CONNECT_TIMEOUT_S,
                        close_timeout=1.0,
                        compression=None,  # instances do not deflate; it would cost CPU per event
                        max_queue=MAX_QUEUE,
                        user_agent_header=USER_AGENT,
                    )
                except InvalidStatus as exc:
                    status = exc.response.status_code
                    if 400 <= status < 500 and status != 429:  # refused: not a Jetstream address
                        refused[url] = f"{url} answered {status}"
                        if len(refused) == len(urls):
                            raise SourceError(
                                f"jetstream: every instance refused the connection "
                                f"({'; '.join(refused.values())}). Check [jetstream] urls: each "
                                f"should be a Jetstream /subscribe address such as "
                                f"{PUBLIC_INSTANCES[0]}"
                            ) from None
                        url_failures = self.settings.failures_per_url  # no use asking it again
                    log.warning("jetstream: %s refused the connection: %s", url, exc)
                except (OSError, WebSocketException) as exc:  # timeouts are OSErrors
                    log.warning("jetstream: cannot connect to %s: %r", url, exc)
                else:
                    refused.clear()
                    if opened:
                        self.stats.reconnects += 1
                    opened = True
                    log.info("jetstream: connected to %s", connection.request.path)
                    with connection:
                        if (yield from self._read(connection, tag, stop)):
                            failures = url_failures = 0
                            if stop.is_set():
                                break
                            url_failures = -1  # a dropped connection is no failure of the URL
                failures += 1
                url_failures += 1
                if url_failures >= self.settings.failures_per_url and len(urls) > 1:
                    index, url_failures = (index + 1) % len(urls), 0
                    log.warning("jetstream: trying the next instance, %s", urls[index])
                pause = min(self.settings.max_backoff, FIRST_BACKOFF_S * 2 ** (failures - 1))
                stop.wait(pause * (0.5 + random.random() / 2))  # jitter: clients do not stampede

    def _address(self, url: str) -> str:
        query = [("wantedCollections", POST)]
        if self._last_us is not None:
            rewind = int(self.settings.rewind_seconds * 1_000_000)
            query.append(("cursor", str(max(self._last_us - rewind, 0))))
        return f"{url}?{urlencode(query)}"

    def _read(
        self, connection: ClientConnection, tag: str, stop: threading.Event
    ) -> Iterator[StreamItem]:
        """Yield the items of one connection until it closes or `stop`; return whether any
        event came."""
        stats = self.stats
        loads = json.loads
        clock = time.monotonic
        before = self._last_us
        first = True
        next_tick = clock() + TICK_S
        while not stop.is_set():
            wait = RECV_WAIT_S
            if self._waiting:
                wait = max(0.0, min(wait, self._deadline - clock()))
            try:
                message = connection.recv(wait)
            except TimeoutError:
                message = None
            except ConnectionClosed as exc:
                log.warning("jetstream: the connection closed: %s", exc)
                break
            if message is not None:
                stats.events += 1
                try:
                    event = loads(message)
                    time_us = event["time_us"]
                    if first:
                        first = False
                        self._check_gap(before, time_us)
                    if self._last_us is None or time_us > self._last_us:
                        self._last_us = time_us
                    kind = event["kind"]
                    if kind == "commit":
                        item = self._commit(event, tag, time_us)
                        if item is not None:
                            yield from self._put(item)
                    elif kind == "identity":
                        self._identity(event)
                    elif kind == "account" and (item := self._account(event, time_us)):
                        yield from self._put(item)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    log.debug("jetstream: skipped a malformed event (%r)", exc)
            now = clock()
            if self._waiting and (now >= self._deadline or len(self._unknown) >= PROFILES_PER_CALL):
                yield from self._flush()
            if now >= next_tick:
                next_tick = now + TICK_S
                if not self._waiting and self._last_us != self._yielded_us:
                    yield self._item()
        yield from self._flush()
        return not first

    def _commit(
        self, event: dict[str, Any], tag: str, time_us: int
    ) -> StreamItem | _Pending | None:
        commit = event["commit"]
        if commit["collection"] != POST:  # a server that ignores wantedCollections
            return None
        operation = commit["operation"]
        if operation == "delete":
            uri = f"at://{event['did']}/{POST}/{commit['rkey']}"
            return self._item(deleted=f"bluesky:{uri}", event_time=time_us / 1e6)
        record = commit.get("record")
        if operation not in ("create", "update") or tag not in record_tags(record):
            return None
        did = event["did"]
        if did not in self._profiles and time.monotonic() >= self._appview_paused_until:
            self._unknown[did] = None
        return _Pending(did, f"at://{did}/{POST}/{commit['rkey']}", record, time_us, self._last_us)

    def _account(self, event: dict[str, Any], time_us: int) -> StreamItem | None:
        """A deleted account: every post of it is gone, though no delete comes per post.
        (Deactivated and taken-down accounts may come back: their posts stay.)"""
        account = event["account"]
        if account.get("active") is False and account.get("status") == "deleted":
            author = f"bluesky:at://{event['did']}/"
            return self._item(deleted_author=author, event_time=time_us / 1e6)
        return None

    def _identity(self, event: dict[str, Any]) -> None:
        did = event["did"]
        known = self._profiles.get(did)
        if known is None:  # only the authors of matching posts are kept
            return
        handle = (event.get("identity") or {}).get("handle")
        if isinstance(handle, str) and handle:
            self._profiles[did] = (handle, known[1])
        else:  # the handle may have changed: ask the AppView at the author's next post
            del self._profiles[did]

    def _put(self, item: StreamItem | _Pending) -> Iterator[StreamItem]:
        """Yield `item` now, or queue it behind posts waiting for handles (order is kept: an
        item's cursor holds only once every item before it has landed)."""
        if isinstance(item, _Pending) and item.did in self._unknown:
            if not self._waiting:
                self._deadline = time.monotonic() + RESOLVE_WAIT_S
            self._waiting.append(item)
        elif self._waiting:
            self._waiting.append(item)
        else:
            yield self._post(item) if isinstance(item, _Pending) else item

    def _flush(self) -> Iterator[StreamItem]:
        """Look up the waiting posts' authors, then yield every waiting item in order."""
        if not self._waiting:
            return
        self._resolve(list(self._unknown))
        self._unknown.clear()
        waiting, self._waiting = self._waiting, []
        for item in waiting:
            yield self._post(item) if isinstance(item, _Pending) else item

    def _resolve(self, dids: list[str]) -> None:
        """Cache the handles and names of `dids`; a DID the AppView does not know is its own
        handle. When the AppView fails, the DIDs stay uncached and the AppView rests a while."""
        if time.monotonic() < self._appview_paused_until:
            return
        url = f"{self.settings.appview_url.rstrip('/')}/app.bsky.actor.getProfiles"
        for start in range(0, len(dids), PROFILES_PER_CALL):
            chunk = dids[start : start + PROFILES_PER_CALL]
            try:
                body, _ = self._client.get_json(url, {"actors": chunk})  # type: ignore[union-attr]
            except HttpError as exc:
                self._appview_paused_until = time.monotonic() + APPVIEW_PAUSE_S
                log.warning(
                    "jetstream: cannot look up authors' handles (%s); their posts keep their DIDs "
                    "as handles, asking again in %.0f s",
                    exc,
                    APPVIEW_PAUSE_S,
                )
                return
            profiles = body.get("profiles") if isinstance(body, dict) else None
            for profile in profiles if isinstance(profiles, list) else ():
                if not isinstance(profile, dict):
                    continue
                did, handle = profile.get("did"), profile.get("handle")
                # the AppView says handle.invalid when the handle no longer points to the DID
                if isinstance(did, str) and isinstance(handle, str) and handle != "handle.invalid":
                    self._profiles[did] = (handle, profile.get("displayName") or None)
            for did in chunk:
                self._profiles.setdefault(did, (did, None))

    def _post(self, pending: _Pending) -> StreamItem:
        self._yielded_us = pending.cursor_us
        handle, name = self._profiles.get(pending.did, (pending.did, None))
        try:
            post = post_record_to_post(
                pending.uri,
                pending.record,
                handle,
                name,
                _time(pending.time_us),
                self._hashtag,
                datetime.now(UTC),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a malformed facet
            log.warning("jetstream: skipped post %s: %s: %s", pending.uri, type(exc).__name__, exc)
            return StreamItem(JetstreamCursor(pending.cursor_us, self._newest))
        if self._newest is None or post["created_at"] > self._newest:
            self._newest = post["created_at"]
        return StreamItem(
            JetstreamCursor(pending.cursor_us, self._newest),
            post=post,
            event_time=pending.time_us / 1e6,
        )

    def _item(self, **fields: Any) -> StreamItem:
        self._yielded_us = self._last_us
        return StreamItem(JetstreamCursor(self._last_us, self._newest), **fields)

    def _check_gap(self, before: int | None, first_us: int) -> None:
        if before is None or first_us - before <= GAP_SLACK_US:
            return
        span = (_time(before), _time(first_us))
        self.stats.gaps.append(span)
        log.warning(
            "jetstream: the instance could not replay from %s (it keeps about a day and a half); "
            "it resumed at %s: posts between are missing",
            f"{span[0]:%Y-%m-%d %H:%M:%S}",
            f"{span[1]:%Y-%m-%d %H:%M:%S}",
        )


@dataclass(frozen=True)
class _Pending:
    """A matching post whose author's handle is not known yet."""

    did: str
    uri: str
    record: dict[str, Any]
    time_us: int
    cursor_us: int | None  # the stream's cursor when it came


def _time(time_us: int) -> datetime:
    return datetime.fromtimestamp(time_us / 1e6, UTC)
