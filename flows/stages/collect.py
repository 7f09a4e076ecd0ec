"""Collect: sources → normalize → lake. Plain functions; `flows.orchestration.web_to_gcs` wraps them for Prefect.

Each batch is written to the lake before its cursor is saved, so a run that stops anywhere
resumes after the last batch that landed, and a batch seen twice is de-duplicated by the lake.
Each source's run leaves a record (`flows.lake.runs.CollectionRun`): status, requests, retries,
rate-limit waits, posts, lag and cost, which analyze loads into ``collection_runs``. A run killed
outright (SIGKILL, Ctrl+C) leaves none.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from tqdm.auto import tqdm

from flows.config import Config
from flows.cursors import CursorError, SourceCursor
from flows.lake.lake import Lake
from flows.lake.runs import CollectionRun, RunLog
from flows.stages.normalize import normalize
from flows.sources.base import Source, SourceError, SourceStopped, Spent, Usage
from flows.sources.registry import make_source
from flows.stages.stores import GcpAuth, open_lake

log = logging.getLogger(__name__)


@dataclass
class SourceReport:
    """What collecting one source did."""

    source: str
    fetched: int = 0
    new: int = 0
    batches: int = 0
    files: int = 0
    cursor_before: SourceCursor | None = None  # None: the saved cursor could not be read
    cursor_after: SourceCursor | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    run: CollectionRun | None = None  # the run's record, as the lake keeps it

    @property
    def duplicates(self) -> int:
        return self.fetched - self.new


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def collect_source(
    config: Config,
    name: str,
    run_id: str,
    *,
    lake: Lake | None = None,
    progress: bool = False,
    source: Source | None = None,
) -> SourceReport:
    """Fetch one source from its saved cursor, land every batch in the lake, and record the run.

    `source`: the source to fetch from, already built (`bench.soak` feeds its own); by default
    the configured one.

    A `SourceError` (the source cannot run: refused, misconfigured; or `SourceStopped`: it
    stopped on purpose, its budget spent) or a `CursorError` (its saved cursor cannot be read)
    ends this source only; it is reported, not raised, so the other sources still run. Anything
    else is recorded as a failed run and propagates, so that callers can retry: a retry resumes
    from the last saved cursor, and its record adds to the first try's. `flows.lake.lock.LakeBusy`
    is raised when another run keeps collecting this source for longer than the lock's wait.
    """
    lake = lake or open_lake(config)
    runs = RunLog(lake)
    # one collector per source at a time: a second run waits, then starts from the cursor the
    # first one saved, so two runs never write the same posts
    with lake.lock(f"collect-{name}"):
        report = SourceReport(source=name)
        run = CollectionRun(run_id, name, config.hashtag, _now(), _now())
        earlier = runs.find(run_id, name)
        usage = Usage()
        try:
            report.cursor_before = lake.read_cursor(name, config.hashtag)
            report.cursor_after = report.cursor_before
            spent = Spent(runs.spent_this_month(name), earlier.cost_usd if earlier else 0.0)
            source = source or make_source(name, config.settings(name), spent)
            usage = getattr(source, "usage", usage)
            _land(config, name, run_id, source, lake, report, run, progress)
        except (SourceError, CursorError) as exc:
            run.status = "stopped" if isinstance(exc, SourceStopped) else "failed"
            report.error = run.reason = str(exc)
            level = logging.WARNING if run.status == "stopped" else logging.ERROR
            log.log(level, "source %s %s: %s", name, run.status, exc)
        except Exception as exc:
            run.status, run.reason = "failed", f"{type(exc).__name__}: {exc}"
            try:
                _record(runs, run, report, usage, earlier)
            except Exception:  # the first error is the one to see and retry
                log.exception("source %s: its run could not be recorded", name)
            raise
        _record(runs, run, report, usage, earlier)
        log.info(
            "%s: %d fetched, %d new, %d duplicates, %d files, %d requests, %.3f USD",
            name, report.fetched, report.new, report.duplicates, report.files,
            report.run.requests, report.run.cost_usd,
        )
        return report


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _land(
    config: Config,
    name: str,
    run_id: str,
    source: Source,
    lake: Lake,
    report: SourceReport,
    run: CollectionRun,
    progress: bool,
) -> None:
    """Write each batch of `source`, then save its cursor; note the newest new post's lag."""
    bar = tqdm(desc=f"collect {name}", unit=" posts", disable=not progress, leave=False)
    try:
        with lake.writer(f"{run_id}-{name}") as writer:
            newest: datetime | None = None
            for batch in source.fetch(config.hashtag, report.cursor_before, config.limit):
                written = writer.write(normalize(batch.posts))
                lake.save_cursor(name, config.hashtag, batch.cursor)
                if written.newest is not None and (newest is None or written.newest > newest):
                    newest = written.newest
                    run.lag_s = (_now() - newest).total_seconds()
                report.cursor_after = batch.cursor
                report.fetched += written.received
                report.new += written.new
                report.files += len(written.files)
                report.batches += 1
                report.warnings.extend(batch.warnings)
                for warning in batch.warnings:
                    log.warning("%s: %s", name, warning)
                bar.update(written.received)
    finally:
        bar.close()


def _record(
    runs: RunLog,
    run: CollectionRun,
    report: SourceReport,
    usage: Usage,
    earlier: CollectionRun | None,
) -> None:
    """Fill `run` from what happened and keep it in the lake (added to an earlier try's)."""
    run.finished_at = _now()
    run.posts_new, run.posts_duplicate = report.new, report.duplicates
    run.requests, run.retries = usage.requests, usage.retries
    run.rate_limit_wait_s, run.cost_usd = usage.rate_limit_wait_s, usage.cost_usd
    report.run = run.after(earlier) if earlier else run
    runs.record(report.run)


def check_sources(config: Config) -> None:
    """Raise ConfigError for a configured source whose secret is missing, before any source runs.

    Only collection needs the secrets, so this is not part of `load_config`: `analyze` runs
    without them.
    """
    for name in config.pipeline.sources:
        check = getattr(config.settings(name), "check", None)
        if check is not None:
            check()


def collect(
    config: Config,
    *,
    run_id: str | None = None,
    progress: bool = False,
    auth: GcpAuth | None = None,
) -> list[SourceReport]:
    """Collect every configured source into the lake, one after the other.

    `auth`: the GCP credentials of a ``gs://`` lake (`flows.stages.stores`).
    """
    check_sources(config)
    run_id = run_id or new_run_id()
    lake = open_lake(config, auth)
    return [
        collect_source(config, name, run_id, lake=lake, progress=progress)
        for name in config.pipeline.sources
    ]
