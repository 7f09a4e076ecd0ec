"""Collect: sources → normalize → lake. Plain functions; `flows.orchestration.web_to_gcs` wraps them for Prefect.

Each batch is written to the lake before its cursor is saved, so a run that stops anywhere
resumes after the last batch that landed, and a batch seen twice is de-duplicated by the lake.
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
from flows.stages.normalize import normalize
from flows.sources.base import SourceError
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

    @property
    def duplicates(self) -> int:
        return self.fetched - self.new


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def collect_source(
    config: Config, name: str, run_id: str, *, lake: Lake | None = None, progress: bool = False
) -> SourceReport:
    """Fetch one source from its saved cursor and land every batch in the lake.

    A `SourceError` (the source cannot run: refused, misconfigured) or a `CursorError` (its saved
    cursor cannot be read) ends this source only; it is reported, not raised, so the other sources
    still run. Anything else propagates, so that
    callers can retry: a retry resumes from the last saved cursor. `flows.lake.lock.LakeBusy` is
    raised when another run keeps collecting this source for longer than the lock's wait.
    """
    lake = lake or open_lake(config)
    # one collector per source at a time: a second run waits, then starts from the cursor the
    # first one saved, so two runs never write the same posts
    with lake.lock(f"collect-{name}"):
        try:
            cursor = lake.read_cursor(name, config.hashtag)
        except CursorError as exc:
            log.error("source %s stopped: %s", name, exc)
            return SourceReport(source=name, error=str(exc))
        report = SourceReport(source=name, cursor_before=cursor, cursor_after=cursor)
        source = make_source(name, config.settings(name))
        bar = tqdm(desc=f"collect {name}", unit=" posts", disable=not progress, leave=False)
        try:
            with lake.writer(f"{run_id}-{name}") as writer:
                for batch in source.fetch(config.hashtag, cursor, config.limit):
                    written = writer.write(normalize(batch.posts))
                    lake.save_cursor(name, config.hashtag, batch.cursor)
                    report.cursor_after = batch.cursor
                    report.fetched += written.received
                    report.new += written.new
                    report.files += len(written.files)
                    report.batches += 1
                    report.warnings.extend(batch.warnings)
                    for warning in batch.warnings:
                        log.warning("%s: %s", name, warning)
                    bar.update(written.received)
        except SourceError as exc:
            report.error = str(exc)
            log.error("source %s stopped: %s", name, exc)
        finally:
            bar.close()
        log.info(
            "%s: %d fetched, %d new, %d duplicates, %d files",
            name, report.fetched, report.new, report.duplicates, report.files,
        )
        return report


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
