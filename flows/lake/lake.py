"""The data lake: Parquet files of posts plus the state that makes collection incremental.

Layout under the lake root (a local folder or ``gs://bucket/prefix``, through fsspec)::

    posts/source=<source>/date=<YYYY-MM-DD>/<run id>-<seq>.parquet   one file per partition per batch
    _state/cursors.json      per source and hashtag: the cursor (`flows.cursors`) that holds after
                             the last batch, with the file's format version
    _state/manifest.json     every posts file, its row count, and which (model, warehouse) loaded it
    runs/, _state/runs.json  the record of each collection run (`flows.lake.runs`)
    _state/<name>.lock       locks (`flows.lake.lock`): one collector per source, one analyzer, and a
                             short one around each read-modify-write of the JSON state above
    _quarantine/posts/...    posts files found unreadable (truncated, not Parquet), moved aside

A post's partition follows from its own ``created_at``, which never changes, so a post can only
ever be a duplicate of a post in the same partition: de-duplication reads the ids of the files the
manifest lists in the partitions a batch touches, never the whole lake. The ids are kept as 64-bit
hashes (8 bytes per post) for the rest of the run, so memory stays small as the lake grows. The
manifest is the lake's catalogue: a file is in the lake once listed there (a run killed between
writing a file and listing it leaves a file that no reader sees; the next run writes its posts
again).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import duckdb
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from flows.cursors import SourceCursor, dump_cursors, load_cursors, new_cursor
from flows.lake.lock import lake_lock
from flows.schema import POST_SCHEMA

log = logging.getLogger(__name__)

POSTS_DIR = "posts"
STATE_DIR = "_state"
QUARANTINE_DIR = "_quarantine"  # posts files that could not be read, moved aside
_DAY_US = 86_400 * 1_000_000


@dataclass
class WriteResult:
    """What one `LakeWriter.write` call did."""

    received: int = 0
    new: int = 0
    files: list[str] = field(default_factory=list)
    newest: datetime | None = None  # the latest created_at among the new posts

    @property
    def duplicates(self) -> int:
        return self.received - self.new


_NO_HASHES = np.empty(0, dtype=np.uint64)
_hasher = threading.local()  # a DuckDB connection per thread and process: ~10 ms to open


def id_hashes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hashes of post ids, computed by DuckDB's vectorized hash (fast, in-process)."""
    if getattr(_hasher, "pid", None) != os.getpid():  # a forked child opens its own
        _hasher.con, _hasher.pid = duckdb.connect(), os.getpid()
    con = _hasher.con
    con.register("ids", pa.table({"id": ids}))
    try:
        return con.sql("SELECT hash(id) AS h FROM ids").to_arrow_table().column(0).to_numpy()
    finally:
        con.unregister("ids")


class Lake:
    """A lake at `url`: a local folder or ``gs://bucket/prefix`` (needs gcsfs).

    Example:
        >>> lake = Lake("/tmp/lake")  # doctest: +SKIP
        >>> with lake.writer("run-1") as writer:  # doctest: +SKIP
        ...     writer.write(posts).new
    """

    def __init__(self, url: str, **storage_options: Any) -> None:
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **storage_options)
        self.root = self.root.rstrip("/")

    def __repr__(self) -> str:
        return f"Lake({self.url!r})"

    def uri(self, path: str) -> str:
        """The full URL of a lake-relative path (``gs://bucket/prefix/posts/...`` on GCS)."""
        return f"{self.url}/{path}"

    # ---------------------------------------------------------------- small atomic JSON state
    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _atomic_write(self, path: str, data: bytes) -> None:
        """Readers see the old file or the new one, never half of one."""
        if isinstance(self.fs, LocalFileSystem):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            try:
                with open(tmp, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, path)
            except OSError as exc:  # a full disk: leave no half file to fill it further
                if os.path.exists(tmp):
                    os.remove(tmp)
                raise OSError(exc.errno, exc.strerror, path) from exc
        else:  # object stores: a single-request upload is atomic
            self.fs.pipe_file(path, data)

    def _read_json(self, name: str) -> dict[str, Any]:
        path = self._path(STATE_DIR, name)
        if not self.fs.exists(path):
            return {}
        with self.fs.open(path, "rb") as handle:
            return json.load(handle)

    def _write_json(self, name: str, data: dict[str, Any]) -> None:
        # no indent: json's C encoder runs only without one (3-4 times faster on a big manifest)
        body = json.dumps(data, sort_keys=True).encode()
        self._atomic_write(self._path(STATE_DIR, name), body)

    def _update_json(self, name: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Read, change and write one state file, with no other writer in between."""
        with self.lock("state", wait=120):
            data = self._read_json(name)
            change(data)
            self._write_json(name, data)

    def lock(self, name: str, **options: float) -> AbstractContextManager[None]:
        """Hold ``_state/<name>.lock`` for a `with` block, against every other process and machine.

        Options are those of `flows.lake.lock.lake_lock` (``wait``, ``ttl``); `flows.lake.lock.LakeBusy` is
        raised when the lock stays held longer than ``wait``.
        """
        return lake_lock(self.fs, self._path(STATE_DIR, f"{name}.lock"), purpose=name, **options)

    # ---------------------------------------------------------------- cursors
    def read_cursor(self, source: str, hashtag: str) -> SourceCursor:
        """The saved cursor of `source` for `hashtag`, or its first one.

        Raises:
            flows.cursors.CursorError: the file's cursors cannot be read.
        """
        cursors = load_cursors(self._read_json("cursors.json"))
        return cursors.get(f"{source}/{hashtag}") or new_cursor(source)

    def save_cursor(self, source: str, hashtag: str, cursor: SourceCursor) -> None:
        """Save `cursor`; the whole file is written in the current format (an older one is
        converted)."""

        def change(data: dict[str, Any]) -> None:
            cursors = load_cursors(data)
            cursors[f"{source}/{hashtag}"] = cursor
            data.clear()
            data.update(dump_cursors(cursors))

        self._update_json("cursors.json", change)

    # ---------------------------------------------------------------- manifest
    def manifest(self) -> dict[str, dict[str, Any]]:
        """Lake-relative posts file path → ``{"rows", "run_id", "written_at", "loaded_into"}``."""
        return self._read_json("manifest.json").get("files", {})

    def _record_files(self, entries: dict[str, dict[str, Any]]) -> None:
        self._update_json("manifest.json", lambda manifest: manifest.setdefault("files", {}).update(entries))

    def pending_files(
        self, target: str, manifest: dict[str, dict[str, Any]] | None = None
    ) -> list[str]:
        """Posts files not yet loaded into `target` (a model id and warehouse), oldest first.

        `manifest`: what `manifest()` returned, when the caller has read it already.
        """
        files = self.manifest() if manifest is None else manifest
        pending = [path for path, entry in files.items() if target not in entry["loaded_into"]]
        return sorted(pending, key=lambda path: (files[path]["written_at"], path))

    def mark_loaded(self, paths: list[str], target: str) -> None:
        def mark(manifest: dict[str, Any]) -> None:
            for path in paths:
                loaded = manifest["files"][path]["loaded_into"]
                if target not in loaded:
                    loaded.append(target)

        self._update_json("manifest.json", mark)

    def read_posts(self, path: str, columns: list[str] | None = None) -> pa.Table | None:
        """One posts file (a lake-relative path from the manifest) as a POST_SCHEMA table, or
        None when the file is not Parquet any more (truncated, overwritten): it is then moved
        aside (`quarantine`) so that the rest of the lake goes on.

        Raises:
            OSError: the file could not be read (missing, the network); it stays where it is.
        """
        try:
            with self.fs.open(self._path(path), "rb") as handle:
                return pq.read_table(handle, schema=POST_SCHEMA, columns=columns)
        except (pa.ArrowException, OSError):
            data = self.fs.cat_file(self._path(path))  # an error here is I/O, not the file's
            try:
                pq.read_table(pa.BufferReader(data))
            except (pa.ArrowException, OSError) as corrupt:
                self.quarantine(path, corrupt)
                return None
            raise  # sound Parquet that still failed (a schema, a blip): not the file's fault

    def quarantine(self, path: str, reason: object) -> None:
        """Drop posts file `path` from the manifest and move it to ``_quarantine/<path>``.

        The manifest goes first: a run killed in between leaves an unlisted file, which no
        reader sees, rather than a listed file that is missing.
        """
        self._update_json("manifest.json", lambda data: data.get("files", {}).pop(path, None))
        target = self._path(QUARANTINE_DIR, path)
        self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        self.fs.mv(self._path(path), target)
        log.warning(
            "%s is not a readable Parquet file (%s): moved to %s, its posts left out of the lake",
            self.uri(path), reason, self.uri(f"{QUARANTINE_DIR}/{path}"),
        )

    def count_posts(self) -> int:
        return sum(entry["rows"] for entry in self.manifest().values())

    # ---------------------------------------------------------------- writing posts
    def writer(self, run_id: str) -> LakeWriter:
        return LakeWriter(self, run_id)

    def post_ids(self, source: str) -> pa.ChunkedArray:
        """The ids of every post of `source` in the lake."""
        prefix = f"{POSTS_DIR}/source={source}/"
        paths = [path for path in self.manifest() if path.startswith(prefix)]
        tables = [self.read_posts(path, ["post_id"]) for path in paths]
        ids = [chunk for table in tables if table is not None for chunk in table.column(0).chunks]
        return pa.chunked_array(ids, pa.string())

    def post_hashes(self, source: str) -> np.ndarray:
        """Sorted hashes (`id_hashes`) of the ids of every post of `source` in the lake: what a
        stream checks a deletion against, 8 bytes a post."""
        ids = self.post_ids(source)
        return np.unique(id_hashes(ids)) if len(ids) else _NO_HASHES

    def partition_hashes(self, source: str, day: str, listed: Iterable[str]) -> np.ndarray:
        """Sorted hashes of the post ids in one partition's files among `listed` (the manifest's).

        Only listed files count: a file that a killed run wrote but never recorded is not in the
        lake (analyze never reads it), so its posts must be written again, not skipped.
        """
        prefix = f"{POSTS_DIR}/source={source}/date={day}/"
        tables = [self.read_posts(path, ["post_id"]) for path in listed if path.startswith(prefix)]
        ids = [chunk for table in tables if table is not None for chunk in table.column(0).chunks]
        if not ids:
            return _NO_HASHES
        return np.unique(id_hashes(pa.chunked_array(ids, pa.string())))


class LakeWriter:
    """Writes batches of one run, de-duplicating against the lake and earlier batches.

    Files are named ``<run id>-<seq>.parquet``; a retried run that reuses its run id goes on from
    the seq after its recorded files, so it never overwrites the posts its first try landed.
    """

    def __init__(self, lake: Lake, run_id: str) -> None:
        self.lake = lake
        self.run_id = run_id
        self._listed: set[str] | None = None  # the manifest's files when the writer started
        self._seq = 0
        self._seen: dict[tuple[str, int], np.ndarray] = {}  # (source, day number) → sorted hashes

    def _start(self) -> set[str]:
        if self._listed is None:
            state = self.lake._read_json("manifest.json")
            manifest = state.get("files", {})
            self._listed = set(manifest)
            mine = [_seq(path) for path, item in manifest.items() if item["run_id"] == self.run_id]
            # files compacted away but still on disk (`flows.lake.compaction`): never reuse a name
            # that a later compaction deletes
            pattern = re.compile(re.escape(self.run_id) + r"-\d{5}\.parquet")
            retired = state.get("retired", {})
            mine += [_seq(path) for path in retired if pattern.fullmatch(path.rsplit("/", 1)[1])]
            self._seq = max(mine, default=-1) + 1
        return self._listed

    def __enter__(self) -> LakeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._seen.clear()

    def write(self, posts: pa.Table) -> WriteResult:
        """De-duplicate `posts` on post_id (within the batch and against the lake), then write one
        Parquet file per (source, date) partition and record them in the manifest."""
        result = WriteResult(received=posts.num_rows)
        if posts.num_rows == 0:
            return result
        posts = posts.cast(POST_SCHEMA) if not posts.schema.equals(POST_SCHEMA) else posts
        # Two writers may fill one partition at once (a stream and the polling source of the
        # same network): each source's partitions are written by one writer at a time, which
        # first reads the manifest, or takes in the files listed since it last read it.
        with ExitStack() as held:
            for source in sorted(pc.unique(posts.column("source")).to_pylist()):
                held.enter_context(self.lake.lock(f"posts-{source}"))
            if self._listed is None:
                self._start()
            else:
                self._catch_up(self._listed)
            return self._write(posts, result)

    def _catch_up(self, listed: set[str]) -> None:
        """Add the posts of files listed by other writers since this one looked to its view."""
        added = set(self.lake.manifest()) - listed
        listed |= added
        for (source, day), seen in self._seen.items():
            prefix = f"{POSTS_DIR}/source={source}/date={_day_str(day)}/"
            fresh = [path for path in added if path.startswith(prefix)]
            if fresh:
                theirs = self.lake.partition_hashes(source, _day_str(day), fresh)
                self._seen[(source, day)] = np.union1d(seen, theirs)

    def _write(self, posts: pa.Table, result: WriteResult) -> WriteResult:
        hashes = id_hashes(posts.column("post_id"))
        _, first = np.unique(hashes, return_index=True)  # first occurrence of each id
        first.sort()
        # the rows below are positions in `first`; posts are taken once, per partition
        hashes = hashes[first]
        micros = pc.cast(posts.column("created_at"), pa.int64()).to_numpy()[first]
        days = micros // _DAY_US
        sources = pc.dictionary_encode(posts.column("source")).combine_chunks()
        source_codes = sources.indices.to_numpy()[first]
        codes = source_codes.astype(np.int64) * 1_000_000 + days
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        entries: dict[str, dict[str, Any]] = {}
        for rows in np.split(order, bounds):
            source = sources.dictionary[int(source_codes[rows[0]])].as_py()
            day = int(days[rows[0]])
            new_rows = rows[self._is_new(source, day, hashes[rows])]
            if len(new_rows) == 0:
                continue
            partition = posts.take(pa.array(first[np.sort(new_rows)]))
            path = self._write_partition(source, day, partition)
            entries[path] = {
                "rows": len(new_rows),
                "run_id": self.run_id,
                "written_at": datetime.now(timezone.utc).isoformat(),
                "loaded_into": [],
            }
            result.new += len(new_rows)
            newest = datetime.fromtimestamp(micros[new_rows].max() / 1e6, timezone.utc)
            result.newest = max(filter(None, (result.newest, newest)))
        self._seq += 1
        if entries:
            self.lake._record_files(entries)
            self._start().update(entries)  # its own files are in its view already
            result.files = sorted(entries)
        return result

    def _is_new(self, source: str, day: int, hashes: np.ndarray) -> np.ndarray:
        key = (source, day)
        if key not in self._seen:
            self._seen[key] = self.lake.partition_hashes(source, _day_str(day), self._start())
        seen = self._seen[key]
        if len(seen):
            idx = np.minimum(np.searchsorted(seen, hashes), len(seen) - 1)
            new = seen[idx] != hashes
        else:
            new = np.ones(len(hashes), dtype=bool)
        self._seen[key] = np.union1d(seen, hashes[new])
        return new

    def _write_partition(self, source: str, day: int, table: pa.Table) -> str:
        relative = f"{POSTS_DIR}/source={source}/date={_day_str(day)}/{self.run_id}-{self._seq:05d}.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        self.lake._atomic_write(self.lake._path(relative), sink.getvalue().to_pybytes())
        return relative


def _seq(path: str) -> int:
    """The seq of a ``<run id>-<seq>.parquet`` file."""
    return int(path.rsplit("-", 1)[1].removesuffix(".parquet"))


def _day_str(day: int) -> str:
    return (np.datetime64(day, "D")).astype(str)

