"""Stream benchmark: Jetstream events per second the live path sustains, and the lag it adds.

A local Jetstream (a websockets server in a child process, on its own core where there are two)
sends post events shaped like the real ones — 1% carry the hashtag, 0.5% are deletes, one in a
thousand an identity event — and a local AppView answers ``getProfiles``. The whole live path
runs against them in this process, pinned to one core: `flows.sources.jetstream` (WebSocket,
JSON, tag match, handles) → `flows.stages.stream` (buffers, flushes to a local lake, deletions).

1. Throughput: the server sends ``--events`` as fast as it can; events per second from the first
   to the last one read.
2. Lag: the server sends ``--rate`` events per second for ``--seconds``, each stamped with its
   send time (``time_us``); the lag of a post is its landing in the lake minus that time, with
   ``[stream] flush_seconds = 1`` (so up to a second of it is the flush interval).

The last line is one JSON object: ``events_per_s``, ``p95_lag_s`` and the settings.

    python -m bench.stream                       # 100,000 events; 2,000 a second for 20 s
    python -m bench.stream --events 20000 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

HASHTAG = "dataengineering"
AUTHORS = 5_000


def _event(n: int, time_us: int) -> str:
    """Event `n` of the stream, as JSON: mostly posts without the tag, some with it, deletes."""
    did = f"did:plc:bench{n % AUTHORS:019d}"
    rkey = f"3lbench{n:012d}"
    if n % 1000 == 999:
        return json.dumps(
            {"did": did, "time_us": time_us, "kind": "identity",
             "identity": {"did": did, "handle": f"a{n % AUTHORS}.bsky.social", "seq": n,
                          "time": "2026-12-06T12:00:00.000Z"}}
        )
    if n % 200 == 7:
        commit = {"rev": f"3lrev{n:012d}", "operation": "delete",
                  "collection": "app.bsky.feed.post", "rkey": f"3lbench{n - 100:012d}"}
    else:
        text = f"post {n} about pipelines, warehouses and the weather"
        record = {"$type": "app.bsky.feed.post", "createdAt": "2026-12-06T12:00:00.000Z",
                  "langs": ["en"], "text": text}
        if n % 100 == 3:
            record["text"] = text + f" #{HASHTAG}"
            start = len(text.encode()) + 1
            record["facets"] = [{
                "index": {"byteStart": start, "byteEnd": start + len(HASHTAG) + 1},
                "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": HASHTAG}],
            }]
        commit = {"rev": f"3lrev{n:012d}", "operation": "create",
                  "collection": "app.bsky.feed.post", "rkey": rkey, "record": record,
                  "cid": f"bafyreibench{n:020d}"}
    return json.dumps({"did": did, "time_us": time_us, "kind": "commit", "commit": commit})


def _serve(port: Any, ready: Any, events: int, rate: float) -> None:
    """The Jetstream server (a child process): `events` events to each client, at `rate` a
    second (0: as fast as it can), each stamped as it leaves."""
    from websockets.sync.server import serve

    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {1})

    def handle(connection) -> None:
        began = time.monotonic()
        for n in range(events):
            if rate:
                due = began + n / rate
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
            connection.send(_event(n, time.time_ns() // 1000))
        connection.close()

    with serve(handle, "127.0.0.1", 0, compression=None) as server:
        port.value = server.socket.getsockname()[1]
        ready.set()
        server.serve_forever()


class _AppView(BaseHTTPRequestHandler):
    """``app.bsky.actor.getProfiles``: every DID has a handle."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        actors = parse_qs(urlsplit(self.path).query).get("actors", [])
        body = json.dumps(
            {"profiles": [{"did": a, "handle": f"{a[-6:]}.bsky.social"} for a in actors]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _phase(events: int, rate: float, appview: str, lake_dir: str) -> tuple[float, list[float]]:
    """Stream `events` events at `rate`; (events per second read, the posts' lags)."""
    from flows.config import Config, PipelineConfig, StreamConfig
    from flows.cursors import JetstreamCursor  # noqa: F401 (the cursor kind the lake keeps)
    from flows.sources.jetstream import JetstreamSettings, JetstreamSource
    from flows.stages.stream import run_stream

    ctx = multiprocessing.get_context("spawn")
    port, ready = ctx.Value("i", 0), ctx.Event()
    server = ctx.Process(target=_serve, args=(port, ready, events, rate), daemon=True)
    server.start()
    try:
        ready.wait(30)
        settings = JetstreamSettings(
            urls=(f"ws://127.0.0.1:{port.value}/subscribe",), appview_url=appview
        )
        source = JetstreamSource(settings)
        config = Config(
            pipeline=PipelineConfig(lake=lake_dir, warehouse=f"duckdb:///{lake_dir}/w.duckdb"),
            stream=StreamConfig(sources=("jetstream",), flush_seconds=1.0, analyze_seconds=0),
        )
        stop = threading.Event()
        first: list[float] = []

        def watch() -> None:  # stop once every event has been read
            while source.stats.events < events and not stop.is_set():
                if source.stats.events and not first:
                    first.append(time.perf_counter())
                time.sleep(0.001)
            first.append(time.perf_counter())
            stop.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        report = run_stream(config, stop=stop, duration=600, sources={"jetstream": source})
        watcher.join()
        return events / (first[-1] - first[0]), report.sources["jetstream"].lags_s
    finally:
        server.kill()
        server.join()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="throughput phase")
    parser.add_argument("--rate", type=float, default=2_000, help="lag phase: events a second")
    parser.add_argument("--seconds", type=float, default=20, help="lag phase: how long")
    args = parser.parse_args(argv)
    logging.getLogger("flows").setLevel(logging.ERROR)  # the server's closes are no news here
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # the live path on one core
    api = ThreadingHTTPServer(("127.0.0.1", 0), _AppView)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    appview = f"http://127.0.0.1:{api.server_address[1]}/xrpc"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            per_s, _ = _phase(args.events, 0, appview, f"{tmp}/burst")
            print(f"throughput: {per_s:,.0f} events/s over {args.events:,} events (one core)")
            paced = int(args.rate * args.seconds)
            _, lags = _phase(paced, args.rate, appview, f"{tmp}/paced")
            p50, p95 = (float(np.percentile(lags, q)) for q in (50, 95))
            print(
                f"lag at {args.rate:,.0f} events/s: {len(lags):,} posts, p50 {p50:.2f} s, "
                f"p95 {p95:.2f} s (event sent → in the lake; flush every 1 s)"
            )
    finally:
        api.shutdown()
    result = {
        "events_per_s": round(per_s),
        "p95_lag_s": round(p95, 3),
        "p50_lag_s": round(p50, 3),
        "events": args.events,
        "rate": args.rate,
        "lag_posts": len(lags),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
