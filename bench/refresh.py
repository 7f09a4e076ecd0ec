"""Refresh benchmark: posts read again per second, against a local server with the APIs' batches.

A server on 127.0.0.1 answers Bluesky's ``app.bsky.feed.getPosts`` (25 URIs a call) and
Mastodon's ``GET /api/v1/statuses?id[]=`` (20 ids a call) from posts held in memory; a lake holds
N posts of each, all due. The whole refresh stage runs against it (what is due, the lookups
through the shared HTTP client, the snapshots landing in the lake), and prints posts per second
per source. Then, by the schedule of `flows.stages.refresh`, the API calls a day that a hashtag of
N posts a day costs per network, when refreshes run hourly. The last line is one JSON object.

    python -m bench.refresh                 # N = 20,000 per source
    python -m bench.refresh --posts 2000
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from flows.stages.refresh import next_reading

BATCHES = {"bluesky": 25, "mastodon": 20, "reddit": 100, "x": 100}
DAY_S = 86_400.0


class _Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs
    disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart
    bodies: dict[str, bytes] = {}  # native key → its JSON

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        keys = query.get("uris") or query.get("id[]") or []
        items = b",".join(self.bodies[key] for key in keys if key in self.bodies)
        data = (b'{"posts":[' + items + b"]}") if "uris" in query else b"[" + items + b"]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def _lake(lake_dir: str, host: str, posts: int, now: datetime):
    """A lake with `posts` Bluesky and Mastodon posts, two hours old, read an hour ago."""
    from flows.lake.lake import Lake
    from flows.schema import posts_table

    rows = []
    for n in range(posts):
        uri = f"at://did:plc:bench{n % 500}/app.bsky.feed.post/{n:08d}"
        _Api.bodies[uri] = json.dumps(
            {"uri": uri, "likeCount": n, "repostCount": 1, "replyCount": 2, "quoteCount": 0}
        ).encode()
        status_uri = f"https://{host}/users/u{n % 500}/statuses/{100000 + n}"
        _Api.bodies[str(100000 + n)] = json.dumps(
            {"id": str(100000 + n), "uri": status_uri, "favourites_count": n,
             "reblogs_count": 1, "replies_count": 2, "quotes_count": 0, "reblog": None}
        ).encode()
        for source, native_id in (("bluesky", uri), ("mastodon", status_uri)):
            rows.append({
                "post_id": f"{source}:{native_id}", "source": source, "native_id": native_id,
                "hashtag": "dataengineering", "created_at": now - timedelta(hours=2),
                "collected_at": now - timedelta(hours=1), "text": "bench",
            })
    lake = Lake(lake_dir)
    with lake.writer("bench") as writer:
        writer.write(posts_table(rows))
    return lake


def measure(posts: int) -> dict[str, float]:
    """Posts read again per second by the refresh stage, per source, against the local API."""
    from flows.config import Config, PipelineConfig
    from flows.sources.bluesky import BlueskySettings
    from flows.sources.mastodon import MastodonSettings
    from flows.stages.refresh import refresh_source

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    now = datetime.now(timezone.utc)
    rates = {}
    try:
        with tempfile.TemporaryDirectory() as lake_dir:
            lake = _lake(lake_dir, host, posts, now)
            config = Config(
                pipeline=PipelineConfig(sources=("bluesky", "mastodon"), lake=lake_dir),
                source_settings={
                    "bluesky": BlueskySettings(appview_url=f"http://{host}/xrpc"),
                    "mastodon": MastodonSettings(instances=(f"http://{host}",)),
                },
            )
            for source in ("bluesky", "mastodon"):
                start = time.perf_counter()
                report = refresh_source(config, source, "bench", lake=lake, clock=lambda: now)
                seconds = time.perf_counter() - start
                assert report.read == posts, (source, report.read, report.error)
                rates[source] = report.read / seconds
                print(
                    f"{source:>9}: {report.read:,} posts in {seconds:.2f} s, "
                    f"{report.read / seconds:,.0f} posts/s, {report.run.requests:,} requests "
                    f"of {BATCHES[source]}"
                )
    finally:
        server.shutdown()
        server.server_close()
    return rates


def readings_per_post(days: int, growth: float, run_every_s: float, collected_age_s: float) -> int:
    """How often the schedule reads one post in its `days`, refreshes every `run_every_s`."""
    created, read_at, reads = 0.0, collected_age_s, 0
    run = math.ceil(read_at / run_every_s) * run_every_s
    while run < days * DAY_S:
        if run >= next_reading(created, read_at, growth):
            read_at, reads = run, reads + 1
        run += run_every_s
    return reads


def calls_per_day(per_day: int, days: int, growth: float, batch: int) -> float:
    """API calls a day of a hashtag of `per_day` posts a day, spread evenly, collected 7.5
    minutes old on average, refreshed hourly: each run's due posts in calls of `batch`."""
    run_every = 3600.0
    step = DAY_S / per_day
    due_at: dict[int, int] = {}  # run index (within a day, steady state) → posts due
    for k in range(per_day):
        created = k * step
        read_at = created + 450.0
        while True:
            due = next_reading(created, read_at, growth)
            run = math.ceil(due / run_every) * run_every
            if run - created >= days * DAY_S:
                break
            slot = int(run // run_every) % 24
            due_at[slot] = due_at.get(slot, 0) + 1
            read_at = run
    return float(sum(math.ceil(n / batch) for n in due_at.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20_000, help="posts per source")
    args = parser.parse_args()
    from flows.config import RefreshConfig

    schedule = RefreshConfig()
    rates = measure(args.posts)
    reads = readings_per_post(schedule.days, schedule.growth, 3600, 450)
    print(
        f"schedule: [refresh] days = {schedule.days}, growth = {schedule.growth:g}, hourly runs: "
        f"{reads} readings per post"
    )
    table = {}
    print(f"{'posts/day':>10} " + " ".join(f"{name:>9}" for name in BATCHES))
    for per_day in (100, 1_000, 10_000):
        row = {
            name: calls_per_day(per_day, schedule.days, schedule.growth, batch)
            for name, batch in BATCHES.items()
        }
        table[per_day] = row
        print(f"{per_day:>10,} " + " ".join(f"{row[name]:>9,.0f}" for name in BATCHES))
    total = 2 * args.posts / sum(args.posts / rate for rate in rates.values())
    print(json.dumps({
        "posts": args.posts,
        "readings_per_post": reads,
        "calls_per_day": {str(k): v for k, v in table.items()},
        **{f"{name}_posts_per_s": round(rate) for name, rate in rates.items()},
        "posts_per_s": round(total),
    }))


if __name__ == "__main__":
    main()
