"""The `file` source: import posts from JSONL, CSV or Parquet files a user already has.

Each file is recognised from its content (gzip, Parquet or text, then its keys or columns) as:

- X API v2 response pages as twarc2 writes them: one ``{"data": [...], "includes": {...},
  "meta": {...}}`` object per line; authors come from ``includes.users``;
- flattened tweets (``twarc2 flatten``): one tweet per line with its ``author`` inline;
- the original project's table: ``username, created_utc, likes, retweets, replies, source,
  content, url``;
- posts already in `flows.schema.POST_SCHEMA` (an export from another lake).

X payloads become ``source="x"`` with ``post_id = "x:<tweet id>"``, so an import and a live X
collection de-duplicate against each other in the lake. A malformed line or a row without an id or
a time is skipped and reported in `Batch.warnings`; the rest of the file still imports. Files are
read in chunks, so memory stays flat however large they are.

A file is imported once: the cursor keeps its fingerprint (path, size, modification time). A batch
that ends inside a file carries that file and position in ``Cursor.resume``, so a run stopped by
``limit`` or a crash goes on from there.
"""

from __future__ import annotations

import csv
import glob
import gzip
import html
import io
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from flows.schema import POST_SCHEMA, posts_table
from flows.sources.base import Batch, Cursor, SourceError

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
Record = dict[str, Any]


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


class _RowError(ValueError):
    """One record cannot become a post; it is skipped and reported."""


@dataclass(frozen=True)
class _Context:
    hashtag: str
    collected_at: datetime


@dataclass(frozen=True)
class _File:
    shown: str  # the path as matched, for messages
    path: Path
    fingerprint: str
    container: str  # "jsonl", "csv" or "parquet"
    kind: str | None  # a key of _MAPPERS; None for a file without records


class FileSource:
    """Imports each file of `FileSettings.paths` once."""

    name = "file"

    def __init__(self, settings: FileSettings) -> None:
        self.settings = settings

    def fetch(self, hashtag: str, cursor: Cursor, limit: int | None) -> Iterator[Batch]:
        """Batches of the posts of files not yet in ``cursor.imported``, at most `limit` in all.

        Paths are resolved and every new file is recognised now, so that a wrong path or an
        unknown file raises `SourceError` before any batch.
        """
        files = self._pending(cursor)
        context = _Context(hashtag.lower().lstrip("#"), datetime.now(UTC))
        return self._batches(files, context, cursor, limit)

    def _pending(self, cursor: Cursor) -> list[_File]:
        if not self.settings.paths:
            raise SourceError(f"[file] paths is empty: name the files to import. {PATHS_HELP}")
        files: dict[Path, _File] = {}
        for shown, path in _expand(self.settings.paths):
            stat = path.stat()
            fingerprint = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
            if path not in files and fingerprint not in cursor.imported:
                files[path] = _inspect(shown, path, fingerprint)
        return list(files.values())

    def _batches(
        self, files: list[_File], context: _Context, cursor: Cursor, limit: int | None
    ) -> Iterator[Batch]:
        if not files or (limit is not None and limit <= 0):
            return
        resume = _parse_resume(cursor.resume)
        # the file an earlier run stopped in goes first, so that its position still holds
        files = sorted(files, key=lambda f: resume is None or f.fingerprint != resume[0])
        batches = _Batcher(cursor, self.settings.batch_size)
        taken = 0
        for file in files:
            after = resume[1] if resume and resume[0] == file.fingerprint else None
            for position, item in _items(file, context, self.settings.batch_size, after):
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

    def __init__(self, cursor: Cursor, size: int) -> None:
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
        self.cursor = self.cursor.advanced(
            imported=(*self.cursor.imported, *self.done),
            newest_time=max(times, default=None),
            resume=json.dumps({"file": self.at[0], "at": self.at[1]}) if self.at else None,
        )
        batch = Batch(posts_table(self.posts), self.cursor, tuple(self.warnings))
        self.posts, self.warnings, self.done = [], [], []
        return batch


def _parse_resume(resume: str | None) -> tuple[str, Position] | None:
    try:
        data = json.loads(resume or "")
        return data["file"], (int(data["at"][0]), int(data["at"][1]))
    except (ValueError, TypeError, KeyError, IndexError):
        return None  # none, or another source's token: start the file from the beginning


# --- finding and recognising files -------------------------------------------------------------


def _expand(patterns: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
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


def _inspect(shown: str, path: Path, fingerprint: str) -> _File:
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
    return _File(shown, path, fingerprint, container, kind)


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


def _records(file: _File, first: int, batch_size: int) -> Iterator[tuple[int, Record | _RowError]]:
    """(line or row number, record) from `first` on; a malformed record comes as a `_RowError`."""
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
                    yield number, _RowError(f"malformed JSON ({exc})")
                    continue
                yield number, record if isinstance(record, dict) else _RowError("not a JSON object")
            return
        with io.TextIOWrapper(raw, "utf-8-sig", "replace", newline="") as text:
            reader = csv.DictReader(text)
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield reader.line_num, _RowError(f"malformed CSV ({exc})")
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


def _items(
    file: _File, context: _Context, batch_size: int, after: Position | None
) -> Iterator[tuple[Position, Record | str]]:
    """The file's posts, and a warning (a string) for each record skipped, after `after`."""
    if file.kind is None:
        return
    mapper = _MAPPERS[file.kind]
    unit = "line" if file.container != "parquet" else "row"
    skipped = 0
    for number, record in _records(file, after[0] if after else 1, batch_size):
        outcome = (
            [str(record)] if isinstance(record, _RowError) else _attempt(mapper, record, context)
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


def _attempt(mapper: Callable[..., Any], *args: Any) -> Any:
    """`mapper(*args)`, or why a record of someone else's file could not be mapped."""
    try:
        return mapper(*args)
    except ValueError as exc:
        return str(exc)
    except (TypeError, AttributeError, KeyError) as exc:  # a field of an unexpected shape
        return f"({type(exc).__name__}: {exc})"


# --- mapping records to posts ------------------------------------------------------------------

_HASHTAG = re.compile(r"(?<![\w&])#(\w+)")
_MENTION = re.compile(r"(?<![\w@])@(\w+)")
_LINK = re.compile(r"https?://[^\s<>\"']+")
_STATUS_URL = re.compile(r"(?:twitter|x)\.com/(\w+)/status(?:es)?/(\d+)")


def _from_page(page: Record, context: _Context) -> list[Record | str]:
    """An X API v2 response page: its tweets, authors joined from ``includes.users``."""
    data = page.get("data") or []
    tweets = [data] if isinstance(data, dict) else data  # a single-tweet lookup returns one object
    users = {user.get("id"): user for user in (page.get("includes") or {}).get("users") or ()}
    results = []
    for tweet in tweets:
        post = _attempt(_from_tweet, tweet, context, users)
        results.append(post if isinstance(post, dict) else f"tweet {_tweet_id(tweet)}: {post}")
    return results


def x_page_posts(page: Record, hashtag: str, collected_at: datetime) -> list[Record | str]:
    """The posts of one X API v2 response page, authors joined from ``includes.users``; a tweet
    that cannot be mapped comes as a string saying why. The live `x` source maps with this too.
    """
    return _from_page(page, _Context(hashtag, collected_at))


def _tweet_id(tweet: Any) -> str:
    return str(tweet.get("id")) if isinstance(tweet, dict) else "?"


def _from_tweet(
    tweet: Record, context: _Context, users: Mapping[str, Record] | None = None
) -> Record:
    """One X API v2 tweet object; its author is inline (twarc2 flatten) or one of `users`."""
    author = _nested(tweet.get("author")) or (users or {}).get(tweet.get("author_id")) or {}
    # a post longer than 280 characters has its full text in `note_tweet`
    note = _nested(tweet.get("note_tweet")) or {}
    text = _as_str(note.get("text")) or _as_str(tweet.get("text")) or ""
    references = {
        ref.get("type"): _as_str(ref.get("id"))
        for ref in _nested(tweet.get("referenced_tweets")) or ()
    }
    metrics = _nested(tweet.get("public_metrics")) or {}
    entities = _nested(note.get("entities")) or _nested(tweet.get("entities"))
    return {
        **_x_identity(context, _required(tweet, "id"), _as_str(author.get("username"))),
        "author_name": _as_str(author.get("name")),
        "created_at": _as_time(_required(tweet, "created_at")),
        "text": text,
        "lang": _as_str(tweet.get("lang")),
        "like_count": _as_int(metrics.get("like_count")),
        "repost_count": _as_int(metrics.get("retweet_count")),
        "reply_count": _as_int(metrics.get("reply_count")),
        "quote_count": _as_int(metrics.get("quote_count")),
        "is_repost": "retweeted" in references or text.startswith("RT @"),
        "in_reply_to": references.get("replied_to"),
        **_tags(entities, text),
        "client": _client(tweet.get("source")),
    }


def _from_original(row: Record, context: _Context) -> Record:
    """A row of the original project's snscrape-era table."""
    url = _as_str(row.get("url")) or ""
    match = _STATUS_URL.search(url)
    tweet_id = match.group(2) if match else _as_str(row.get("id"))
    if not tweet_id:
        raise _RowError(f"no tweet id: 'url' {url!r} is not a status URL and there is no 'id'")
    username = _as_str(row.get("username")) or (match.group(1) if match else None)
    text = _as_str(row.get("content")) or ""
    return {
        **_x_identity(context, tweet_id, username),
        "author_name": None,
        "created_at": _as_time(_required(row, "created_utc")),
        "text": text,
        "lang": _as_str(row.get("lang")),
        "like_count": _as_int(row.get("likes")),
        "repost_count": _as_int(row.get("retweets")),
        "reply_count": _as_int(row.get("replies")),
        "quote_count": None,
        "is_repost": text.startswith("RT @"),
        "in_reply_to": None,
        **_tags(None, text),
        "client": _client(row.get("source")),
    }


def _from_posts(row: Record, context: _Context) -> Record:
    """A row already in POST_SCHEMA; it keeps its own hashtag and collection time if it has them."""
    for name in ("post_id", "source", "native_id", "created_at"):
        _required(row, name)
    post = {name: convert(row.get(name)) for name, convert in _POST_CONVERTERS.items()}
    post["hashtag"] = post["hashtag"] or context.hashtag
    post["collected_at"] = post["collected_at"] or context.collected_at
    post["text"] = post["text"] or ""
    return post


def _x_identity(context: _Context, tweet_id: Any, username: str | None) -> Record:
    tweet_id = str(tweet_id)
    return {
        "post_id": f"x:{tweet_id}",
        "source": "x",
        "native_id": tweet_id,
        "hashtag": context.hashtag,
        # without a username, X still resolves the post through /i/web/
        "url": f"https://x.com/{username or 'i/web'}/status/{tweet_id}",
        "author_handle": username,
        "collected_at": context.collected_at,
    }


def _tags(entities: Record | None, text: str) -> dict[str, list[str]]:
    """Hashtags (lower case, no '#'), mentions (no '@') and links, from `entities` when the
    payload has them (the API leaves out empty lists), else from the text."""
    if entities is not None:
        hashtags = [h["tag"] for h in entities.get("hashtags") or ()]
        mentions = [m["username"] for m in entities.get("mentions") or ()]
        links = [u.get("expanded_url") or u["url"] for u in entities.get("urls") or ()]
    else:
        hashtags = _HASHTAG.findall(text)
        mentions = _MENTION.findall(text)
        links = [link.rstrip(".,;:!?)…") for link in _LINK.findall(text)]
    return {
        "hashtags": list(dict.fromkeys(tag.lower() for tag in hashtags)),
        "mentions": list(dict.fromkeys(mentions)),
        "links": list(dict.fromkeys(links)),
    }


def _client(source: Any) -> str | None:
    """The posting app; v1.1-era payloads wrap it in an HTML link."""
    value = _as_str(source)
    if value is None:
        return None
    if "<" in value:
        value = re.sub(r"<[^>]+>", "", value)
    return html.unescape(value).strip() or None


# --- values from JSON, CSV (all text) or Parquet -----------------------------------------------


def _required(record: Record, name: str) -> Any:
    value = record.get(name)
    if value is None or value == "":
        raise _RowError(f"no {name!r}")
    return value


def _as_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _as_int(value: Any) -> int | None:
    if value is None or value == "" or value != value:  # NaN from a pandas float column
        return None
    if isinstance(value, str):
        return int(float(value)) if "." in value or "e" in value.lower() else int(value)
    return int(value)


def _as_bool(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "t", "1", "yes"):
            return True
        if lowered in ("false", "f", "0", "no"):
            return False
        raise _RowError(f"not true or false: {value!r}")
    return bool(value)


def _as_time(value: Any) -> datetime | None:
    """A UTC time from a datetime or an ISO 8601 string; a time without zone is taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _RowError(f"not an ISO 8601 time: {value!r}") from None
    if not isinstance(value, datetime):
        raise _RowError(f"not a time: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _as_list(value: Any) -> list[str] | None:
    """A list, or its text in a CSV: JSON (``["a"]``), DuckDB (``[a, b]``) or pandas (``['a']``)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            inner = value.strip().removeprefix("[").removesuffix("]")
            value = [item.strip().strip("'\"") for item in inner.split(",") if item.strip()]
        if not isinstance(value, list):
            raise _RowError(f"not a list: {value!r}")
    return [str(item) for item in value]


def _nested(value: Any) -> Any:
    """An object or array of a payload; in a CSV it may be JSON text."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, (dict, list)) else None


def _converter(type_: pa.DataType) -> Callable[[Any], Any]:
    if pa.types.is_timestamp(type_):
        return _as_time
    if pa.types.is_integer(type_):
        return _as_int
    if pa.types.is_boolean(type_):
        return _as_bool
    if pa.types.is_list(type_):
        return _as_list
    return _as_str


_POST_CONVERTERS = {field.name: _converter(field.type) for field in POST_SCHEMA}

_MAPPERS: dict[str, Callable[[Record, _Context], list[Record | str]]] = {
    "x_page": _from_page,
    "x_tweet": lambda record, context: [_from_tweet(record, context)],
    "original": lambda record, context: [_from_original(record, context)],
    "posts": lambda record, context: [_from_posts(record, context)],
}
