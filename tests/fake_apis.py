"""What the local fakes of the social APIs (`fake_networks`) share: a server on 127.0.0.1 run by
`http.server` in a thread, and faults a test can order on chosen requests: a 429 with reset
headers, a 5xx, a body that is not JSON, a refusal, half a body, or no answer until released.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    params: dict[str, list[str]] = field(default_factory=dict)  # every value of each key


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    cut: bool = False  # send half the body under the full Content-Length, then hang up
    # instead of `body`: writes a body as it goes (Server-Sent Events), given the connection's
    # file; the connection closes when it returns (HTTP/1.0: the body ends with the connection)
    stream: Callable[[BinaryIO], None] | None = None


@dataclass
class Fault:
    """Answer `reply` instead, `times` times, to requests that `when` accepts."""

    reply: Reply
    when: Callable[[Request], bool]
    times: int = 1


class FakeApi:
    """A threaded HTTP server; subclasses implement `answer`. Use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.gates: list[tuple[Callable[[Request], bool], threading.Event]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, request: Request) -> Reply:
        raise NotImplementedError

    def fail(
        self, reply: Reply, when: Callable[[Request], bool] = lambda r: True, times: int = 1
    ) -> None:
        self.faults.append(Fault(reply, when, times))

    def hold(self, when: Callable[[Request], bool]) -> None:
        """Requests that `when` accepts get no answer until `release` (at the latest when the
        server stops): a server that hangs, or a pause at a known request."""
        self.gates.append((when, threading.Event()))

    def release(self) -> None:
        """Answer every held request, and hold no more."""
        for _, gate in self.gates:
            gate.set()
        self.gates.clear()

    def _reply(self, request: Request) -> tuple[Reply, list[threading.Event]]:
        with self._lock:
            self.requests.append(request)
            gates = [gate for when, gate in self.gates if when(request)]
            for fault in self.faults:
                if fault.times > 0 and fault.when(request):
                    fault.times -= 1
                    return fault.reply, gates
            return self.answer(request), gates

    def __enter__(self) -> Self:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                content_type = self.headers.get("Content-Type") or ""
                if "json" in content_type:
                    body = json.loads(raw or b"null")
                else:
                    body = {k: v[-1] for k, v in parse_qs(raw.decode()).items()} if raw else None
                request = Request(
                    self.command,
                    parts.path,
                    {k: v[-1] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    parse_qs(parts.query),
                )
                reply, gates = api._reply(request)
                for gate in gates:
                    gate.wait()
                if reply.stream is not None:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    reply.stream(self.wfile)
                    self.close_connection = True
                    return
                data = (
                    reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                )
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if reply.cut else data)
                self.close_connection = self.close_connection or reply.cut

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:  # keep the test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self.release()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def serving(*apis: FakeApi) -> Iterator[tuple[FakeApi, ...]]:
    """Start every fake, and stop them all at the end."""
    started: list[FakeApi] = []
    try:
        for api in apis:
            started.append(api.__enter__())
        yield tuple(started)
    finally:
        for api in reversed(started):
            api.__exit__(None, None, None)


def not_json() -> Reply:
    """A 200 whose body is an HTML error page, as proxies send during maintenance."""
    return Reply(200, b"<html><body>502 Bad Gateway</body></html>")


class FakeTime(list):
    """Records the pauses a client asks for instead of sleeping; its clock moves by them."""

    def __init__(self) -> None:
        super().__init__()
        self.start = time.time()

    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    def clock(self) -> float:
        return self.start + sum(self)

    def options(self, **more: Any) -> dict[str, Any]:
        """HttpClient options: this sleep and clock, and a short backoff."""
        return {"sleep": self, "clock": self.clock, "backoff": 0.01, **more}


T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def iso(time: datetime, millis: bool = True) -> str:
    text = time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{time.microsecond // 1000:03d}Z" if millis else "Z")
