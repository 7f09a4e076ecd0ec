"""Finding, recognising and reading the files the `file` source imports, into posts.

A file is recognised from its content (gzip, Parquet or text, then its keys or columns) as one of
the `FORMATS_HELP` payloads, and read in chunks from a given position, so memory stays flat however
large it is. A record that cannot become a post comes as a warning naming its line or row.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from flows.schema import POST_SCHEMA
from flows.sources.base import Record, SourceError
from flows.sources.values import (
    RowError,
    as_bool,
    as_int,
    as_list,
    as_str,
    as_time,
    attempt,
    required,
)
from flows.sources.x_payload import original_row_post, x_page_posts, x_tweet_post

FORMATS_HELP = (
    "The file source reads JSONL, CSV or Parquet files (JSONL and CSV may be gzipped) holding one "
    'of: X API v2 response pages as twarc2 writes them ({"data": [...], "includes": {...}} per '
    "line); flattened tweets (twarc2 flatten: id, text, created_at, author_id, author, ...); the "
    "original project's table (username, created_utc, likes, retweets, replies, source, content, "
    "url); posts in flows.schema.POST_SCHEMA (post_id, source, native_id, created_at, ...)."
)
PATHS_HELP = "Fix [file] paths in configuration.conf (or the PULSE_FILE_PATHS variable)."

# Beyond this many skipped rows in one file, only their number is reported.
MAX_WARNINGS_PER_FILE = 20
# A JSONL file whose first lines are all malformed is not worth guessing about.
DETECT_LINES = 1000

Position = tuple[int, int]  # (line or row number, index of the post within that record)


@dataclass(frozen=True)
class File:
    """A file to import, recognised."""

    shown: str  # the path as matched, for messages
    path: Path
    fingerprint: str
    container: str  # "jsonl", "csv" or "parquet"
    kind: str | None  # a key of _MAPPERS; None for a file without records


# --- finding and recognising files -------------------------------------------------------------


def expand(patterns: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
    """Each file a path or glob names, as (the name as matched, its resolved path)."""
    for pattern in patterns:
        expanded = os.path.expanduser(pattern)
        is_glob = any(char in expanded for char in "*?[")
        matches = sorted(glob.glob(expanded, recursive=True)) if is_glob else [expanded]
        found = [match for match in matches if os.path.isfile(match)]
        if not found:
            folder = (
                f" It is a folder: name its files, e.g. {pattern.rstrip('/')}/*.jsonl."
                if os.path.isdir(expanded)
                else ""
            )
            raise SourceError(
                f"[file] paths: {pattern!r} matches no file (relative paths are read from "
                f"{Path.cwd()}).{folder} {PATHS_HELP}"
            )
        for match in found:
            yield match, Path(match).resolve()


def _open(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it is gzipped."""
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else path.open("rb")


def recognise(shown: str, path: Path, fingerprint: str) -> File:
    """Recognise the container from the content, and the payload from its keys or columns."""
    with path.open("rb") as probe:
        is_parquet = probe.read(4) == b"PAR1"
    if is_parquet:
        container = "parquet"
        with pq.ParquetFile(path) as parquet:
            keys: set[str] | None = set(parquet.schema_arrow.names)
    else:
        with _open(path) as stream:
            start = stream.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
        if start == b"[":
            raise SourceError(
                f"{shown}: a JSON array, not JSON lines: write one object per line (for example "
                f"with jq -c '.[]'). {FORMATS_HELP} {PATHS_HELP}"
            )
        container = "jsonl" if start == b"{" else "csv"
        keys = _first_keys(shown, path, container)
    kind = _kind(keys) if keys is not None else None
    if keys is not None and kind is None:
        found = ", ".join(sorted(keys)[:15]) or "none"
        what = "keys of its first JSON object" if container == "jsonl" else "columns"
        raise SourceError(
            f"{shown}: not a file the file source knows ({container}; {what}: {found}). "
            f"{FORMATS_HELP} {PATHS_HELP}"
        )
    return File(shown, path, fingerprint, container, kind)


def _first_keys(shown: str, path: Path, container: str) -> set[str] | None:
    """The CSV header, or the keys of the first JSON object; None when the file is empty."""
    with _open(path) as raw, io.TextIOWrapper(raw, "utf-8-sig", "replace", newline="") as text:
        if container == "csv":
            header = next(csv.reader(text), None)
            return set(header) if header else None
        seen_lines = False
        for _, line in zip(range(DETECT_LINES), text, strict=False):
            if not line.strip():
                continue
            seen_lines = True
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                return set(record)
    if seen_lines:
        raise SourceError(
            f"{shown}: none of its first {DETECT_LINES} lines is a JSON object. "
            f"{FORMATS_HELP} {PATHS_HELP}"
        )
    return None


def _kind(keys: set[str]) -> str | None:
    if keys & {"data", "meta"}:  # a page with no results has only `meta`
        return "x_page"
    if {"post_id", "source", "native_id", "created_at"} <= keys:
        return "posts"
    # every X API v2 tweet has `edit_history_tweet_ids`; author fields say it is X, not another API
    if {"id", "text"} <= keys and keys & {"author_id", "author", "edit_history_tweet_ids"}:
        return "x_tweet"
    if {"username", "created_utc", "content"} <= keys and keys & {"url", "id"}:
        return "original"
    return None


# --- reading records ---------------------------------------------------------------------------


def _records(file: File, first: int, batch_size: int) -> Iterator[tuple[int, Record | RowError]]:
    """(line or row number, record) from `first` on; a malformed record comes as a `RowError`."""
    if file.container == "parquet":
        yield from _parquet_records(file.path, first, batch_size)
        return
    with _open(file.path) as raw:
        if file.container == "jsonl":
            for number, line in enumerate(raw, 1):
                if number < first or not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:  # UnicodeDecodeError too
                    yield number, RowError(f"malformed JSON ({exc})")
                    continue
                yield number, record if isinstance(record, dict) else RowError("not a JSON object")
            return
        with io.TextIOWrapper(raw, "utf-8-sig", "replace", newline="") as text:
            reader = csv.DictReader(text)
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield reader.line_num, RowError(f"malformed CSV ({exc})")
                    continue
                if reader.line_num >= first:
                    yield reader.line_num, row


def _parquet_records(path: Path, first: int, batch_size: int) -> Iterator[tuple[int, Record]]:
    number = 0
    with pq.ParquetFile(path) as parquet:
        for chunk in parquet.iter_batches(batch_size=batch_size):
            if number + chunk.num_rows < first:
                number += chunk.num_rows
                continue
            for row in chunk.to_pylist():
                number += 1
                if number >= first:
                    yield number, row


def file_posts(
    file: File, hashtag: str, collected_at: datetime, batch_size: int, after: Position | None
) -> Iterator[tuple[Position, Record | str]]:
    """The file's posts, and a warning (a string) for each record skipped, after `after`."""
    if file.kind is None:
        return
    mapper = _MAPPERS[file.kind]
    unit = "line" if file.container != "parquet" else "row"
    skipped = 0
    for number, record in _records(file, after[0] if after else 1, batch_size):
        outcome = (
            [str(record)]
            if isinstance(record, RowError)
            else attempt(mapper, record, hashtag, collected_at)
        )
        for index, item in enumerate([outcome] if isinstance(outcome, str) else outcome):
            if after is not None and (number, index) <= after:
                continue
            if isinstance(item, str):
                skipped += 1
                if skipped > MAX_WARNINGS_PER_FILE:
                    continue
                item = f"{file.shown} {unit} {number}: {item}; skipped"
            yield (number, index), item
    if skipped > MAX_WARNINGS_PER_FILE:
        more = skipped - MAX_WARNINGS_PER_FILE
        yield (number + 1, 0), f"{file.shown}: {more} more records skipped, not listed"


# --- records to posts --------------------------------------------------------------------------


def _from_posts(row: Record, hashtag: str, collected_at: datetime) -> Record:
    """A row already in POST_SCHEMA; it keeps its own hashtag and collection time if it has them."""
    for name in ("post_id", "source", "native_id", "created_at"):
        required(row, name)
    post = {name: convert(row.get(name)) for name, convert in _POST_CONVERTERS.items()}
    post["hashtag"] = post["hashtag"] or hashtag
    post["collected_at"] = post["collected_at"] or collected_at
    post["text"] = post["text"] or ""
    return post


def _converter(type_: pa.DataType) -> Callable[[Any], Any]:
    if pa.types.is_timestamp(type_):
        return as_time
    if pa.types.is_integer(type_):
        return as_int
    if pa.types.is_boolean(type_):
        return as_bool
    if pa.types.is_list(type_):
        return as_list
    return as_str


_POST_CONVERTERS = {field.name: _converter(field.type) for field in POST_SCHEMA}

_MAPPERS: dict[str, Callable[[Record, str, datetime], list[Record | str]]] = {
    "x_page": x_page_posts,
    "x_tweet": lambda record, *context: [x_tweet_post(record, *context)],
    "original": lambda record, *context: [original_row_post(record, *context)],
    "posts": lambda record, *context: [_from_posts(record, *context)],
}
