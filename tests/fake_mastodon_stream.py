"""A Mastodon instance with its streaming API: `FakeMastodon`'s timelines and statuses, plus
``GET /api/v1/streaming/hashtag?tag=`` as Server-Sent Events that the test pushes.

The wire format is Mastodon's own streaming server (mastodon/mastodon, ``streaming/index.js``:
``streamToHttp``, ``streamFrom``, ``accountFromRequest`` and the error middleware): headers
``Content-Type: text/event-stream`` and ``Cache-Control: no-store``; ``:)`` on connect, then
``:thump`` heartbeats; each event written as ``event: <name>\\n`` then ``data: <payload>\\n\\n``,
the payload a Status as JSON (``update``, ``status.update``) or the bare local id (``delete``);
401 ``{"error": "Error: Missing access token"}`` (or ``Invalid access token``) before any event;
404 ``{"error": "Not found"}`` for a stream without ``tag``. The real server's body is chunked;
this one ends with the connection (HTTP/1.0), which an HTTP client reads alike.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterable
from typing import Any, BinaryIO

from fake_apis import Reply, Request
from fake_networks import FakeMastodon

STREAM_PATH = "/api/v1/streaming/hashtag"


class FakeMastodonStream(FakeMastodon):
    """One instance whose hashtag stream needs `token`; `stream_at` (another fake) serves the
    stream instead, the instance answering 301 there, as Mastodon does when its streaming API
    has a host of its own."""

    def __init__(
        self,
        statuses: list[dict[str, Any]] | None = None,
        token: str = "token-1",
        stream_at: FakeMastodonStream | None = None,
    ) -> None:
        super().__init__(statuses)
        self.token = token
        self.stream_at = stream_at
        self.opened = 0  # streams accepted so far
        self._open: list[tuple[str, queue.Queue[bytes | None]]] = []  # (tag, what to write)
        self._changed = threading.Condition()

    def answer(self, request: Request) -> Reply:
        if not request.path.startswith("/api/v1/streaming"):
            return super().answer(request)
        tag = request.query.get("tag", "").lower()
        if request.path != STREAM_PATH or not tag:
            return Reply(404, {"error": "Not found"})
        if self.stream_at is not None:
            query = "&".join(f"{k}={v}" for k, v in request.query.items())
            return Reply(301, {}, {"Location": f"{self.stream_at.url}{request.path}?{query}"})
        authorization = request.headers.get("authorization")
        if not authorization:
            return Reply(401, {"error": "Error: Missing access token"})
        if authorization != f"Bearer {self.token}":
            return Reply(401, {"error": "Error: Invalid access token"})
        lines: queue.Queue[bytes | None] = queue.Queue()
        lines.put(b":)\n")
        with self._changed:
            self._open.append((tag, lines))
            self.opened += 1
            self._changed.notify_all()

        def write(wfile: BinaryIO) -> None:
            try:
                while (chunk := lines.get()) is not None:
                    wfile.write(chunk)
            except OSError:  # the client hung up
                pass
            finally:
                with self._changed:
                    self._open.remove((tag, lines))
                    self._changed.notify_all()

        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        return Reply(200, headers=headers, stream=write)

    def wait_opened(self, count: int, timeout: float = 5.0) -> None:
        """Wait until `count` streams have been accepted in all."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.opened >= count, timeout):
                raise AssertionError(f"{self.opened} streams opened, expected {count}")

    def _send(self, chunk: bytes | None, tags: set[str] | None = None) -> None:
        """Write `chunk` to the open streams (of `tags`); None closes them."""
        with self._changed:
            for tag, lines in self._open:
                if tags is None or tag in tags:
                    lines.put(chunk)

    def _event(self, event: str, payload: str, tags: set[str] | None) -> None:
        self._send(f"event: {event}\ndata: {payload}\n\n".encode(), tags)

    def publish(self, status: dict[str, Any]) -> None:
        """A new status: on the timeline and, as ``update``, on its tags' streams."""
        self.statuses.append(status)
        self._event("update", json.dumps(status), _tags(status))

    def edit(self, status: dict[str, Any]) -> None:
        """An edited status (same id): replaced on the timeline, ``status.update`` streamed."""
        self.statuses = [s for s in self.statuses if s["id"] != status["id"]] + [status]
        self._event("status.update", json.dumps(status), _tags(status))

    def delete(self, status_id: str) -> None:
        """A deleted status: gone from the timeline, its id streamed to every stream (Mastodon
        sends it to the status's tags; a test may delete an id the client never saw)."""
        self.statuses = [s for s in self.statuses if s["id"] != status_id]
        self._event("delete", status_id, None)

    def heartbeat(self) -> None:
        self._send(b":thump\n")

    def drop(self, missed: Iterable[dict[str, Any]] = ()) -> None:
        """Close every stream from the server's side, in the middle; `missed` are posted
        meanwhile: on the timeline, on no stream."""
        self.statuses += list(missed)
        with self._changed:
            closing = list(self._open)
        self._send(None)
        with self._changed:
            # the client may reconnect at once: wait for these streams, not for none open
            if not self._changed.wait_for(lambda: not set(closing) & set(self._open), 5.0):
                raise AssertionError("the streams did not close")

    def __exit__(self, *exc: object) -> None:
        self._send(None)
        super().__exit__(*exc)


def _tags(status: dict[str, Any]) -> set[str]:
    return {tag["name"].lower() for tag in status["tags"]}
