"""Signals and conversations benchmark, on the embedded default (DuckDB).

Builds, in a child process, a warehouse of N sample posts (six weeks, the sample's story) with
an NLP result each (sentiment, one topic, one entity: drawn at random, as the NLP is not what is
measured) and a week of `--window` posts with stored embeddings (int8, drawn around 40 centres);
then, in a fresh process so that its peak RSS is its own, times view ``signals`` read whole, and
the conversations of the window (embeddings read back, PCA, HDBSCAN, class-based TF-IDF
labels).
The last line is one JSON object.

    python -m bench.signals                      # 1,000,000 posts, a window of 10,000
    python -m bench.signals --posts 200000 --window 5000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

CHUNK = 100_000
HASHTAG = "dataengineering"
ENTITIES = [f"Tool{i}" for i in range(40)]
TOPICS = ["news_&_social_concern", "science_&_technology", "business_&_entrepreneurs",
          "learning_&_educational", "diaries_&_daily_life"]


def _results(post_ids: pa.Array, rng: np.random.Generator) -> pa.Table:
    from flows.schema import NLP_SCHEMA

    n = len(post_ids)
    sentiment = np.array(["negative", "neutral", "positive"])[rng.integers(0, 3, n)]
    topic = np.array(TOPICS)[rng.integers(0, len(TOPICS), n)]
    entity = np.array(ENTITIES)[rng.integers(0, len(ENTITIES), n)]
    offsets = pa.array(np.arange(n + 1, dtype=np.int32))
    entities = pa.ListArray.from_arrays(
        offsets, pa.StructArray.from_arrays([pa.array(entity), pa.array(["product"] * n)],
                                            ["text", "type"])
    )
    return pa.table({
        "post_id": post_ids,
        "sentiment": pa.array(sentiment),
        "sentiment_score": pa.array(rng.random(n)),
        "topic": pa.array(topic),
        "topic_score": pa.array(rng.random(n)),
        "topics": pa.ListArray.from_arrays(offsets, pa.array(topic)),
        "entities": entities,
        "model_id": pa.array(["bench"] * n),
        "analysed_at": pa.array([datetime.now(UTC)] * n, pa.timestamp("us", "UTC")),
    }).cast(NLP_SCHEMA)


def build(path: str, posts: int, window: int) -> None:
    """The warehouse of the benchmark, chunk by chunk (memory stays flat)."""
    from flows.nlp.conversations import EMBEDDING_MODEL_ID, quantize
    from flows.schema import EMBEDDING_SCHEMA
    from flows.sources.sample.source import SampleSettings, generate_posts
    from flows.warehouse.duckdb_warehouse import DuckDBWarehouse

    settings = SampleSettings(posts=posts)
    rng = np.random.default_rng(7)
    collected = datetime(2026, 11, 24, tzinfo=UTC)
    with DuckDBWarehouse(path) as warehouse:
        for first in range(0, posts, CHUNK):
            table = generate_posts(first, min(first + CHUNK, posts), settings, HASHTAG, collected)
            warehouse.load_posts(table)
            warehouse.load_nlp(_results(table.column("post_id").combine_chunks(), rng))
        end = collected
        ids = warehouse.query(
            "SELECT post_id FROM posts WHERE created_at >= ? AND NOT is_repost AND text <> ''"
            " ORDER BY created_at DESC LIMIT ?",
            [end - timedelta(days=7), window],
        ).column("post_id")
        centres = rng.normal(size=(40, 384))
        vectors = centres[rng.integers(0, 40, len(ids))] + rng.normal(0, 0.6, (len(ids), 384))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        warehouse.load_embeddings(pa.table({
            "post_id": ids,
            "model_id": pa.array([EMBEDDING_MODEL_ID] * len(ids)),
            "embedding": pa.array([v.tobytes() for v in quantize(vectors)], pa.binary()),
            "embedded_at": pa.array([datetime.now(UTC)] * len(ids), pa.timestamp("us", "UTC")),
        }).cast(EMBEDDING_SCHEMA))


def measure(path: str) -> dict:
    """One measured run in this process."""
    from flows.nlp.conversations import cluster
    from flows.warehouse.duckdb_warehouse import DuckDBWarehouse

    with DuckDBWarehouse(path) as warehouse:
        posts = warehouse.counts()["posts"]
        start = time.perf_counter()
        signals = warehouse.query("SELECT * FROM signals").num_rows
        signals_s = time.perf_counter() - start
        start = time.perf_counter()
        window = warehouse.query(
            "SELECT p.text, v.embedding FROM post_embeddings AS v"
            " JOIN posts AS p ON p.post_id = v.post_id ORDER BY p.created_at, p.post_id"
        )
        vectors = np.frombuffer(b"".join(window.column("embedding").to_pylist()), np.int8)
        found = cluster(vectors.reshape(window.num_rows, -1), window.column("text").to_pylist(),
                        [HASHTAG])
        conversations_s = time.perf_counter() - start
    return {
        "posts": posts,
        "signals": signals,
        "signals_s": round(signals_s, 2),
        "window_posts": window.num_rows,
        "conversations": len(found),
        "conversations_s": round(conversations_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--window", type=int, default=10_000)
    parser.add_argument("--build", metavar="FILE", help=argparse.SUPPRESS)  # the child's job
    parser.add_argument("--measure", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(args.build, args.posts, args.window)
        return
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "bench.duckdb")
        child = [sys.executable, "-m", "bench.signals", "--posts", str(args.posts),
                 "--window", str(args.window)]
        subprocess.run([*child, "--build", path], check=True)
        out = subprocess.run([*child, "--measure", path], check=True, capture_output=True,
                             text=True).stdout.strip().splitlines()[-1]
    result = json.loads(out)
    print(f"signals over {result['posts']:,} posts: {result['signals_s']} s "
          f"({result['signals']} signals); conversations over {result['window_posts']:,} posts: "
          f"{result['conversations_s']} s; peak RSS {result['peak_rss_mb']} MB")
    print(json.dumps({k: result[k] for k in
                      ("posts", "signals_s", "window_posts", "conversations_s", "peak_rss_mb")}))


if __name__ == "__main__":
    main()
