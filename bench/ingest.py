"""Ingest benchmark: N sample posts → normalize → de-duplicate → lake, in chunks.

Runs N and 4N posts, each in a fresh process so that its peak RSS is its own, and prints
posts/s and peak RSS for both; the last line is one JSON object for N.

    python -m bench.ingest                 # N = 1,000,000
    python -m bench.ingest --posts 200000 --chunk 50000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone


def ingest(posts: int, chunk: int, lake_dir: str) -> dict:
    """One measured run in this process."""
    from flows.lake.lake import Lake
    from flows.stages.normalize import normalize
    from flows.sources.sample.source import SampleSettings, generate_posts

    settings = SampleSettings(posts=posts)
    now = datetime.now(timezone.utc)
    new = 0
    start = time.perf_counter()
    with Lake(lake_dir).writer("bench") as writer:
        for first in range(0, posts, chunk):
            last = min(first + chunk, posts)
            table = generate_posts(first, last, settings, "dataengineering", now)
            new += writer.write(normalize(table)).new
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "posts": posts,
        "new": new,
        "seconds": round(seconds, 2),
        "posts_per_s": round(posts / seconds),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as lake_dir:
            print(json.dumps(ingest(args.posts, args.chunk, lake_dir)))
        return

    results = []
    for n in (args.posts, 4 * args.posts):
        out = subprocess.run(
            [sys.executable, "-m", "bench.ingest", "--child", "--posts", str(n)]
            + ["--chunk", str(args.chunk)],
            check=True, capture_output=True, text=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        print(
            f"{n:>10,} posts: {result['seconds']:>6.2f} s, {result['posts_per_s']:>9,} posts/s, "
            f"{result['new']:,} new after de-duplication, peak RSS {result['peak_rss_mb']:,.0f} MB"
        )
    first, second = results
    print(
        f"RSS growth from N to 4N: {second['peak_rss_mb'] - first['peak_rss_mb']:+.0f} MB; "
        f"chunk {args.chunk:,} posts"
    )
    largest = {"posts_4n_per_s": second["posts_per_s"], "peak_rss_4n_mb": second["peak_rss_mb"]}
    print(json.dumps({**first, **largest}))


if __name__ == "__main__":
    main()
