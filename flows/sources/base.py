"""What every source shares: the batch it yields, the interface the collector calls, its error.

A source is built from its typed settings (its own INI section) and yields `Batch`es of posts in
`flows.schema.POST_SCHEMA`, each with the cursor (`flows.cursors`, of the source's kind) that
holds once that batch has landed in the lake. The collector writes a batch, then saves its cursor,
so a run that dies after batch k resumes at batch k+1; a batch written twice is de-duplicated by
the lake.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

import pyarrow as pa

from flows.cursors import SourceCursor

Record = dict[str, Any]  # one post, or one record of an API or a file, as a dict


@dataclass(frozen=True)
class Batch:
    """Posts (POST_SCHEMA) and the cursor that holds once they are in the lake."""

    posts: pa.Table
    cursor: SourceCursor
    # problems met while producing this batch that did not stop it (a malformed line, say)
    warnings: tuple[str, ...] = field(default=())


class Source(Protocol):
    """What the collector needs from a source."""

    name: ClassVar[str]
    # Sources that call an API also have ``usage: Usage``, which the collector records.

    def fetch(self, hashtag: str, cursor: Any, limit: int | None) -> Iterator[Batch]:
        """Yield batches of posts newer than `cursor` (of the source's kind in
        `flows.cursors.CURSOR_TYPES`), at most `limit` posts in all."""
        ...


class SourceError(RuntimeError):
    """A source cannot run; the message says why and what to do. Other sources still run."""


class SourceStopped(SourceError):
    """A source stopped early on purpose (its budget is spent, a rate limit resets too late):
    what it got is kept, and the next run resumes from its cursor."""


@dataclass
class Usage:
    """What one run of a source used, counted as it happens: requests, retries and rate-limit
    waits by its HTTP client (`flows.sources.http`), money by a source that bills per use."""

    requests: int = 0
    retries: int = 0
    rate_limit_wait_s: float = 0.0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Spent:
    """What a paid source had spent before this run, from the lake's run records."""

    this_month_usd: float = 0.0
    this_run_usd: float = 0.0  # by an earlier try of this same run (a retried task)


# ---------------------------------------------------------------------------------- streams
@dataclass(frozen=True)
class StreamItem:
    """One thing a streaming source delivered, in the order it came.

    At most one of `post`, `deleted` and `deleted_author` is set; none: a bare cursor, which a
    source yields at least once a second while events flow, so that the saved cursor keeps up
    with a stream whose events mostly do not match.
    """

    cursor: SourceCursor  # holds once this item and every item before it have landed
    _: KW_ONLY  # the rest by name: several of one type follow each other
    post: Record | None = None  # a post of the hashtag, in POST_SCHEMA's fields
    deleted: str | None = None  # the post_id of a post its author deleted
    # an account deleted: every post whose post_id starts with this (``bluesky:at://<did>/``)
    deleted_author: str | None = None
    event_time: float | None = None  # when the source wrote the event (epoch s), for the lag


@dataclass
class StreamStats:
    """What a streaming source met, counted as it happens; the stream stage records it."""

    events: int = 0  # every event received, matching or not
    reconnects: int = 0
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)  # spans not replayed
    usage: Usage = field(default_factory=Usage)  # the HTTP calls beside the stream (handles)


class StreamSource(Protocol):
    """What the stream stage (`flows.stages.stream`) needs from a streaming source."""

    name: ClassVar[str]  # its cursor's and its run records' name
    stats: StreamStats

    def first_cursor(self) -> Any:
        """Where a source with no saved cursor starts (Jetstream: now). The stage saves it before
        anything streams, so that a run killed before its first flush is replayed from there."""
        ...

    def stream(self, hashtag: str, cursor: Any, stop: threading.Event) -> Iterator[StreamItem]:
        """Yield items from `cursor` on (of the source's kind in `flows.cursors.CURSOR_TYPES`)
        until `stop` is set, which it notices within a second; reconnect on its own, counting
        reconnects and gaps in `stats`. Raise `SourceError` when it cannot go on (refused)."""
        ...
