"""The HTTP helper every live source shares: retries on network errors, header parsing, masking."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime

import httpx
import pytest
from fake_apis import FakeTime

from flows.sources.http import GaveUp, HttpClient, _reset_time, _retry_after, describe
from flows.sources.paging import Page, paginate
from flows.sources.secrets import Secret


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_http_network_errors_are_retried_with_backoff_then_reported(caplog):
    caplog.set_level(logging.WARNING)
    fake = FakeTime()
    url = f"http://127.0.0.1:{closed_port()}/api/v1/timelines/tag/x"
    refused = r"GET http://127.0.0.1:\d+/api/v1/timelines/tag/x\?limit=40: ConnectError"
    client = HttpClient("mastodon", **fake.options(attempts=4, backoff=1.0))
    with client, pytest.raises(GaveUp, match=refused):
        client.get_json(url, {"limit": 40, "max_id": None})
    assert len(fake) == 3  # pauses between 4 tries
    assert 1 <= fake[0] <= 2 and 2 <= fake[1] <= 3 and 4 <= fake[2] <= 5
    assert caplog.text.count("try ") == 3 and "try 2 of 4 in" in caplog.text


def test_http_reset_headers_in_every_form():
    now = 1_800_000_000.0
    assert _reset_time("1800000060", now) == now + 60  # X, Bluesky: epoch seconds
    assert _reset_time("42", now) == now + 42  # Reddit: seconds from now
    iso = "2027-01-15T08:00:30.123Z"  # Mastodon
    assert _reset_time(iso, now) == datetime(2027, 1, 15, 8, 0, 30, 123000, UTC).timestamp()
    assert _reset_time("soon", now) is None and _reset_time(None, now) is None
    response = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"})
    date = datetime(2026, 10, 21, 7, 28, tzinfo=UTC).timestamp()
    assert _retry_after(response, date - 30) == 30
    assert _retry_after(httpx.Response(503, headers={"Retry-After": "7"}), now) == 7


def test_http_secrets_are_masked():
    url = "https://h.example/api?q=%23tag&access_token=abc123&password=pw&next_token=t1"
    shown = describe("GET", url)
    assert "abc123" not in shown and "pw" not in shown.split("?")[1].replace("password", "")
    assert "q=%23tag" in shown and "next_token=t1" in shown and "access_token=%2A%2A%2A" in shown
    secret = Secret("s3cr3t")
    assert "s3cr3t" not in repr(secret) + str(secret) + f"{secret}" + repr([secret])
    assert secret.reveal() == "s3cr3t"


def test_http_paginate_follows_tokens_and_stops_on_a_repeated_one():
    pages = {None: Page([1], "a"), "a": Page([2], "b"), "b": Page([3], "b")}
    got = list(paginate(lambda token: pages[token]))
    assert [(p.payload, p.token) for p in got] == [([1], None), ([2], "a"), ([3], "b")]
