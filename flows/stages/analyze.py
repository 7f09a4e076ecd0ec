"""Analyze: lake → NLP → warehouse. Plain functions; `flows.orchestration.gcs_to_bq` wraps them for Prefect.

Collection run records not yet in the warehouse are merged into ``collection_runs`` first, and
the refreshes' facts (`flows.lake.facts`) into ``post_deletions`` and ``post_metrics``.
Files the manifest has not marked as loaded into this warehouse with this model are read in
groups, their posts merged into the warehouse, the posts with no result for the model classified
(each distinct text once), the results merged (at least once a minute, so that a stopped run keeps
its work), and only then the files marked. A run that stops anywhere is finished by the next one,
and MERGE makes the repeated part change nothing. One analyze runs at a time per lake (the lake's
``analyze`` lock): a second one waits, then finds nothing pending, so nothing is classified or
loaded twice.

The sentence vectors a backend computes while classifying (`flows.nlp.backend.EmbeddingBackend`:
lite) are stored beside its results, in ``post_embeddings``, for the conversations computed at
the end (`flows.stages.conversations`), which embed only the posts that have none.

Progress goes to one callback, ``on_progress(done, total)`` in posts: the CLI draws it as a
progress bar, the Prefect flow as a progress artifact.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from flows.config import Config
from flows.lake.compaction import compact
from flows.lake.facts import DELETIONS, METRICS, FactKind, FactLog
from flows.lake.lake import Lake
from flows.lake.runs import RunLog
from flows.nlp.backend import CHUNK_TEXTS, Backend, EmbeddingBackend
from flows.nlp.conversations import EMBEDDING_MODEL_ID, Encoder
from flows.nlp.registry import load_backend
from flows.nlp.stream import classify_texts
from flows.schema import EMBEDDING_SCHEMA, NLP_SCHEMA, UTC_TIMESTAMP
from flows.stages.alerts import AlertReport, Sender, env_sender, send_new_signals
from flows.stages.conversations import update_conversations
from flows.stages.stores import GcpAuth, open_config_warehouse, open_lake
from flows.warehouse.base import Warehouse
from flows.warehouse.tables import COLLECTION_RUNS, POST_DELETIONS, POST_METRICS, POSTS

log = logging.getLogger(__name__)

# Posts read, loaded and classified together (bounds memory), by device; they are classified in
# chunks of CHUNK_TEXTS. A GPU runs tens of thousands of posts a second: CPU-sized groups would
# spend its time waiting on warehouse loads (a BigQuery MERGE takes seconds).
GROUP_ROWS = {"cpu": 5_000, "cuda": 262_144}
# Within a group, results go into the warehouse at least this often: a run stopped half-way (a
# killed worker, Ctrl+C) keeps all but the last minute of its classifying, which on a CPU with the
# tweetnlp models is ~1,000 posts, not a whole group.
LOAD_EVERY_S = 60.0

ProgressCallback = Callable[[int, int], None]
"""``(posts done, posts to do)``, called as the work advances; ``done == total`` at the end."""


@dataclass
class AnalyzeReport:
    """What one analyze run did."""

    files: int = 0
    posts_loaded: int = 0
    analysed: int = 0
    model_id: str = ""
    warehouse: str = ""
    sentiment: Counter = field(default_factory=Counter)
    totals: dict[str, int] = field(default_factory=dict)
    runs_loaded: int = 0  # collection run records new to the warehouse
    alerts: AlertReport | None = None  # None: no [alerts] destination configured
    conversations: int = 0  # of the latest window (flows.stages.conversations)
    files_compacted: int = 0  # small lake files rewritten into fewer (`flows.lake.compaction`)
    snapshots_loaded: int = 0  # counters read by refreshes (post_metrics)
    deletions_loaded: int = 0  # posts gone from their source (post_deletions)


def _groups(lake: Lake, paths: list[str], size: int) -> Iterator[tuple[list[str], pa.Table]]:
    """Consecutive files, concatenated until a group holds about `size` posts; a file that is
    not Parquet any more is left out (the lake moves it aside and logs its path)."""
    group: list[str] = []
    tables: list[pa.Table] = []
    rows = 0
    for path in paths:
        table = lake.read_posts(path)
        if table is None:
            continue
        group.append(path)
        tables.append(table)
        rows += table.num_rows
        if rows >= size:
            yield group, pa.concat_tables(tables)
            group, tables, rows = [], [], 0
    if group:
        yield group, pa.concat_tables(tables)


def load_runs(lake: Lake, warehouse: Warehouse) -> int:
    """Merge the lake's collection run records that `warehouse` lacks (all of them when its
    table is empty: it was recreated); the rows inserted."""
    runs = RunLog(lake)
    pending = runs.pending(warehouse.url, everything=warehouse.counts()[COLLECTION_RUNS.name] == 0)
    if not pending:
        return 0
    inserted = warehouse.load_runs(runs.read(pending))
    runs.mark_loaded(pending, warehouse.url)
    return inserted


def load_facts(lake: Lake, warehouse: Warehouse, kind: FactKind) -> int:
    """Merge the lake's fact files of `kind` (counters, deletions) that `warehouse` lacks (all
    of them when its table is empty: it was recreated); the rows inserted."""
    facts = FactLog(lake, kind)
    table, load = {
        METRICS.name: (POST_METRICS, warehouse.load_metrics),
        DELETIONS.name: (POST_DELETIONS, warehouse.load_deletions),
    }[kind.name]
    pending = facts.pending(warehouse.url, everything=warehouse.counts()[table.name] == 0)
    if not pending:
        return 0
    inserted = load(facts.read(pending))
    facts.mark_loaded(pending, warehouse.url)
    return inserted


def analyse_posts(
    posts: pa.Table,
    backend: Backend,
    warehouse: Warehouse,
    advance: Callable[[int], None] | None = None,
) -> pa.Table:
    """Classify the posts that have no result for the backend's model yet; load and return them,
    with the sentence vectors of an `EmbeddingBackend`.

    ``advance(n)`` is told of every `n` posts dealt with, those found already classified included.
    """
    advance = advance or (lambda n: None)
    received = posts.num_rows
    done = warehouse.analysed_ids(posts.column("post_id").to_pylist(), backend.model_id)
    if done:
        posts = posts.filter(pc.invert(pc.is_in(posts.column("post_id"), pa.array(list(done)))))
    advance(received - posts.num_rows)
    if posts.num_rows == 0:
        return NLP_SCHEMA.empty_table()
    loaded: list[pa.Table] = []  # results in the warehouse, in post order
    waiting: list[pa.Table] = []  # results classified since the last load
    last_load = time.monotonic()
    embedded = isinstance(backend, EmbeddingBackend)

    def load() -> None:
        start = sum(table.num_rows for table in loaded)
        results = pa.concat_tables(waiting)
        ids = posts.column("post_id").slice(start, results.num_rows)
        now = pa.array([datetime.now(timezone.utc)] * results.num_rows, UTC_TIMESTAMP)
        if embedded:  # first: results in the warehouse mean vectors there too
            vectors = results.column("embedding")
            embeddings = pa.table(
                [ids, pa.array([EMBEDDING_MODEL_ID] * results.num_rows), vectors, now],
                names=EMBEDDING_SCHEMA.names,
            ).filter(pc.is_valid(vectors))
            warehouse.load_embeddings(embeddings.cast(EMBEDDING_SCHEMA))
        table = results.add_column(0, "post_id", ids).append_column("analysed_at", now)
        table = table.select(NLP_SCHEMA.names).cast(NLP_SCHEMA)
        warehouse.load_nlp(table)
        loaded.append(table)
        waiting.clear()

    chunk_size = CHUNK_TEXTS[backend.device]
    texts = posts.column("text").to_pylist()
    for chunk in classify_texts(backend, texts, chunk_size=chunk_size, embedded=embedded):
        waiting.append(chunk)
        advance(chunk.num_rows)
        if time.monotonic() - last_load >= LOAD_EVERY_S:
            load()
            last_load = time.monotonic()
    if waiting:
        load()
    return pa.concat_tables(loaded)


def encoder_for(backend: Backend) -> Encoder:
    """The backend when it computes the sentence vectors, else a lite backend to compute them."""
    if isinstance(backend, EmbeddingBackend):
        return backend
    from flows.nlp.lite import LiteBackend  # torch and scikit-learn: only when needed

    return LiteBackend(backend.device)


def analyze(
    config: Config,
    *,
    backend: Backend | None = None,
    on_progress: ProgressCallback | None = None,
    auth: GcpAuth | None = None,
    send: Sender | None = None,
    encoder: Encoder | None = None,
) -> AnalyzeReport:
    """Load every posts file not yet in the warehouse, with NLP results for the configured model.

    Args:
        config: the configuration (lake, warehouse, NLP backend).
        backend: an NLP backend already loaded; by default the configured one.
        on_progress: called with ``(posts done, posts to do)``: once with ``done == 0`` when the
            work is known, after every few hundred posts, and with ``done == total`` at the end.
        auth: the GCP credentials of a ``gs://`` lake or BigQuery (`flows.stages.stores`).
        send: where new signals go (`flows.stages.alerts`); by default the Apprise URLs of
            ``[alerts] urls_env``, if any.
        encoder: embeds, for conversations, the posts that have no stored sentence vector
            (classified by another backend than lite, or before vectors were stored); by default
            the backend when it computes them, else a lite backend. Its model loads only when a
            post needs it: a caller that analyzes again and again passes one to keep it loaded.
    """
    send = send or env_sender(config.alerts)  # a wrong [alerts] stops the run before any work
    lake = open_lake(config, auth)
    backend = backend or load_backend(
        config.pipeline.nlp_backend,
        config.pipeline.nlp_device,
        config.pipeline.nlp_batch_size,
        config.tweetnlp,
    )
    report = AnalyzeReport(model_id=backend.model_id)
    with lake.lock("analyze"), open_config_warehouse(config, auth) as warehouse:
        report.warehouse = warehouse.url
        # first, and quick: collection health shows even when classifying stops half-way
        report.runs_loaded = load_runs(lake, warehouse)
        report.deletions_loaded = load_facts(lake, warehouse, DELETIONS)
        report.snapshots_loaded = load_facts(lake, warehouse, METRICS)
        target = f"{backend.model_id} -> {warehouse.url}"
        manifest = lake.manifest()
        if warehouse.counts()[POSTS.name] == 0 and any(
            target in entry["loaded_into"] for entry in manifest.values()
        ):
            # files marked as loaded into an empty warehouse: it was recreated since
            log.warning("%s holds no posts: loading every lake file into it again", warehouse.url)
            manifest = {path: {**entry, "loaded_into": []} for path, entry in manifest.items()}
        pending = lake.pending_files(target, manifest)
        total = sum(manifest[path]["rows"] for path in pending)
        done = 0

        def advance(posts: int) -> None:
            nonlocal done
            done += posts
            if on_progress is not None:
                on_progress(done, total)

        advance(0)
        group_rows = GROUP_ROWS[backend.device]
        for paths, posts in _groups(lake, pending, group_rows):
            report.posts_loaded += warehouse.load_posts(posts, [lake.uri(p) for p in paths])
            results = analyse_posts(posts, backend, warehouse, advance)
            report.analysed += results.num_rows
            report.sentiment.update(results.column("sentiment").to_pylist())
            lake.mark_loaded(paths, target)
            report.files += len(paths)
        if done < total:  # files moved aside as unreadable: their posts are past doing
            advance(total - done)
        # after loading, so that a compacted file counts as loaded where its members were
        report.files_compacted = compact(lake)
        report.totals = warehouse.counts()
        if report.totals[POSTS.name]:
            encoder = encoder or encoder_for(backend)
            report.conversations = update_conversations(warehouse, config.hashtag, encoder)
        if send is not None:
            report.alerts = send_new_signals(lake, warehouse, config.alerts, send)
    log.info(
        "analyze: %d files, %d posts loaded, %d classified with %s into %s",
        report.files, report.posts_loaded, report.analysed, report.model_id, report.warehouse,
    )
    return report
