"""Stream: live sources → lake, and analyze every minute, so that a post is on the dashboard
within about two minutes of its event. Plain functions; `flows.orchestration.stream` wraps them
for Prefect, ``python -m flows stream`` runs them from the shell.

Each streaming source (`flows.sources.base.StreamSource`) runs in a thread of its own and puts
what it delivers on one queue. This thread buffers it per source and flushes every
``[stream] flush_seconds`` (or once ``flush_posts`` posts wait): the posts through a lake writer
(de-duplicated like any batch), then the deletions of posts the lake holds (`flows.lake.facts`),
then the cursor of the last item flushed. A post deleted before its flush is taken out of the
buffer and never lands. A process killed between flushes loses its buffer only: the source
replays it from the saved cursor, and the lake drops what had landed already. Every
``analyze_seconds`` the stage flushes, rewrites each source's run record (status ``running``,
its counts so far: the dashboard's heartbeat) and runs analyze with the backend it loaded once.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from flows.config import Config
from flows.cursors import SourceCursor, new_cursor
from flows.lake.facts import DELETIONS, FactLog
from flows.lake.lake import Lake, id_hashes
from flows.lake.runs import CollectionRun, RunLog
from flows.nlp.backend import Backend
from flows.nlp.conversations import Encoder
from flows.nlp.registry import load_backend
from flows.schema import POST_DELETION_SCHEMA, posts_table
from flows.settings import ConfigError
from flows.sources.base import Record, SourceError, StreamItem, StreamSource
from flows.sources.registry import STREAM_SECTIONS, make_stream
from flows.stages.alerts import Sender
from flows.stages.analyze import analyze, encoder_for
from flows.stages.collect import new_run_id
from flows.stages.normalize import normalize
from flows.stages.stores import GcpAuth, open_lake

log = logging.getLogger(__name__)

# Items waiting between the sources' threads and this one: when the lake or analyze falls
# behind, the sources wait (their sockets buffer) instead of memory growing without end.
QUEUE_ITEMS = 100_000
RECORD_EVERY_S = 60.0  # a running stream's record (its heartbeat) is rewritten this often


@dataclass
class SourceStream:
    """What one streaming source did in a run (`name`: its records' and cursor's name)."""

    name: str
    events: int = 0  # every event received, matching or not
    posts: int = 0  # posts of the hashtag received (replays and edits included)
    new: int = 0  # posts that landed in the lake
    duplicates: int = 0  # posts flushed that the lake held already (replays, edits)
    deleted: int = 0  # deletions of posts the lake holds, recorded
    dropped: int = 0  # posts deleted before their flush: they never landed
    reconnects: int = 0
    gaps: int = 0
    cursor: SourceCursor | None = None  # as saved at the last flush
    error: str | None = None
    lags_s: list[float] = field(default_factory=list)  # per post flushed: its event → the lake


@dataclass
class StreamReport:
    """What one stream run did."""

    run_id: str
    sources: dict[str, SourceStream]
    seconds: float = 0.0
    flushes: int = 0
    analyses: int = 0
    analyze_errors: int = 0
    stopped_by: int | None = None  # the signal that stopped it (SIGINT, SIGTERM), if one did

    @property
    def new(self) -> int:
        return sum(source.new for source in self.sources.values())


class _Buffer:
    """What one source delivered since its last flush."""

    def __init__(self) -> None:
        self.posts: dict[str, Record] = {}  # post_id → the newest version (an edit replaces)
        self.event_times: dict[str, float] = {}
        self.deleted: dict[str, datetime | None] = {}  # post_id → when, if the source says
        self.deleted_authors: dict[str, datetime | None] = {}  # post_id prefix → when
        self.cursor: SourceCursor | None = None

    def add(self, item: StreamItem, report: SourceStream) -> None:
        self.cursor = item.cursor
        if item.post is not None:
            post_id = item.post["post_id"]
            self.posts[post_id] = item.post
            self.event_times[post_id] = item.event_time or time.time()
            report.posts += 1
        elif item.deleted is not None:
            if self.posts.pop(item.deleted, None) is not None:
                report.dropped += 1
            self.deleted[item.deleted] = _when(item)
        elif item.deleted_author is not None:
            gone = [post_id for post_id in self.posts if post_id.startswith(item.deleted_author)]
            for post_id in gone:
                del self.posts[post_id]
            report.dropped += len(gone)
            self.deleted_authors[item.deleted_author] = _when(item)


def _when(item: StreamItem) -> datetime | None:
    at = item.event_time
    return datetime.fromtimestamp(at, timezone.utc) if at is not None else None


class _Held:
    """The ids of the posts the lake holds, by lake source, as sorted hashes, and their authors:
    what a deletion is checked against. Read from the lake the first time a source's deletion
    (of a post, of an account) comes."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._hashes: dict[str, np.ndarray] = {}
        self._authors: dict[str, set[str]] = {}

    def _of(self, source: str) -> np.ndarray:
        if source not in self._hashes:
            self._hashes[source] = self.lake.post_hashes(source)
        return self._hashes[source]

    def add(self, source: str, post_ids: list[str]) -> None:
        if post_ids:
            self._hashes[source] = np.union1d(self._of(source), id_hashes(pa.array(post_ids)))
            if source in self._authors:
                self._authors[source].update(map(_author, post_ids))

    def by_author(self, source: str, author: str) -> list[str]:
        """The ids of the held posts of `author` (a post_id prefix, `_author`)."""
        ids = None
        if source not in self._authors:
            ids = self.lake.post_ids(source)
            authors = pc.replace_substring_regex(ids, pattern=_AUTHOR, replacement=r"\1")
            self._authors[source] = set(pc.unique(authors).to_pylist())
        if author not in self._authors[source]:
            return []
        ids = self.lake.post_ids(source) if ids is None else ids
        return ids.filter(pc.starts_with(ids, author)).to_pylist()

    def holds(self, source: str, post_ids: list[str]) -> np.ndarray:
        return np.isin(id_hashes(pa.array(post_ids, pa.string())), self._of(source))


def _lake_source(post_id: str) -> str:
    return post_id.split(":", 1)[0]  # post ids are "<source>:<native id>" (flows.schema)


_AUTHOR = r"^([^:]+:[a-z]+://[^/]+/).*$"  # "bluesky:at://<did>/app.bsky.feed.post/<rkey>"


def _author(post_id: str) -> str:
    """A post id up to its URI's authority (``bluesky:at://<did>/``): whose post it is."""
    start = post_id.find("://") + 3
    return post_id[: post_id.find("/", start) + 1]


class _Stream:
    """One run: the sources' threads, the buffers, the flushes, the records."""

    def __init__(
        self,
        config: Config,
        lake: Lake,
        sources: Mapping[str, StreamSource],
        stop: threading.Event,
        run_id: str,
    ) -> None:
        self.config, self.lake, self.stop = config, lake, stop
        self.sources = {source.name: source for source in sources.values()}
        self.report = StreamReport(run_id, {name: SourceStream(name) for name in self.sources})
        self.buffers = {name: _Buffer() for name in self.sources}
        self.waiting = 0  # posts in the buffers
        self.held = _Held(lake)
        self.deletions = FactLog(lake, DELETIONS)
        self.runs = RunLog(lake)
        self.started = datetime.now(timezone.utc)
        self.newest_lag: dict[str, float] = {}
        self.queue: queue.Queue[tuple[str, StreamItem | BaseException | None]] = queue.Queue(
            QUEUE_ITEMS
        )

    # ------------------------------------------------------------------ the sources' threads
    def start(self) -> None:
        for name, source in self.sources.items():
            cursor = self.lake.read_cursor(name, self.config.hashtag)
            if cursor == new_cursor(name):  # a first run: a restart must come back to its start
                cursor = source.first_cursor()
                self.lake.save_cursor(name, self.config.hashtag, cursor)
            self.report.sources[name].cursor = cursor
            threading.Thread(
                target=self._pump, args=(source, cursor), name=f"stream-{name}", daemon=True
            ).start()

    def _pump(self, source: StreamSource, cursor: SourceCursor) -> None:
        try:
            for item in source.stream(self.config.hashtag, cursor, self.stop):
                self.queue.put((source.name, item))
        except SourceError as exc:  # reported in its run record; the other sources go on
            self.queue.put((source.name, exc))
        except Exception as exc:
            log.exception("stream %s stopped", source.name)
            self.queue.put((source.name, exc))
        finally:
            self.queue.put((source.name, None))

    # ------------------------------------------------------------------ this thread
    def take(self, name: str, item: StreamItem | BaseException) -> None:
        if isinstance(item, BaseException):
            self.report.sources[name].error = f"{type(item).__name__}: {item}"
            log.error("stream %s: %s", name, item)
            return
        posts_before = len(self.buffers[name].posts)
        self.buffers[name].add(item, self.report.sources[name])
        self.waiting += len(self.buffers[name].posts) - posts_before

    def flush(self) -> None:
        """Land every buffer: posts, then deletions of held posts, then the cursor."""
        for name, buffer in self.buffers.items():
            if buffer.cursor is None:
                continue
            report = self.report.sources[name]
            if buffer.posts:
                self._land_posts(name, buffer, report)
            if buffer.deleted or buffer.deleted_authors:
                self._land_deletions(buffer, report)
            self.lake.save_cursor(name, self.config.hashtag, buffer.cursor)
            report.cursor = buffer.cursor
            self.buffers[name] = _Buffer()
        self.waiting = 0
        self.report.flushes += 1

    def _land_posts(self, name: str, buffer: _Buffer, report: SourceStream) -> None:
        with self.lake.writer(f"{self.report.run_id}-{name}") as writer:
            written = writer.write(normalize(posts_table(buffer.posts.values())))
        landed = time.time()
        report.new += written.new
        report.duplicates += written.duplicates
        report.lags_s.extend(landed - at for at in buffer.event_times.values())
        if written.newest is not None:
            self.newest_lag[name] = landed - written.newest.timestamp()
        by_source: dict[str, list[str]] = {}
        for post_id in buffer.posts:
            by_source.setdefault(_lake_source(post_id), []).append(post_id)
        for source, post_ids in by_source.items():
            self.held.add(source, post_ids)

    def _land_deletions(self, buffer: _Buffer, report: SourceStream) -> None:
        now = datetime.now(timezone.utc)
        by_source: dict[str, dict[str, datetime | None]] = {}
        for post_id, when in buffer.deleted.items():
            by_source.setdefault(_lake_source(post_id), {})[post_id] = when
        for author, when in buffer.deleted_authors.items():
            source = _lake_source(author)
            for post_id in self.held.by_author(source, author):
                by_source.setdefault(source, {})[post_id] = when
        for source, deleted in by_source.items():
            post_ids = list(deleted)
            held = [pid for pid, ok in zip(post_ids, self.held.holds(source, post_ids)) if ok]
            if not held:
                continue
            rows = pa.Table.from_pylist(
                [
                    {"post_id": pid, "observed_at": now, "deleted_at": deleted[pid],
                     "how": "stream"}
                    for pid in held
                ],
                schema=POST_DELETION_SCHEMA,
            )
            self.deletions.write(source, self.report.run_id, rows)
            report.deleted += len(held)
            log.info("stream: %d deleted posts of %s recorded", len(held), source)

    def record(self, status: str = "running", reason: str | None = None) -> None:
        """Rewrite each source's run record with its counts so far."""
        now = datetime.now(timezone.utc)
        for name, source in self.sources.items():
            report, stats = self.report.sources[name], source.stats
            report.events, report.reconnects = stats.events, stats.reconnects
            report.gaps = len(stats.gaps)
            failed = report.error is not None
            self.runs.record(
                CollectionRun(
                    self.report.run_id, name, self.config.hashtag, self.started, now,
                    status="failed" if failed else status,
                    reason=report.error if failed else reason,
                    requests=stats.usage.requests,
                    posts_new=report.new,
                    posts_duplicate=report.duplicates,
                    retries=stats.usage.retries,
                    rate_limit_wait_s=stats.usage.rate_limit_wait_s,
                    reconnects=stats.reconnects,
                    events=stats.events,
                    gaps=list(stats.gaps),
                    lag_s=self.newest_lag.get(name),
                )
            )


def run_stream(
    config: Config,
    *,
    duration: float | None = None,
    stop: threading.Event | None = None,
    sources: Mapping[str, StreamSource] | None = None,
    backend: Backend | None = None,
    auth: GcpAuth | None = None,
    handle_signals: bool = False,
    progress: bool = False,
    send: Sender | None = None,
    on_analyze: Callable[[StreamReport], None] | None = None,
) -> StreamReport:
    """Stream the configured sources into the lake until `duration` seconds have passed or
    `stop` is set (or, with `handle_signals`, SIGINT or SIGTERM comes); flush what waits, record
    the runs and return.

    Args:
        sources: the streaming sources, by their ``[stream] sources`` name; by default those of
            the configuration.
        backend: the NLP backend for analyze; by default the configured one, loaded once.
        progress: show a progress bar: events read, posts landed and waiting, deletions.
        send: where analyze sends new signals (`flows.stages.alerts`); by default the Apprise
            URLs of ``[alerts] urls_env``, if any.
        on_analyze: called after each analyze (the Prefect flow updates its artifact).

    Raises:
        ConfigError: no streaming source is configured.
        flows.lake.lock.LakeBusy: another stream of the same source keeps running.
    """
    if sources is None:
        if not config.stream.sources:
            raise ConfigError(
                "[stream] sources is empty: name the streaming sources to run, e.g. "
                "sources = jetstream (Bluesky, no account needed) or mastodon."
            )
        sources = {
            name: make_stream(name, config.settings(STREAM_SECTIONS[name]))
            for name in config.stream.sources
        }
    settings = config.stream
    lake = open_lake(config, auth)
    stop = stop or threading.Event()
    run = _Stream(config, lake, sources, stop, new_run_id())
    if settings.analyze_seconds and backend is None:
        p = config.pipeline
        backend = load_backend(p.nlp_backend, p.nlp_device, p.nlp_batch_size, config.tweetnlp)
    # one model of each kind for the whole run: the classifier, and the sentence encoder that
    # conversations need for posts another backend than lite classified (loaded at first need)
    nlp = (backend, encoder_for(backend)) if backend is not None else None
    began = time.monotonic()
    with ExitStack() as stack:
        for name in run.sources:  # one stream per source at a time, as for collection
            stack.enter_context(lake.lock(f"collect-{name}"))
        if handle_signals:
            stack.enter_context(_signals_set(stop, run.report))
        stack.callback(stop.set)  # however this ends (a full disk), the sources' threads end too
        bar = tqdm(desc=f"stream #{config.hashtag}", unit=" events", disable=not progress)
        stack.callback(bar.close)
        run.start()
        live = set(run.sources)
        run.record()
        now = time.monotonic()
        next_flush = now + settings.flush_seconds
        next_analyze = now + settings.analyze_seconds if settings.analyze_seconds else None
        next_record, next_show = now + RECORD_EVERY_S, now
        deadline = began + duration if duration is not None else None
        while live:
            now = time.monotonic()
            if now >= next_show:
                _show(bar, run)
                next_show = now + 1.0
            if deadline is not None and now >= deadline:
                stop.set()
            due = [t for t in (next_flush, next_analyze, deadline) if t is not None]
            try:
                name, item = run.queue.get(timeout=min(max(min(due) - now, 0.01), 0.5))
            except queue.Empty:
                pass
            else:
                if item is None:
                    live.discard(name)
                else:
                    run.take(name, item)
            now = time.monotonic()
            if run.waiting >= settings.flush_posts or now >= next_flush:
                run.flush()
                next_flush = now + settings.flush_seconds
            if next_analyze is not None and now >= next_analyze and not stop.is_set():
                run.flush()
                run.record()
                next_record = now + RECORD_EVERY_S
                _analyze(config, nlp, auth, send, run.report)
                if on_analyze is not None:
                    on_analyze(run.report)
                next_analyze = time.monotonic() + settings.analyze_seconds
            elif now >= next_record:
                run.record()
                next_record = now + RECORD_EVERY_S
        run.flush()
        run.report.seconds = time.monotonic() - began
        stopped = run.report.stopped_by
        run.record(
            "stopped" if stopped else "ok",
            f"stopped by {signal.Signals(stopped).name}" if stopped else None,
        )
    _log(run.report)
    return run.report


def _show(bar: tqdm, run: _Stream) -> None:
    """The progress bar: every event read, and what became of the posts."""
    sources = run.report.sources.values()
    bar.update(sum(source.stats.events for source in run.sources.values()) - bar.n)
    bar.set_postfix(
        landed=sum(s.new for s in sources), waiting=run.waiting,
        deleted=sum(s.deleted for s in sources), refresh=False,
    )


def _analyze(
    config: Config,
    nlp: tuple[Backend, Encoder] | None,
    auth: GcpAuth | None,
    send: Sender | None,
    report: StreamReport,
) -> None:
    """Analyze what landed; a failure is logged and tried again at the next turn."""
    backend, encoder = nlp if nlp is not None else (None, None)
    try:
        analyze(config, backend=backend, auth=auth, send=send, encoder=encoder)
        report.analyses += 1
    except Exception:
        report.analyze_errors += 1
        log.exception(
            "stream: analyze failed; it runs again in %.0f s", config.stream.analyze_seconds
        )


@contextmanager
def _signals_set(stop: threading.Event, report: StreamReport) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop`, so that what waits is flushed before the process ends."""

    def handler(signum: int, frame: Any) -> None:
        report.stopped_by = signum
        stop.set()

    before = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in before.items():
            signal.signal(sig, old)


def _log(report: StreamReport) -> None:
    for source in report.sources.values():
        log.info(
            "stream %s: %d events, %d posts, %d new, %d deletions, %d reconnects, %d gaps%s",
            source.name, source.events, source.posts, source.new, source.deleted,
            source.reconnects, source.gaps, f" ({source.error})" if source.error else "",
        )


def stream_markdown(report: StreamReport) -> str:
    """The run's summary, one row per source (CLI output, Prefect artifact)."""
    lines = [
        f"Stream run {report.run_id}: {report.seconds:.0f} s, {report.flushes} flushes, "
        f"{report.analyses} analyses"
        + (f" ({report.analyze_errors} failed)" if report.analyze_errors else ""),
        "",
        "| source | events | posts | new | deleted | reconnects | gaps | p95 lag (s) | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in report.sources.values():
        lag = f"{float(np.percentile(s.lags_s, 95)):.1f}" if s.lags_s else "–"
        status = f"failed: {s.error}" if s.error else "ok"
        lines.append(
            f"| {s.name} | {s.events:,} | {s.posts:,} | {s.new:,} | {s.deleted:,} "
            f"| {s.reconnects:,} | {s.gaps:,} | {lag} | {status} |"
        )
    return "\n".join(lines)
