"""Compaction: a partition's small files rewritten as one, so the lake stays a few files a day.

Every 15-minute run adds a small posts file per partition it touches and a run record file per
source; a year of them is ~200,000 files, and the state files that list them (``manifest.json``,
``runs.json``, read and rewritten whole by every run) grow with them. `compact` (called by
analyze, under its lock) rewrites the files of a partition as one file:

- a posts partition once it holds `SMALL_FILES` files, or two once its day is closed (older than
  `OPEN_DAYS`: late posts still land in today's and yesterday's partitions);
- a run records partition once its day is closed (a retried run finds its own record by run id
  until then).

Steps, each safe to be killed after: (1) the merged file is written under a new name, unlisted;
(2) one atomic update of the state file lists it and drops its members, provided they are all
still listed (else the merged file is deleted: another process changed the partition); the
merged file is loaded into the targets that had loaded every member (MERGE on the post id makes a
second load change nothing); (3) the members stay on disk, as ``retired``, for `RETIRE_AFTER`, so
that a run that listed them before (a collector reading a partition's ids) can still read them,
and a later compaction deletes them. A kill after (1) leaves an unlisted file that no reader
sees; after (2), files deleted by the next compaction.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from flows.lake.lake import Lake
from flows.lake.runs import RUNS_STATE, RunLog

log = logging.getLogger(__name__)

SMALL_FILES = 8  # files of an open posts partition that make it worth rewriting
OPEN_DAYS = 2  # today and yesterday still gain files; older days are closed
RETIRE_AFTER = timedelta(days=1)  # longer than a run keeps using its listing of the lake

Reader = Callable[[str], pa.Table | None]


def compact(lake: Lake, now: datetime | None = None) -> int:
    """Compact the posts and run record partitions that are due (see the module); files removed
    from the listings. `now`: the time that decides which days are closed (default: now)."""
    now = now or datetime.now(timezone.utc)
    runs = RunLog(lake)
    removed = _compact(lake, "manifest.json", lake.read_posts, _posts_entry, now, SMALL_FILES)
    removed += _compact(lake, RUNS_STATE, lambda path: runs.read([path]), _runs_entry, now, None)
    if removed:
        log.info("compaction: %d small files rewritten into fewer", removed)
    return removed


def _due(partition: str, files: int, today: date, open_files: int | None) -> bool:
    closed = (today - date.fromisoformat(partition.rsplit("date=", 1)[1])).days >= OPEN_DAYS
    return files >= 2 and (closed or (open_files is not None and files >= open_files))


def _posts_entry(entries: list[dict[str, Any]], rows: int, name: str) -> dict[str, Any]:
    return {"rows": rows, "run_id": name}


def _runs_entry(entries: list[dict[str, Any]], rows: int, name: str) -> dict[str, Any]:
    # run_id None: a merged record is never a retry's earlier try (its day is closed)
    return {
        "run_id": None,
        "source": entries[0]["source"],
        "started_at": min(entry["started_at"] for entry in entries),
        "cost_usd": round(sum(entry["cost_usd"] for entry in entries), 6),
    }


def _compact(
    lake: Lake,
    state: str,
    read: Reader,
    describe: Callable[[list[dict[str, Any]], int, str], dict[str, Any]],
    now: datetime,
    open_files: int | None,
) -> int:
    data = lake._read_json(state)
    _delete_retired(lake, state, data.get("retired", {}), now)
    files: dict[str, dict[str, Any]] = data.get("files", {})
    partitions: dict[str, list[str]] = defaultdict(list)
    for path in files:
        partitions[path.rsplit("/", 1)[0]].append(path)
    removed = 0
    for partition, paths in sorted(partitions.items()):
        if not _due(partition, len(paths), now.date(), open_files):
            continue
        paths.sort(key=lambda path: (files[path]["written_at"], path))
        tables = [read(path) for path in paths]
        if any(table is None for table in tables):  # moved aside: the rest is done next time
            continue
        merged = pa.concat_tables(tables)
        name = f"compacted-{uuid.uuid4().hex[:8]}"
        entry = describe([files[path] for path in paths], merged.num_rows, name)
        target = f"{partition}/{name}-00000.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(merged, sink, compression="zstd")
        lake._atomic_write(lake._path(target), sink.getvalue().to_pybytes())
        if _swap(lake, state, paths, target, entry, now):
            removed += len(paths) - 1
        else:
            lake.fs.rm(lake._path(target))
    return removed


def _swap(
    lake: Lake, state: str, paths: list[str], target: str, entry: dict[str, Any], now: datetime
) -> bool:
    """List `target` instead of `paths` in one write, if all of them are still listed."""
    swapped = False

    def change(data: dict[str, Any]) -> None:
        nonlocal swapped
        listed = data.setdefault("files", {})
        if not all(path in listed for path in paths):
            return
        members = [listed.pop(path) for path in paths]
        loaded = [set(member["loaded_into"]) for member in members]
        listed[target] = {
            **entry,
            "written_at": now.isoformat(),
            "loaded_into": sorted(set.intersection(*loaded)),
        }
        data.setdefault("retired", {}).update(dict.fromkeys(paths, now.isoformat()))
        swapped = True

    lake._update_json(state, change)
    return swapped


def _delete_retired(lake: Lake, state: str, retired: dict[str, str], now: datetime) -> None:
    due = [
        path for path, when in retired.items()
        if now - datetime.fromisoformat(when) >= RETIRE_AFTER
    ]
    if not due:
        return
    for path in due:
        if lake.fs.exists(lake._path(path)):
            lake.fs.rm(lake._path(path))

    def forget(data: dict[str, Any]) -> None:
        for path in due:
            data.get("retired", {}).pop(path, None)

    lake._update_json(state, forget)
