"""The `mastodon-stream` source: a hashtag's statuses, live, from Mastodon's streaming API.

``GET <instance>/api/v1/streaming/hashtag?tag=<hashtag>`` answers Server-Sent Events: an event
is ``event:`` and ``data:`` lines and a blank line; a line starting with ``:`` is a heartbeat
(``:)`` on connect, ``:thump`` every 15 s). Since Mastodon 4.2 it streams to signed-in users only,
so only the instances that ``[mastodon] access_token_env`` gives a token are streamed; the others
stay on the polling `mastodon` source. Each instance has its own thread and connection, and they
feed one generator. Events:

- ``update`` (a new status) and ``status.update`` (an edit): a Status entity, mapped by
  `flows.sources.mastodon.status_to_post`, so a post has the ``post_id`` the polling source gives.
- ``delete``: the status id *local to that instance*, mapped to a ``post_id`` through the statuses
  this source has seen there (in the stream and in its timeline reads). Other ids are counted in
  `MastodonStreamSource.unmapped_deletes` and left to ``python -m flows refresh``, whose lookups
  find those statuses gone (404).

The cursor is a `WalkCursor` whose floors hold, per instance, the newest status id seen. Each
connection first opens the stream, then reads the hashtag timeline since that floor (the polling
source's walk), then reads the stream: what was posted between a drop (or the last run) and the
connection comes from the timeline, and what comes during that read waits in the stream. A gap
is recorded in `StreamStats.gaps` only when the timeline cannot be read. Reconnects back off
exponentially with jitter.

The stream is read with httpx itself (no SSE package): the few parsing rules are `sse_events`,
and the heartbeats, which SSE clients such as httpx-sse drop, keep the cursor moving.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from flows.cursors import WalkCursor
from flows.settings import ConfigError
from flows.sources.base import Record, SourceError, StreamItem, StreamStats, Usage
from flows.sources.http import USER_AGENT, BearerToken, HttpError
from flows.sources.mastodon import MastodonSettings, MastodonSource, status_to_post
from flows.sources.secrets import Secret

log = logging.getLogger(__name__)

# Mastodon sends a heartbeat every 15 s: after three missed, the connection is taken for dead.
IDLE_TIMEOUT_S = 45.0
POLL_S = 0.2  # how often the generator looks at `stop` while nothing comes
STEADY_S = 60.0  # a connection that lasted this long starts the reconnect backoff afresh
MAX_REDIRECTS = 3  # an instance may send its streaming API to another host
SEEN_MAX = 100_000  # status ids remembered per instance, to map deletes to posts


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str | None, str]]:
    """Server-Sent Events from a response's lines: ``(type, data)`` per event and
    ``(None, text)`` per comment line (Mastodon's heartbeats).

    The WHATWG rules for the fields Mastodon sends: ``data`` lines are joined with new lines,
    one space after the colon is dropped, a blank line ends an event (one without data is none),
    the type defaults to ``message``; ``id`` and ``retry`` are ignored.

    Example:
        >>> list(sse_events([":)", "event: delete", "data: 42", "", ":thump"]))
        [(None, ')'), ('delete', '42'), (None, 'thump')]
    """
    event, data = "", []
    for line in lines:
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", []
        elif line.startswith(":"):
            yield None, line[1:]
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)


@dataclass(frozen=True)
class _Delivery:
    """What an instance's thread hands the generator: a post, a deletion or neither (an event
    or heartbeat that moves only the cursor), and the instance's floor once it has landed."""

    instance: str
    floor: str | None
    post: Record | None = None
    deleted: str | None = None
    event_time: float | None = None


class _Retry(Exception):
    """The stream answered something worth another connection later (429, 5xx)."""


class MastodonStreamSource:
    """Live statuses with the hashtag from every instance that has a token.

    Args:
        settings: `[mastodon]`; its ``access_token_env`` gives the tokens.
        idle_timeout: seconds without a byte (heartbeats included) after which a connection is
            taken for dead and made again.
        client_options: for the timeline reads' `HttpClient` (``timeout``, ``attempts``,
            ``backoff``, ``max_backoff``, ``sleep``); ``backoff`` and ``max_backoff`` also pace
            the reconnects.

    Attributes:
        stats: events, reconnects, gaps, and the timeline reads' requests.
        unmapped_deletes: deletions of statuses this source never saw (left to the refresh).

    Raises:
        ConfigError: no instance has a token, or the variable is unset or malformed.
    """

    name: ClassVar[str] = "mastodon-stream"

    def __init__(
        self,
        settings: MastodonSettings,
        *,
        idle_timeout: float = IDLE_TIMEOUT_S,
        **client_options: Any,
    ) -> None:
        self.settings = settings
        self.tokens = settings.tokens()
        if not self.tokens:
            raise ConfigError(
                "[mastodon] access_token_env is empty: Mastodon streams only to signed-in users "
                "(since 4.2). Name the environment variable that holds a token "
                "(access_token_env = MASTODON_TOKENS), or take mastodon out of [stream] sources "
                "and poll it with the mastodon source."
            )
        self.idle_timeout = idle_timeout
        self.client_options = client_options
        self.backoff = float(client_options.get("backoff", 1.0))
        self.max_backoff = float(client_options.get("max_backoff", 60.0))
        self.stats = StreamStats()
        self.unmapped_deletes = 0
        self.lock = threading.Lock()  # the instances' threads count into `stats` together

    def pause(self, failures: int) -> float:
        """Seconds before reconnecting after `failures` short connections in a row."""
        wait = min(self.max_backoff, self.backoff * 2 ** (failures - 1))
        return wait + random.uniform(0, self.backoff)

    def first_cursor(self) -> WalkCursor:
        """No floor: a first connection reads the timeline's newest page, then the stream."""
        return WalkCursor()

    def stream(
        self, hashtag: str, cursor: WalkCursor, stop: threading.Event
    ) -> Iterator[StreamItem]:
        """Items from every instance with a token, from `cursor` on, until `stop` is set.

        Raises:
            SourceError: an instance refused the token, or its streaming API is missing.
        """
        hashtag = hashtag.lower().lstrip("#")
        out: queue.Queue[_Delivery | Exception] = queue.Queue()
        halt = threading.Event()  # the threads stop with the generator, whatever ends it
        followers = [
            _Follower(self, instance, token, hashtag, cursor, out, halt)
            for instance, token in self.tokens.items()
        ]
        for follower in followers:
            follower.thread.start()
        shown, last = cursor, time.monotonic()
        try:
            while not stop.is_set():
                try:
                    got = out.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if isinstance(got, Exception):
                    raise got
                cursor = _advance(cursor, got)
                now = time.monotonic()
                if got.post is not None or got.deleted is not None:
                    yield StreamItem(
                        cursor, post=got.post, deleted=got.deleted, event_time=got.event_time
                    )
                elif cursor != shown or now - last >= 1.0:
                    yield StreamItem(cursor)
                else:
                    continue
                shown, last = cursor, now
        finally:
            halt.set()
            for follower in followers:
                follower.hang_up()
            deadline = time.monotonic() + 1.0
            for follower in followers:
                follower.thread.join(max(0.0, deadline - time.monotonic()))
            if self.unmapped_deletes:
                log.info(
                    "%s: %d deletions of statuses not seen in this run, left to the refresh",
                    self.name,
                    self.unmapped_deletes,
                )


def _advance(cursor: WalkCursor, got: _Delivery) -> WalkCursor:
    """`cursor` once `got` has landed."""
    floors = cursor.floors
    if got.floor is not None and floors.get(got.instance) != got.floor:
        floors = {**floors, got.instance: got.floor}
    newest = cursor.newest_time
    if got.post is not None:
        newest = max(filter(None, (newest, got.post["created_at"])))
    if floors is cursor.floors and newest == cursor.newest_time:
        return cursor
    return replace(cursor, floors=floors, newest_time=newest)


def _newer(floor: str | None, status_id: str) -> str:
    """The newer of two status ids of one instance (Mastodon's are numbers; other servers'
    ids of one length sort as text)."""
    if floor is None:
        return status_id
    return max(floor, status_id, key=lambda value: (len(value), value))


class _Timeline(MastodonSource):
    """The polling source over one instance, also keeping each post's local status id."""

    def __init__(self, settings: MastodonSettings, **client_options: Any) -> None:
        super().__init__(settings, **client_options)
        self.read: list[tuple[str, Record]] = []

    def to_posts(
        self, hashtag: str, key: str, payload: Any, collected_at: datetime
    ) -> list[Record | str]:
        items = super().to_posts(hashtag, key, payload, collected_at)
        self.read += [
            (str(status["id"]), item)
            for status, item in zip(payload, items, strict=True)
            if isinstance(item, dict)
        ]
        return items

    def take(self) -> list[tuple[str, Record]]:
        """The posts read since the last call, with their local ids."""
        read, self.read = self.read, []
        return read


class _Follower:
    """One instance, in its own thread: connect, read the gap, read the events; again after a
    drop, until `halt`."""

    def __init__(
        self,
        source: MastodonStreamSource,
        instance: str,
        token: Secret,
        hashtag: str,
        cursor: WalkCursor,
        out: queue.Queue[_Delivery | Exception],
        halt: threading.Event,
    ) -> None:
        self.source = source
        self.instance = instance
        self.token = token
        self.hashtag = hashtag
        self.out = out
        self.halt = halt
        self.floor = cursor.floors.get(instance)
        self.whole_until = cursor.newest_time  # the stream had everything up to then (for gaps)
        self.seen: dict[str, str] = {}  # local status id → post_id
        self.response: httpx.Response | None = None
        self.lock = threading.Lock()  # `response`, shared with `hang_up`
        self.thread = threading.Thread(
            target=self.run, name=f"{source.name} {instance}", daemon=True
        )

    def run(self) -> None:
        try:
            self.follow()
        except Exception as exc:  # noqa: BLE001 - the generator raises it in the stage's thread
            self.out.put(exc)

    def follow(self) -> None:
        failures = 0
        timeout = httpx.Timeout(10.0, read=self.source.idle_timeout)
        headers = {"User-Agent": USER_AGENT, "Accept": "text/event-stream"}
        with httpx.Client(headers=headers, timeout=timeout) as client:
            while True:
                started, opened = time.monotonic(), False
                try:
                    with self.connect(client) as response:
                        opened = True
                        self.fill_gap()
                        self.read(response)
                    reason = "the server closed the stream"
                except (httpx.HTTPError, _Retry) as exc:  # network errors, timeouts, 429, 5xx
                    reason = f"{type(exc).__name__}: {exc}"
                if opened:  # what was posted before the drop is in (or a gap is recorded)
                    self.whole_until = datetime.now(UTC)
                if self.halt.is_set():
                    return
                failures = 1 if time.monotonic() - started >= STEADY_S else failures + 1
                pause = self.source.pause(failures)
                log.warning(
                    "%s: %s: %s; reconnecting in %.1f s",
                    self.source.name,
                    self.instance,
                    reason,
                    pause,
                )
                if self.halt.wait(pause):
                    return
                with self.source.lock:
                    self.source.stats.reconnects += 1

    @contextmanager
    def connect(self, client: httpx.Client) -> Iterator[httpx.Response]:
        """The open event stream; redirects followed here so the token follows them (httpx
        drops it on a redirect to another host, and instances may stream from one)."""
        url = httpx.URL(f"{self.instance}/api/v1/streaming/hashtag", params={"tag": self.hashtag})
        where = f"{self.source.name}: {self.instance}'s hashtag stream"
        for _ in range(MAX_REDIRECTS + 1):
            request = client.build_request("GET", url)
            response = client.send(request, auth=BearerToken(self.token), stream=True)
            if not response.is_redirect:
                break
            response.close()
            target = url.join(response.headers.get("location", ""))
            if target.scheme not in ("https", url.scheme):  # the token never goes unencrypted
                raise SourceError(
                    f"{where} redirects to {target.copy_with(query=None)}, which is not https: "
                    "drop that instance's token to poll it with the mastodon source."
                )
            url = target
        else:
            raise SourceError(
                f"{where} redirects more than {MAX_REDIRECTS} times: drop that instance's token "
                "to poll it with the mastodon source."
            )
        try:
            self.refuse(response)
            with self.lock:
                self.response = response
            yield response
        finally:
            with self.lock:
                self.response = None
            response.close()

    def refuse(self, response: httpx.Response) -> None:
        """Raise for an answer that is not the event stream."""
        status = response.status_code
        if status == 200:
            return
        if status == 429 or status >= 500:
            raise _Retry(f"answered {status}")
        response.read()
        try:
            body = response.json()
            detail = body.get("error") if isinstance(body, dict) else None
        except ValueError:
            detail = None
        detail = str(detail or response.text[:200].strip())
        where = f"{self.source.name}: {self.instance} answered {status} to the hashtag stream"
        if status in (401, 403):
            raise SourceError(
                f"{where} ({detail}): the token is missing, wrong, revoked or lacks the "
                "read:statuses scope. Put a token of that instance with read:statuses in the "
                "variable [mastodon] access_token_env names, or drop that instance's token to "
                "poll it with the mastodon source."
            )
        raise SourceError(
            f"{where} ({detail}): no Mastodon streaming API there. Check the instance's URL in "
            "[mastodon] instances, or drop its token to poll it with the mastodon source."
        )

    def hang_up(self) -> None:
        """Close the stream's socket from another thread: its blocked read returns at once."""
        with self.lock:
            network = self.response.extensions.get("network_stream") if self.response else None
            sock = network.get_extra_info("socket") if network is not None else None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # closed already

    def fill_gap(self) -> None:
        """Hand over the statuses of the timeline newer than the floor, then the new floor.

        Their items keep the old floor: a run that dies in the middle reads the gap again. With
        no floor (a first run) only the newest page is read: the stream starts now.
        """
        settings = replace(self.source.settings, instances=(self.instance,))
        reader = _Timeline(settings, auth=BearerToken(self.token), **self.source.client_options)
        start = WalkCursor({self.instance: self.floor} if self.floor else {})
        top = self.floor
        try:
            limit = None if self.floor else settings.page_size
            with closing(reader.fetch(self.hashtag, start, limit)) as batches:
                for batch in batches:
                    for warning in batch.warnings:
                        log.warning("%s: %s", self.source.name, warning)
                    for status_id, post in reader.take():
                        self.remember(status_id, post["post_id"])
                        top = _newer(top, status_id)
                        self.out.put(_Delivery(self.instance, self.floor, post))
                    if self.halt.is_set():
                        return
        except HttpError as exc:
            log.warning("%s: %s: the gap is not read: %s", self.source.name, self.instance, exc)
            if self.floor is not None:
                now = datetime.now(UTC)
                with self.source.lock:
                    self.source.stats.gaps.append((self.whole_until or now, now))
            return
        finally:
            with self.source.lock:
                _add(self.source.stats.usage, reader.usage)
        self.floor = top
        self.out.put(_Delivery(self.instance, top))

    def read(self, response: httpx.Response) -> None:
        for event, data in sse_events(response.iter_lines()):
            if self.halt.is_set():
                return
            if event is not None:
                with self.source.lock:
                    self.source.stats.events += 1
            self.out.put(self.deliver(event, data))

    def deliver(self, event: str | None, data: str) -> _Delivery:
        """What one event (or heartbeat, `event` None) hands the generator."""
        if event in ("update", "status.update"):
            try:
                status = json.loads(data)
                post = status_to_post(status, self.hashtag, datetime.now(UTC))
                status_id = str(status["id"])
                when = status.get("edited_at") if event == "status.update" else None
                event_time = datetime.fromisoformat(when).timestamp() if when else None
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning(
                    "%s: %s: %s event skipped: %s: %s",
                    self.source.name,
                    self.instance,
                    event,
                    type(exc).__name__,
                    exc,
                )
                return _Delivery(self.instance, self.floor)
            self.remember(status_id, post["post_id"])
            self.floor = _newer(self.floor, status_id)
            event_time = event_time or post["created_at"].timestamp()
            return _Delivery(self.instance, self.floor, post, event_time=event_time)
        if event == "delete":
            post_id = self.seen.pop(data.strip(), None)
            if post_id is not None:
                return _Delivery(self.instance, self.floor, deleted=post_id)
            with self.source.lock:
                self.source.unmapped_deletes += 1
        return _Delivery(self.instance, self.floor)

    def remember(self, status_id: str, post_id: str) -> None:
        self.seen[status_id] = post_id
        if len(self.seen) > SEEN_MAX:
            del self.seen[next(iter(self.seen))]  # the oldest


def _add(total: Usage, usage: Usage) -> None:
    total.requests += usage.requests
    total.retries += usage.retries
    total.rate_limit_wait_s += usage.rate_limit_wait_s
