"""A local Jetstream (v1 ``/subscribe``) and a Bluesky AppView's ``getProfiles``, for the tests.

The events' shapes follow a recording of the public instances:
bluesky-social/jetstream, commit 9a30defd224e9058814a7d6ce8d9e4fc48d5493c,
``internal/subscribe/testdata/golden_v1.jsonl`` ("captured from a real Jetstream v1 server" with
websocat on wss://jetstream1.us-east.bsky.network/subscribe): commit create/update/delete (a
delete carries no record), identity (``handle`` may be absent) and account events. What the
server does with ``wantedCollections`` and ``cursor`` follows that repository's ``docs/README.md``
section 5.1: identity and account events come whatever the collections asked; a cursor (unix
microseconds) replays from that time, one older than the instance keeps starts silently at its
oldest event, and no cursor starts at the live tip. Texts, DIDs and handles are ours.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from fake_apis import FakeApi, Reply, Request
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

T0_US = 1_779_719_009_132_431  # the first time_us of the recording
POST = "app.bsky.feed.post"


def did(n: int) -> str:
    return f"did:plc:author{n:018d}"


def post_event(
    n: int,
    author: int,
    text: str,
    *,
    facet_tags: tuple[str, ...] = (),
    tags: tuple[str, ...] | None = None,
    operation: str = "create",
    time_us: int | None = None,
    collection: str = POST,
) -> dict[str, Any]:
    """A commit creating (or updating) post `n`; each of `facet_tags` is a tag facet over its
    ``#tag`` in `text`; `tags` the record's own ``tags``. Another `collection` makes a record
    of another app shaped like a post (stream.place's chat messages have text and facets)."""
    data = text.encode()
    facets = []
    for tag in facet_tags:
        start = data.index(f"#{tag}".encode())
        facets.append(
            {
                "index": {"byteStart": start, "byteEnd": start + len(tag.encode()) + 1},
                "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}],
            }
        )
    record: dict[str, Any] = {
        "$type": collection,
        "createdAt": "2026-05-25T14:23:28.757Z",
        "langs": ["en"],
        "text": text,
    }
    if facets:
        record["facets"] = facets
    if tags is not None:
        record["tags"] = list(tags)
    return {
        "did": did(author),
        "time_us": time_us if time_us is not None else T0_US + n * 1000,
        "kind": "commit",
        "commit": {
            "rev": f"3mmoojp{n:06d}",
            "operation": operation,
            "collection": collection,
            "rkey": rkey(n),
            "record": record,
            "cid": f"bafyreicl7rzkxdrm4zz2ehbx52kuk3mvfow6p3gzfys72r5grv{n:06d}",
        },
    }


def rkey(n: int) -> str:
    return f"3mmoojp{n:06d}"


def delete_event(n: int, author: int, collection: str = POST) -> dict[str, Any]:
    return {
        "did": did(author),
        "time_us": T0_US + n * 1000,
        "kind": "commit",
        "commit": {
            "rev": f"3mmoojq{n:06d}",
            "operation": "delete",
            "collection": collection,
            "rkey": rkey(n),
        },
    }


def like_event(n: int, author: int, subject: int) -> dict[str, Any]:
    """A like of post `subject`."""
    uri = f"at://{did(subject)}/{POST}/{rkey(subject)}"
    return {
        "did": did(author),
        "time_us": T0_US + n * 1000,
        "kind": "commit",
        "commit": {
            "rev": f"3mmoojr{n:06d}",
            "operation": "create",
            "collection": "app.bsky.feed.like",
            "rkey": rkey(n),
            "record": {
                "$type": "app.bsky.feed.like",
                "createdAt": "2026-05-25T14:23:28.778Z",
                "subject": {
                    "cid": "bafyreiaxf7tgbfydx3465sckitq6v564thxe2wwydbi7cwxbxvgssje3em",
                    "uri": uri,
                },
            },
            "cid": "bafyreidqpc7si3dbimffi64lz3xsx2qt45ip7rpna2qpslcddp23itjjzm",
        },
    }


def identity_event(n: int, author: int, handle: str | None = None) -> dict[str, Any]:
    identity: dict[str, Any] = {
        "did": did(author),
        "seq": 30340180350 + n,
        "time": "2026-05-25T14:23:29.950Z",
    }
    if handle is not None:
        identity["handle"] = handle
    return {
        "did": did(author),
        "time_us": T0_US + n * 1000,
        "kind": "identity",
        "identity": identity,
    }


def account_event(
    n: int, author: int, active: bool = True, status: str | None = None
) -> dict[str, Any]:
    """An account event; an inactive account has a `status` (deleted, deactivated, takendown,
    ...: com.atproto.sync.subscribeRepos#account, which Jetstream passes on)."""
    account: dict[str, Any] = {
        "active": active,
        "did": did(author),
        "seq": 30340180351 + n,
        "time": "2026-05-25T14:23:29.950Z",
    }
    if status is not None:
        account["status"] = status
    return {"did": did(author), "time_us": T0_US + n * 1000, "kind": "account", "account": account}


class FakeJetstream:
    """A Jetstream instance on 127.0.0.1 over `events` (sorted by ``time_us``).

    Args:
        events: the instance's log, as recorded (their own ``time_us``); `publish` adds live
            ones.
        floor_us: the oldest ``time_us`` it can replay (a cursor older starts there).
        filter_collections: honour ``wantedCollections`` (a server that does not shows the
            source filtering by itself).
        cut_after: for the n-th connection, hang up (TCP, no close frame) after sending this
            many events.
        pace: seconds between two events sent.
    """

    def __init__(
        self,
        events: list[dict[str, Any]] | None = None,
        *,
        floor_us: int | None = None,
        filter_collections: bool = True,
        cut_after: list[int] | None = None,
        pace: float = 0.0,
    ) -> None:
        self.events = sorted(events or [], key=lambda e: e["time_us"])
        self.floor_us = floor_us
        self.filter_collections = filter_collections
        self.cut_after = list(cut_after or [])
        self.pace = pace
        self.connections: list[dict[str, list[str]]] = []  # the query of each connection
        self.sent = 0
        self._changed = threading.Condition()
        self._open: set[ServerConnection] = set()
        self._closed = False
        self._server: Any = None

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/subscribe"

    def publish(self, *events: dict[str, Any]) -> list[dict[str, Any]]:
        """Live events: stamped, in order, with the instance's clock as it takes them in (the
        real one stamps ``time_us`` so; a stream's first cursor is the time it started), and
        returned with their stamps, which are what a cursor then holds."""
        with self._changed:
            for event in events:
                last = self.events[-1]["time_us"] if self.events else 0
                event["time_us"] = max(time.time_ns() // 1000, last + 1)
                self.events.append(event)
            self._changed.notify_all()
        return list(events)

    def _refuse(self, connection: ServerConnection, request: Any) -> Any:
        if urlsplit(request.path).path == "/subscribe":
            return None
        return connection.respond(404, "404 page not found\n")

    def _handle(self, connection: ServerConnection) -> None:
        query = parse_qs(urlsplit(connection.request.path).query)
        with self._changed:
            number = len(self.connections)
            self.connections.append(query)
            self._open.add(connection)
            if "cursor" in query:
                start_us = max(int(query["cursor"][0]), self.floor_us or 0)
                position = next(
                    (i for i, e in enumerate(self.events) if e["time_us"] >= start_us),
                    len(self.events),
                )
            else:
                position = len(self.events)
        wanted = set(query.get("wantedCollections", ()))
        cut = self.cut_after[number] if number < len(self.cut_after) else None
        sent = 0
        try:
            while not self._closed:
                with self._changed:
                    while position >= len(self.events) and not self._closed:
                        self._changed.wait(0.05)
                    if self._closed:
                        return
                    event = self.events[position]
                position += 1
                if (
                    event["kind"] == "commit"
                    and wanted
                    and self.filter_collections
                    and event["commit"]["collection"] not in wanted
                ):
                    continue
                if cut is not None and sent >= cut:
                    connection.socket.shutdown(socket.SHUT_RDWR)
                    return
                connection.send(json.dumps(event))
                sent += 1
                self.sent += 1
                if self.pace:
                    time.sleep(self.pace)
        except (ConnectionClosed, OSError):
            return
        finally:
            with self._changed:
                self._open.discard(connection)

    def __enter__(self) -> Self:
        self._server = serve(
            self._handle, "127.0.0.1", 0, compression=None, process_request=self._refuse
        )
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            connections = list(self._open)
        for connection in connections:
            connection.close()
        self._server.shutdown()


class FakeAppView(FakeApi):
    """``app.bsky.actor.getProfiles`` over `profiles` (DID → handle); unknown DIDs are left out
    of the answer, as the AppView does for deleted or unknown accounts."""

    def __init__(self, profiles: dict[str, str] | None = None) -> None:
        super().__init__()
        self.profiles = dict(profiles or {})

    def answer(self, request: Request) -> Reply:
        if request.path != "/xrpc/app.bsky.actor.getProfiles":
            return Reply(
                501, {"error": "MethodNotImplemented", "message": "Method Not Implemented"}
            )
        actors = request.params.get("actors", [])
        if len(actors) > 25:
            message = "Error: actors must not have more than 25 elements"
            return Reply(400, {"error": "InvalidRequest", "message": message})
        return Reply(
            200,
            {
                "profiles": [
                    {
                        "did": actor,
                        "handle": self.profiles[actor],
                        "displayName": f"Name of {self.profiles[actor]}",
                        "followersCount": 3,
                        "postsCount": 10,
                        "labels": [],
                        "createdAt": "2024-01-01T00:00:00.000Z",
                    }
                    for actor in actors
                    if actor in self.profiles
                ]
            },
        )

    def calls(self) -> list[list[str]]:
        return [r.params.get("actors", []) for r in self.requests]
