"""Refresh: the counters of collected posts read again, and the posts gone from their source.

For each configured source with a lookup (`flows.sources.lookups`; X only with ``[x] refresh =
true``), the posts of the configured hashtag younger than ``[refresh] days`` that are due are read
again in the API's batches; each answer becomes a snapshot of the post's counters and each post
the source no longer has a deletion, both facts in the lake (`flows.lake.facts`) that analyze
loads into ``post_metrics`` and ``post_deletions``.

**Schedule.** A post is due once its age has grown ``[refresh] growth`` times (2 by default)
since its last reading (its collection counts as one), and at least `MIN_GAP` after it: a post
collected 15 minutes old is read at about 30 minutes, 1, 2, 4, 8, 16, 32, 64 and 128 hours,
about 10 readings in 7 days. Engagement comes fastest right after a post is written and falls off
with its age, so equal steps of log(age) each see a like share of what is still to come; reading
by the clock instead would spend most calls on old posts that no longer move. Two readings within
the first hours also give "rising posts" their rate.

**Resumable, and no snapshot twice.** What is due is computed from the lake alone: the posts
files, and the snapshots and deletions already listed. The readings land at least every
`FLUSH_EVERY_S` seconds or `FLUSH_POSTS` posts, and when the run stops for any reason it can
catch (a budget, a refusal, Ctrl+C). A run killed outright loses only the readings since its last
flush; the next run finds those posts still due and reads them again, and nothing was written
twice. One refresh per source at a time (the lake's ``refresh-<source>`` lock).

Each source's refresh leaves a run record (`flows.lake.runs`, run id ``refresh-…``) with its
requests, retries, waits and cost, so that X's monthly budget counts what refreshes spent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import duckdb
import pyarrow as pa

from flows.config import Config
from flows.lake.facts import DELETIONS, METRICS, FactLog
from flows.lake.lake import POSTS_DIR, Lake
from flows.lake.runs import CollectionRun, RunLog
from flows.schema import POST_DELETION_SCHEMA, POST_METRICS_SCHEMA
from flows.settings import ConfigError
from flows.sources.base import SourceError, SourceStopped, Spent, Usage
from flows.sources.lookups import Known, make_lookup, refreshable
from flows.stages.collect import new_run_id
from flows.stages.stores import GcpAuth, open_lake

log = logging.getLogger(__name__)

MIN_GAP = timedelta(minutes=15)  # a post minutes old barely moves; collection runs every 15 min
FLUSH_EVERY_S = 60.0
FLUSH_POSTS = 5_000

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class RefreshReport:
    """What refreshing one source did."""

    source: str
    due: int = 0
    read: int = 0  # snapshots landed
    gone: int = 0  # deletions landed
    files: int = 0
    skipped: list[str] = field(default_factory=list)
    error: str | None = None
    run: CollectionRun | None = None


@dataclass(frozen=True)
class Due:
    """A post due for a reading."""

    post_id: str
    native_id: str
    url: str | None


def next_reading(created: float, read_at: float, growth: float) -> float:
    """When a post written at `created` and last read at `read_at` (epoch seconds) is due again:
    once its age has grown `growth` times, and at least `MIN_GAP` later. `due_posts` asks the
    same of the lake in SQL."""
    return read_at + max(MIN_GAP.total_seconds(), (read_at - created) * (growth - 1))


def new_refresh_id() -> str:
    """A run id that tells a refresh's records from a collection's."""
    return "refresh-" + new_run_id()


def due_posts(
    lake: Lake, source: str, hashtag: str, days: int, growth: float, now: datetime
) -> list[Due]:
    """The posts of `source` and `hashtag` younger than `days` that are due at `now`, not gone,
    ordered by native id (so that a batch holds posts of one Mastodon host, one Bluesky DID)."""
    start = now - timedelta(days=days)
    prefix = f"{POSTS_DIR}/source={source}/date="
    first_day = start.date().isoformat()
    paths = [
        path
        for path in lake.manifest()
        if path.startswith(prefix) and path[len(prefix) : len(prefix) + 10] >= first_day
    ]
    columns = ["post_id", "native_id", "url", "hashtag", "created_at", "collected_at"]
    tables = [lake.read_posts(path, columns) for path in paths]
    posts = pa.concat_tables([t for t in tables if t is not None]) if paths else None
    if posts is None or posts.num_rows == 0:
        return []
    metrics = FactLog(lake, METRICS)
    readings = metrics.read(metrics.since(start.date(), [source]), ["post_id", "observed_at"])
    deletions = FactLog(lake, DELETIONS)
    gone = deletions.read(deletions.since(start.date(), [source]), ["post_id"])
    with duckdb.connect() as con:
        for name, table in (("posts", posts), ("readings", readings), ("gone", gone)):
            con.register(name, table)
        rows = con.execute(
            """
            WITH last AS (
                SELECT p.post_id, p.native_id, p.url, epoch(p.created_at) AS created,
                       GREATEST(epoch(p.collected_at), COALESCE(epoch(r.newest), 0)) AS read_at
                FROM posts AS p
                LEFT JOIN (
                    SELECT post_id, MAX(observed_at) AS newest FROM readings GROUP BY post_id
                ) AS r ON r.post_id = p.post_id
                WHERE p.hashtag = ? AND p.created_at >= ?
                  AND p.post_id NOT IN (SELECT post_id FROM gone)
            )
            SELECT post_id, native_id, url FROM last
            WHERE ? - read_at >= GREATEST(?, (read_at - created) * (? - 1))
            ORDER BY native_id
            """,
            [hashtag, start, now.timestamp(), MIN_GAP.total_seconds(), growth],
        ).fetchall()
    return [Due(*row) for row in rows]


class _Landing:
    """Readings waiting to land, written as facts at least every `FLUSH_EVERY_S` seconds."""

    def __init__(self, lake: Lake, source: str, run_id: str, report: RefreshReport) -> None:
        self.metrics, self.deletions = FactLog(lake, METRICS), FactLog(lake, DELETIONS)
        self.source, self.run_id, self.report = source, run_id, report
        self.snapshots: list[dict] = []
        self.gone: list[dict] = []
        self.last = time.monotonic()

    def add(self, batch: Sequence[Due], found, observed_at: datetime) -> None:
        for post in batch:
            counters = found.counters.get(post.native_id)
            if counters is not None:
                self.snapshots.append(
                    {"post_id": post.post_id, "observed_at": observed_at, **counters}
                )
            elif post.native_id in found.gone:
                self.gone.append(
                    {
                        "post_id": post.post_id,
                        "observed_at": observed_at,
                        "deleted_at": None,
                        "how": found.gone[post.native_id],
                    }
                )
        pending = len(self.snapshots) + len(self.gone)
        if pending >= FLUSH_POSTS or time.monotonic() - self.last >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        for log_, rows, schema in (
            (self.metrics, self.snapshots, POST_METRICS_SCHEMA),
            (self.deletions, self.gone, POST_DELETION_SCHEMA),
        ):
            if rows:
                table = pa.Table.from_pylist(rows, schema=schema)
                self.report.files += len(log_.write(self.source, self.run_id, table))
        self.report.read += len(self.snapshots)
        self.report.gone += len(self.gone)
        self.snapshots, self.gone = [], []
        self.last = time.monotonic()


def refresh_source(
    config: Config,
    name: str,
    run_id: str,
    *,
    lake: Lake | None = None,
    clock: Clock = utc_now,
) -> RefreshReport:
    """Read again the due posts of source `name`; land the readings; record the run.

    `clock` tells the time (the schedule's and the readings'); tests move it ahead.

    A `SourceError` (refused, a budget spent: `SourceStopped`) or a `ConfigError` (a missing
    secret) ends this source only and is reported; anything else is recorded as a failed run and
    propagates, so that a caller may retry. What was read before the stop has landed.
    """
    lake = lake or open_lake(config)
    runs = RunLog(lake)
    now = clock()
    with lake.lock(f"refresh-{name}"):
        report = RefreshReport(name)
        run = CollectionRun(run_id, name, config.hashtag, now, now)
        earlier = runs.find(run_id, name)
        usage = Usage()
        landing = _Landing(lake, name, run_id, report)
        try:
            spent = Spent(runs.spent_this_month(name), earlier.cost_usd if earlier else 0.0)
            lookup = make_lookup(name, config.settings(name), spent)
            usage = lookup.usage
            due = due_posts(
                lake, name, config.hashtag, config.refresh.days, config.refresh.growth, now
            )
            report.due = len(due)
            for start in range(0, len(due), lookup.batch_size):
                batch = due[start : start + lookup.batch_size]
                found = lookup.lookup([Known(post.native_id, post.url) for post in batch])
                landing.add(batch, found, clock())
                report.skipped.extend(found.skipped)
        except (SourceError, ConfigError) as exc:
            run.status = "stopped" if isinstance(exc, SourceStopped) else "failed"
            report.error = run.reason = str(exc)
            level = logging.WARNING if run.status == "stopped" else logging.ERROR
            log.log(level, "refresh %s %s: %s", name, run.status, exc)
        except BaseException as exc:  # Ctrl+C, a crash: keep what was read, then stop
            run.status, run.reason = "failed", f"{type(exc).__name__}: {exc}"
            landing.flush()
            _record(runs, run, report, usage, earlier, clock())
            raise
        landing.flush()
        _record(runs, run, report, usage, earlier, clock())
    if report.skipped:  # read again next run: an instance down, a post of other software
        log.warning("refresh %s: %d posts not read: %s", name, len(report.skipped),
                    "; ".join(report.skipped[:3]))
    log.info(
        "refresh %s: %d due, %d read, %d gone, %d requests, %.3f USD",
        name, report.due, report.read, report.gone, report.run.requests, report.run.cost_usd,
    )
    return report


def _record(
    runs: RunLog,
    run: CollectionRun,
    report: RefreshReport,
    usage: Usage,
    earlier: CollectionRun | None,
    now: datetime,
) -> None:
    run.finished_at = now
    run.requests, run.retries = usage.requests, usage.retries
    run.rate_limit_wait_s, run.cost_usd = usage.rate_limit_wait_s, usage.cost_usd
    report.run = run.after(earlier) if earlier else run
    runs.record(report.run)


def refresh(
    config: Config,
    *,
    run_id: str | None = None,
    auth: GcpAuth | None = None,
    clock: Clock = utc_now,
) -> list[RefreshReport]:
    """Refresh every configured source that has a lookup, one after the other."""
    run_id = run_id or new_refresh_id()
    lake = open_lake(config, auth)
    return [
        refresh_source(config, name, run_id, lake=lake, clock=clock)
        for name in config.pipeline.sources
        if refreshable(name, config.settings(name))
    ]


def refresh_markdown(reports: Sequence[RefreshReport]) -> str:
    """The run's summary, one row per source (CLI output, Prefect artifact)."""
    lines = [
        "| source | due | read | gone | requests | cost (USD) | status |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in reports:
        run = r.run
        status = run.status + (f": {run.reason}" if run.reason else "")
        lines.append(
            f"| {r.source} | {r.due:,} | {r.read:,} | {r.gone:,} | {run.requests:,} "
            f"| {run.cost_usd:.3f} | {status} |"
        )
    if not reports:
        lines.append("| (no configured source has a lookup) | | | | | | |")
    return "\n".join(lines)
