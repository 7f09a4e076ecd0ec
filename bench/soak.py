"""Soak benchmark: a year of 15-minute runs (35,040 collect + analyze cycles) on one lake.

Three sources (sample, x, mastodon) each land a small batch every run: new posts of the last
15 minutes, a few late ones of earlier hours and a few already collected. What is timed is the
pipeline's own overhead, on a local lake and DuckDB: `collect_source` for each source (lock,
cursor, run record, normalize, de-duplicate, write) fed by an in-process source, then `analyze`
with a backend that answers fixed labels and sentence vectors drawn from a hash of the text, as
the lite backend hands its vectors over (so the conversations step clusters the posts of the
last two weeks at the end of each run, with no model).

1. A few runs are timed on the empty lake (the first runs of the year).
2. The rest of the year is built quickly, day by day, leaving what the runs leave. The last
   `BY_RUN_DAYS` days: each run's posts files and run record file written as the lake writes
   them; earlier days: what compaction leaves of them, written at once (one posts file per
   partition, one run records file per source). Each day's files are listed in the manifest and
   in ``runs.json`` once instead of once a run, its posts, results, embeddings and run records
   loaded into the warehouse and marked, then the day's `flows.lake.compaction.compact`, as analyze runs it.
3. A few runs are timed at the end of the year, on that lake and warehouse, and the lake's post
   count is checked against the warehouse's.

The last line is one JSON object: runs, files (posts and run record files listed at the end),
first_run_s and last_run_s (the median cost of one collect + analyze run at the start and at
the end), peak_rss_mb.

    python -m bench.soak                    # a year: ~4 minutes on 2 cores
    python -m bench.soak --days 30          # a month
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flows.config import Config, PipelineConfig
from flows.cursors import SampleCursor, SourceCursor, WalkCursor
from flows.lake.compaction import compact
from flows.lake.lake import Lake
from flows.lake.runs import RUNS_DIR, RUNS_STATE, CollectionRun, RunLog
from flows.nlp.conversations import DIMENSIONS, EMBEDDING_MODEL_ID, quantize
from flows.schema import (
    COLLECTION_RUN_SCHEMA, EMBEDDING_SCHEMA, NLP_RESULT_SCHEMA, NLP_SCHEMA, POST_SCHEMA,
    UTC_TIMESTAMP,
)
from flows.sources.base import Batch
from flows.sources.sample.source import SampleSettings, generate_posts
from flows.stages.analyze import analyze
from flows.stages.collect import collect_source
from flows.stages.normalize import normalize
from flows.warehouse.base import Warehouse
from flows.warehouse.open import open_warehouse

SOURCES = ("sample", "x", "mastodon")
RUN_EVERY = timedelta(minutes=15)
PER_RUN = 12  # new posts per source per run
LATE = 2  # of them, created hours before the run
REPEATED = 2  # posts of the run before, collected again
TIMED = 5  # runs timed at each end
BY_RUN_DAYS = 7  # the last days built run by run; earlier ones as compaction leaves them
HASHTAG = "dataengineering"


class FixedBackend:
    """Fixed labels, and vectors from a hash of the text: what is measured is the pipeline, not
    a model (`flows.nlp.backend.EmbeddingBackend`, as the lite backend)."""

    model_id = "fixed-v1"
    device = "cpu"

    def classify(self, texts: Sequence[str]) -> pa.Table:
        n = len(texts)
        return pa.table(
            {
                "sentiment": ["neutral"] * n,
                "sentiment_score": [0.5] * n,
                "topic": ["science_&_technology"] * n,
                "topic_score": [0.5] * n,
                "topics": [["science_&_technology"]] * n,
                "entities": [[]] * n,
                "model_id": [self.model_id] * n,
            },
            schema=NLP_RESULT_SCHEMA,
        )

    def classify_embedded(self, texts: Sequence[str]) -> pa.Table:
        vectors = pa.array([v.tobytes() for v in self.embed(texts)], pa.binary())
        return self.classify(texts).append_column("embedding", vectors)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        digests = b"".join(hashlib.shake_128(t.encode()).digest(DIMENSIONS) for t in texts)
        raw = np.frombuffer(digests, np.int8).reshape(len(texts), DIMENSIONS).astype(np.float32)
        return quantize(raw / np.linalg.norm(raw, axis=1, keepdims=True))


def posts_of(
    source: str, first: int, stop: int, year_start: datetime, settings: SampleSettings
) -> pa.Table:
    """Posts ``[first, stop)`` of `source`, normalized like a source's batch.

    Post ``i`` belongs to run ``i // PER_RUN`` and was created in the 15 minutes before it (the
    last `LATE` of each run hours before)."""
    index = np.arange(first, stop)
    runs_at = year_start + (stop - 1) // PER_RUN * RUN_EVERY
    table = generate_posts(first, stop, settings, HASHTAG, runs_at)
    ago = (index * 7_919) % 900 - (index // PER_RUN) * RUN_EVERY.total_seconds()
    late = index % PER_RUN >= PER_RUN - LATE
    ago[late] += 3_600 + (index[late] * 104_729) % 39_600
    columns = {
        "post_id": [f"{source}:{i}" for i in index],
        "source": [source] * table.num_rows,
        "created_at": [year_start - timedelta(seconds=int(s)) for s in ago],
    }
    for name, values in columns.items():
        field = POST_SCHEMA.field(name)
        column = pa.array(values, field.type)
        table = table.set_column(POST_SCHEMA.get_field_index(name), field, column)
    return normalize(table)


def run_posts(source: str, run: int, year_start: datetime, settings: SampleSettings) -> pa.Table:
    """The batch of `source` at run number `run`: its posts and `REPEATED` of the run before."""
    first = max(0, run * PER_RUN - REPEATED)
    return posts_of(source, first, (run + 1) * PER_RUN, year_start, settings)


@dataclass
class Feed:
    """An in-process source: one batch per run."""

    name: str
    posts: pa.Table

    def fetch(self, hashtag: str, cursor: SourceCursor, limit: int | None) -> Iterator[Batch]:
        newest = pc.max(self.posts.column("created_at")).as_py()
        last = self.posts.column("post_id")[-1].as_py()
        if isinstance(cursor, SampleCursor):
            yield Batch(self.posts, SampleCursor(int(last.split(":")[1]) + 1, newest))
        else:
            yield Batch(self.posts, WalkCursor({"": last}, None, newest))


def timed_run(config: Config, run: int, year_start: datetime, settings: SampleSettings) -> float:
    """One real collect + analyze run; its seconds."""
    feeds = [Feed(source, run_posts(source, run, year_start, settings)) for source in SOURCES]
    at = year_start + run * RUN_EVERY
    start = time.perf_counter()
    run_id = f"{at:%Y%m%dT%H%M%SZ}-soak"
    for feed in feeds:
        collect_source(config, feed.name, run_id, source=feed)
    analyze(config, backend=FixedBackend())
    return time.perf_counter() - start


def build_day(
    lake: Lake, warehouse: Warehouse, day: int, runs: range, year_start: datetime,
    settings: SampleSettings, by_run: bool,
) -> None:
    """Runs `runs` (numbers within the year) of day `day`, listed and loaded once for the day,
    then the day's compaction, as analyze runs it.

    `by_run`: each run's posts files and run record files written as the runs write them;
    otherwise (days long closed) what compaction leaves of them, written at once: one posts
    file per partition, one run records file per source.
    """
    target = f"{FixedBackend.model_id} -> {warehouse.url}"
    posts_entries: dict[str, dict] = {}
    runs_entries: dict[str, dict] = {}
    tables, records = [], []
    if by_run:
        for run in runs:
            at = year_start + run * RUN_EVERY
            run_id = f"{at:%Y%m%dT%H%M%SZ}-soak"
            for source in SOURCES:
                # the repeated posts are the last run's: the lake's de-duplication drops them
                table = run_posts(source, run, year_start, settings).slice(REPEATED if run else 0)
                record = CollectionRun(run_id, source, HASHTAG, at, at, posts_new=table.num_rows)
                posts_entries.update(_posts_files(lake, table, f"{run_id}-{source}", at, target))
                runs_entries.update(_runs_file(lake, [record], run_id, at, warehouse.url))
                tables.append(table)
                records.append(record)
    else:
        at = year_start + runs[-1] * RUN_EVERY
        for source in SOURCES:
            name = f"{at:%Y%m%dT%H%M%SZ}-soak-{source}"
            table = posts_of(source, runs[0] * PER_RUN, runs.stop * PER_RUN, year_start, settings)
            posts_entries.update(_posts_files(lake, table, name, at, target))
            mine = [
                CollectionRun(f"{started:%Y%m%dT%H%M%SZ}-soak", source, HASHTAG, started, started,
                              posts_new=PER_RUN)
                for started in (year_start + run * RUN_EVERY for run in runs)
            ]
            runs_entries.update(_runs_file(lake, mine, name, at, warehouse.url))
            tables.append(table)
            records += mine
    posts = pa.concat_tables(tables)
    warehouse.load_posts(posts)
    results = FixedBackend().classify_embedded(posts.column("text").to_pylist())
    when = pa.array([year_start + timedelta(days=day)] * posts.num_rows, UTC_TIMESTAMP)
    model = pa.array([EMBEDDING_MODEL_ID] * posts.num_rows)
    embeddings = [posts.column("post_id"), model, results.column("embedding"), when]
    warehouse.load_embeddings(pa.table(embeddings, schema=EMBEDDING_SCHEMA))
    nlp = results.add_column(0, "post_id", posts.column("post_id"))
    nlp = nlp.append_column("analysed_at", when).select(NLP_SCHEMA.names)
    warehouse.load_nlp(nlp.cast(NLP_SCHEMA))
    warehouse.load_runs(pa.Table.from_pylist([r.to_row() for r in records], COLLECTION_RUN_SCHEMA))
    for state, entries in (("manifest.json", posts_entries), (RUNS_STATE, runs_entries)):
        lake._update_json(state, lambda data, new=entries: data.setdefault("files", {}).update(new))
    compact(lake, year_start + timedelta(days=day + 1))


def _posts_files(lake: Lake, table: pa.Table, name: str, at: datetime, target: str) -> dict:
    """`table` written as `LakeWriter.write` writes it, one file per day; their manifest entries."""
    entries = {}
    days = pc.strftime(table.column("created_at"), "%Y-%m-%d")
    for date in pc.unique(days).to_pylist():
        part = table.filter(pc.equal(days, date))
        source = part.column("source")[0].as_py()
        path = f"posts/source={source}/date={date}/{name}-00000.parquet"
        _write(lake, path, part)
        entries[path] = {
            "rows": part.num_rows, "run_id": name, "written_at": at.isoformat(),
            "loaded_into": [target],
        }
    return entries


def _runs_file(
    lake: Lake, records: list[CollectionRun], name: str, at: datetime, target: str
) -> dict:
    """`records` written as `RunLog.record` writes one; the ``runs.json`` entry."""
    path = f"{RUNS_DIR}/source={records[0].source}/date={at.date()}/{name}.parquet"
    _write(lake, path, pa.Table.from_pylist([r.to_row() for r in records], COLLECTION_RUN_SCHEMA))
    entry = {
        "run_id": records[0].run_id if len(records) == 1 else None,
        "source": records[0].source, "started_at": records[0].started_at.isoformat(),
        "cost_usd": 0.0, "written_at": at.isoformat(), "loaded_into": [target],
    }
    return {path: entry}


def _write(lake: Lake, path: str, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    lake._atomic_write(lake._path(path), sink.getvalue().to_pybytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    per_day = int(timedelta(days=1) / RUN_EVERY)
    total = args.days * per_day
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    year_start = now - timedelta(days=args.days)
    settings = SampleSettings(posts=(total + 1) * PER_RUN, days=args.days)
    with tempfile.TemporaryDirectory() as folder:
        lake_url = str(Path(folder, "lake"))
        warehouse_url = f"duckdb:///{folder}/warehouse.duckdb"
        pipeline = PipelineConfig(sources=SOURCES, lake=lake_url, warehouse=warehouse_url)
        config = Config(pipeline=pipeline)

        def timed(runs: range) -> list[float]:
            return [timed_run(config, k, year_start, settings) for k in runs]

        first = timed(range(TIMED))
        print(f"first runs: {', '.join(f'{s:.3f}' for s in first)} s", flush=True)
        lake = Lake(lake_url)
        started = time.perf_counter()
        warehouse = open_warehouse(warehouse_url)
        for day in range(args.days):
            runs = range(max(TIMED, day * per_day), min(total - TIMED, (day + 1) * per_day))
            by_run = day >= args.days - BY_RUN_DAYS
            build_day(lake, warehouse, day, runs, year_start, settings, by_run)
            if (day + 1) % 30 == 0:
                files = len(lake.manifest()) + len(RunLog(lake).entries())
                print(f"day {day + 1}: {runs.stop:,} runs, {files:,} files listed, "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
        warehouse.close()
        last = timed(range(total - TIMED, total))
        print(f"last runs: {', '.join(f'{s:.3f}' for s in last)} s", flush=True)
        files = len(lake.manifest()) + len(RunLog(lake).entries())
        warehouse = open_warehouse(warehouse_url)
        try:
            stored = warehouse.counts()
        finally:
            warehouse.close()
        if stored["posts"] != lake.count_posts():  # nothing lost, nothing twice
            raise SystemExit(f"lake {lake.count_posts():,} posts, warehouse {stored['posts']:,}")
        print(f"{lake.count_posts():,} posts in the lake and the warehouse", flush=True)
    print(json.dumps({
        "runs": total,
        "files": files,
        "first_run_s": round(statistics.median(first), 4),
        "last_run_s": round(statistics.median(last), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
