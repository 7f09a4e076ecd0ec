"""The `file` source: import posts from JSONL, CSV or Parquet files a user already has.

Each file is recognised from its content (`flows.sources.file.reading`) as:

- X API v2 response pages as twarc2 writes them: one ``{"data": [...], "includes": {...},
  "meta": {...}}`` object per line; authors come from ``includes.users``;
- flattened tweets (``twarc2 flatten``): one tweet per line with its ``author`` inline;
- the original project's table: ``username, created_utc, likes, retweets, replies, source,
  content, url``;
- posts already in `flows.schema.POST_SCHEMA` (an export from another lake).

X payloads become ``source="x"`` with ``post_id = "x:<tweet id>"`` (`flows.sources.x_payload`),
so an import and a live X collection de-duplicate against each other in the lake. A malformed line
or a row without an id or a time is skipped and reported in `Batch.warnings`; the rest of the file
still imports. Files are read in chunks, so memory stays flat however large they are.

A file is imported once: the `FileCursor` keeps its fingerprint (path, size, modification time).
A batch that ends inside a file carries that file and position in ``FileCursor.position``, so a
run stopped by ``limit`` or a crash goes on from there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from flows.cursors import FileCursor, FilePosition
from flows.schema import posts_table
from flows.sources.base import Batch, Record, SourceError
from flows.sources.file.reading import PATHS_HELP, File, Position, expand, file_posts, recognise


@dataclass(frozen=True)
class FileSettings:
    """`[file]`: which files to import.

    Attributes:
        paths: files or glob patterns (``**`` recurses); relative ones are read from the current
            directory. In the INI file: separated by commas or new lines.
        batch_size: posts per batch, and rows read from a file at a time.
    """

    paths: tuple[str, ...] = ()
    batch_size: int = 10_000

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size: must be at least 1 (posts per batch).")


class FileSource:
    """Imports each file of `FileSettings.paths` once."""

    name = "file"

    def __init__(self, settings: FileSettings) -> None:
        self.settings = settings

    def fetch(self, hashtag: str, cursor: FileCursor, limit: int | None) -> Iterator[Batch]:
        """Batches of the posts of files not yet in ``cursor.imported``, at most `limit` in all.

        Paths are resolved and every new file is recognised now, so that a wrong path or an
        unknown file raises `SourceError` before any batch.
        """
        files = self._pending(cursor)
        return self._batches(files, hashtag.lower().lstrip("#"), cursor, limit)

    def _pending(self, cursor: FileCursor) -> list[File]:
        if not self.settings.paths:
            raise SourceError(f"[file] paths is empty: name the files to import. {PATHS_HELP}")
        files: dict[Path, File] = {}
        for shown, path in expand(self.settings.paths):
            stat = path.stat()
            fingerprint = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
            if path not in files and fingerprint not in cursor.imported:
                files[path] = recognise(shown, path, fingerprint)
        return list(files.values())

    def _batches(
        self, files: list[File], hashtag: str, cursor: FileCursor, limit: int | None
    ) -> Iterator[Batch]:
        if not files or (limit is not None and limit <= 0):
            return
        collected_at = datetime.now(UTC)
        stopped = cursor.position
        # the file an earlier run stopped in goes first, so that its position still holds
        files = sorted(files, key=lambda f: stopped is None or f.fingerprint != stopped.file)
        batches = _Batcher(cursor, self.settings.batch_size)
        taken = 0
        for file in files:
            after = (
                (stopped.line, stopped.index)
                if stopped and stopped.file == file.fingerprint
                else None
            )
            for position, item in file_posts(
                file, hashtag, collected_at, self.settings.batch_size, after
            ):
                if isinstance(item, str):
                    batches.warnings.append(item)
                    continue
                full = batches.add(item, (file.fingerprint, position))
                if full is not None:
                    yield full
                taken += 1
                if taken == limit:
                    yield batches.emit()
                    return
            batches.file_done(file.fingerprint)
        yield batches.emit()


class _Batcher:
    """Groups posts into batches; each batch's cursor names the files and position it completes."""

    def __init__(self, cursor: FileCursor, size: int) -> None:
        self.cursor = cursor
        self.size = size
        self.posts: list[Record] = []
        self.warnings: list[str] = []
        # fingerprints of the files whose posts are all in this batch or an earlier one
        self.done: list[str] = []
        self.at: tuple[str, Position] | None = None  # the last post's file and position, mid-file

    def add(self, post: Record, at: tuple[str, Position]) -> Batch | None:
        """Add a post; return the batch it did not fit in, if the buffer was full."""
        full = self.emit() if len(self.posts) == self.size else None
        self.posts.append(post)
        self.at = at
        return full

    def file_done(self, fingerprint: str) -> None:
        self.done.append(fingerprint)
        self.at = None

    def emit(self) -> Batch:
        times = [post["created_at"] for post in self.posts]
        if self.cursor.newest_time is not None:
            times.append(self.cursor.newest_time)
        self.cursor = replace(
            self.cursor,
            imported=(*self.cursor.imported, *self.done),
            newest_time=max(times, default=None),
            position=FilePosition(self.at[0], *self.at[1]) if self.at else None,
        )
        batch = Batch(posts_table(self.posts), self.cursor, tuple(self.warnings))
        self.posts, self.warnings, self.done = [], [], []
        return batch
