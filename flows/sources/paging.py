"""Paging over an HTTP API: one paginator, and one resumable newest-first walk for every source.

- `paginate` follows page tokens until the last page.
- `PagedSource` turns the pages of a newest-first API into `Batch`es whose `WalkCursor`s make a
  run resumable: while a walk down the pages of a stream is unfinished, ``WalkCursor.walk`` holds
  its next page token and bounds; once it reaches the previous run's newest post, the walk's own
  newest post becomes the stream's floor (``WalkCursor.floors``) for the next run. A walk that is
  abandoned is simply walked again next run, from the newest post down to the same floor: nothing
  is lost, and the lake drops what it already holds.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from flows.cursors import Walk, WalkCursor
from flows.schema import posts_table
from flows.sources.base import Batch, Record, SourceError, Usage
from flows.sources.http import HttpClient, HttpError, MalformedBody

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Page:
    """One page of an API's answer.

    Attributes:
        payload: what the source maps to posts (a list of items, or the whole body).
        next: the token of the following page; None on the last page.
        newest: the page's newest marker (an id, a time), newest-first APIs only.
        token: the token that fetched this page (None for the first).
        warning: set on a page that could not be read; such a page ends the paging.
    """

    payload: Any
    next: str | None = None
    newest: str | None = None
    token: str | None = None
    warning: str | None = None


def paginate(fetch: Callable[[str | None], Page], token: str | None = None) -> Iterator[Page]:
    """Pages from `token` on, ``fetch(token)`` each, until a page has no next token.

    A page whose body stays malformed after the client's retries is yielded as an empty page
    with a `warning` naming the request, and ends the paging (the next token is in that body).
    """
    while True:
        try:
            page = fetch(token)
        except MalformedBody as exc:
            yield Page([], token=token, warning=f"{exc}; page skipped, tried again next run")
            return
        page = Page(page.payload, page.next, page.newest, token)
        yield page
        if not page.next or page.next == token:  # a repeated token would loop for ever
            return
        token = page.next


class PagedSource(ABC):
    """A source over newest-first pages; subclasses say how to fetch and map one page.

    Subclasses set `name` and implement `page` and `to_posts`; those with several streams
    (Mastodon instances, Reddit listings, whose ids are comparable only within a stream)
    override `streams`, and those with a time floor `floor` and `commit`.
    """

    name: ClassVar[str]
    client: HttpClient | None = None  # the HTTP sources' one client; snscrape has its own
    settings: Any  # the source's settings dataclass
    min_page_size: ClassVar[int] = 1  # the fewest posts a request may ask for

    def streams(self) -> list[str]:
        return [""]

    def floor(self, cursor: WalkCursor, key: str) -> str | None:
        """Where the last finished walk of stream `key` started."""
        return cursor.floors.get(key)

    def commit(
        self, cursor: WalkCursor, key: str, top: str | None, newest: datetime | None
    ) -> WalkCursor:
        """The cursor once the walk of `key` has finished with newest marker `top`."""
        return replace(
            cursor,
            floors={**cursor.floors, key: top} if top else cursor.floors,
            newest_time=max(filter(None, (cursor.newest_time, newest)), default=None),
        )

    @property
    def page_size(self) -> int:
        """The most posts a request asks for: the settings' ``page_size``."""
        return self.settings.page_size

    @abstractmethod
    def page(self, hashtag: str, walk: Walk, size: int) -> Page:
        """Fetch the page `walk.token` of stream `walk.key`, newer than `walk.floor`, of at
        most `size` posts."""

    @abstractmethod
    def to_posts(
        self, hashtag: str, key: str, payload: Any, collected_at: datetime
    ) -> list[Record | str]:
        """A page's posts (POST_SCHEMA dicts) and, as strings, why items were skipped."""

    @property
    def usage(self) -> Usage:
        """What this run used of the API: its client's count (nothing without a client)."""
        return self.client.usage if self.client is not None else Usage()

    def close(self) -> None:
        """Release the HTTP session."""
        if self.client is not None:
            self.client.close()

    def fetch(self, hashtag: str, cursor: WalkCursor, limit: int | None) -> Iterator[Batch]:
        """One batch per page: first the unfinished walk of the last run, then each stream."""
        try:
            yield from self._fetch(hashtag.lower().lstrip("#"), cursor, limit)
        finally:
            self.close()

    def _fetch(self, hashtag: str, cursor: WalkCursor, limit: int | None) -> Iterator[Batch]:
        keys = self.streams()
        unfinished = cursor.walk
        walks = [unfinished] if unfinished and unfinished.key in keys else []
        walks += [
            Walk(key, self.floor(cursor, key)) for key in keys if key not in {w.key for w in walks}
        ]
        left = limit
        refused: list[str] = []
        for walk in walks:
            if left is not None and left <= 0:
                return
            try:
                for batch, taken in self._walk(hashtag, walk, cursor, left):
                    cursor = batch.cursor
                    left = None if left is None else left - taken
                    yield batch
            except HttpError as exc:
                if len(keys) == 1:
                    raise
                # one instance refusing (auth required, gone) does not stop the others
                refused.append(str(exc))
                yield Batch(posts_table([]), cursor, (f"{exc}; {walk.key} skipped",))
        if refused and len(refused) == len(walks):
            raise SourceError(f"{self.name}: every stream refused: " + " | ".join(refused))

    def _walk(
        self, hashtag: str, walk: Walk, cursor: WalkCursor, limit: int | None
    ) -> Iterator[tuple[Batch, int]]:
        collected_at = datetime.now(UTC)
        newest: datetime | None = None
        shown = f"{self.name} {walk.key}".strip()
        start = walk

        def fetch(token: str | None) -> Page:
            # no more posts than the limit leaves (a paid API bills every post it returns)
            size = self.page_size if limit is None else min(self.page_size, limit)
            return self.page(hashtag, replace(start, token=token), max(size, self.min_page_size))

        pages = paginate(fetch, walk.token)
        for number, page in enumerate(pages, 1):
            if page.warning:
                # the walk stops here; the next run resumes at this page (or walks again)
                stopped = replace(cursor, walk=replace(walk, token=page.token))
                yield Batch(posts_table([]), stopped, (page.warning,)), 0
                return
            skip = walk.skip if page.token == walk.token else 0
            walk = replace(walk, top=walk.top or page.newest, token=page.next, skip=0)
            items = self.to_posts(hashtag, walk.key, page.payload, collected_at)
            posts = [item for item in items if isinstance(item, dict)][skip:]
            warnings = tuple(f"{shown}: {item}; skipped" for item in items if isinstance(item, str))
            full = limit is not None and len(posts) >= limit
            cut = limit is not None and len(posts) > limit
            if cut:
                posts = posts[:limit]
                # the rest of this page comes next run (the first page's token is None too)
                walk = replace(walk, token=page.token, skip=skip + limit)
            if posts:
                newest = max(filter(None, (newest, *(post["created_at"] for post in posts))))
            if walk.token is None and not cut:
                cursor = self.commit(cursor, walk.key, walk.top or walk.floor, newest)
                cursor = replace(cursor, walk=None)
            else:
                cursor = replace(cursor, walk=walk)
            log.info("%s: page %d, %d posts", shown, number, len(posts))
            yield Batch(posts_table(posts), cursor, warnings), len(posts)
            if full:
                return
            limit = None if limit is None else limit - len(posts)
