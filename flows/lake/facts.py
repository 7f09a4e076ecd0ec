"""Facts about posts already in the lake: counters read again (snapshots) and deletions.

Layout under the lake root::

    metrics/source=<s>/date=<observed date>/<run id>-<seq>.parquet     POST_METRICS_SCHEMA rows
    deletions/source=<s>/date=<observed date>/<run id>-<seq>.parquet   POST_DELETION_SCHEMA rows
    _state/metrics.json, _state/deletions.json   every fact file: its source, date, rows, run,
                                                 and the warehouses that loaded it

A refresh (`flows.stages.refresh`) writes both; a stream's delete events (the live sources) write
deletions the same way. Facts are only ever added: each write is a new file, named after its run
and the next seq of that run, written atomically and then listed, so a retried run never
overwrites what an earlier try landed. As for posts, the listing is the catalogue: a file that a
killed run wrote but never listed is read by no one, and analyze loads each listed file once per
warehouse (MERGE on the table's key makes a repeated load change nothing).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flows.lake.lake import Lake
from flows.schema import POST_DELETION_SCHEMA, POST_METRICS_SCHEMA


@dataclass(frozen=True)
class FactKind:
    """A kind of fact: its folder (and state file) name and its rows' schema."""

    name: str
    schema: pa.Schema


METRICS = FactKind("metrics", POST_METRICS_SCHEMA)
DELETIONS = FactKind("deletions", POST_DELETION_SCHEMA)


class FactLog:
    """The fact files of one `kind` in `lake`.

    Example:
        >>> FactLog(Lake("/tmp/lake"), DELETIONS).write("bluesky", "run-1", rows)  # doctest: +SKIP
        ['deletions/source=bluesky/date=2026-12-06/run-1-00000.parquet']
    """

    def __init__(self, lake: Lake, kind: FactKind) -> None:
        self.lake = lake
        self.kind = kind
        self._state = f"{kind.name}.json"
        self._next_seq: dict[str, int] = {}  # run id → the seq of its next file

    def entries(self) -> dict[str, dict[str, Any]]:
        """Lake-relative file → ``{"source", "date", "rows", "run_id", "written_at",
        "loaded_into"}``."""
        return self.lake._read_json(self._state).get("files", {})

    def write(self, source: str, run_id: str, rows: pa.Table) -> list[str]:
        """Land `rows` (of the kind's schema) as new files, one per day observed; their paths."""
        if rows.num_rows == 0:
            return []
        rows = rows.select(self.kind.schema.names).cast(self.kind.schema)
        if run_id not in self._next_seq:
            mine = [_seq(path) for path, e in self.entries().items() if e["run_id"] == run_id]
            self._next_seq[run_id] = max(mine, default=-1) + 1
        days = pc.cast(rows.column("observed_at"), pa.date32())
        entries: dict[str, dict[str, Any]] = {}
        for day in pc.unique(days).to_pylist():
            part = rows.filter(pc.equal(days, pa.scalar(day, pa.date32())))
            seq = self._next_seq[run_id]
            self._next_seq[run_id] += 1
            folder = f"{self.kind.name}/source={source}/date={day.isoformat()}"
            path = f"{folder}/{run_id}-{seq:05d}.parquet"
            sink = pa.BufferOutputStream()
            pq.write_table(part, sink, compression="zstd")
            self.lake._atomic_write(self.lake._path(path), sink.getvalue().to_pybytes())
            entries[path] = {
                "source": source,
                "date": day.isoformat(),
                "rows": part.num_rows,
                "run_id": run_id,
                "written_at": datetime.now(timezone.utc).isoformat(),
                "loaded_into": [],
            }
        self.lake._update_json(
            self._state, lambda data: data.setdefault("files", {}).update(entries)
        )
        return sorted(entries)

    def since(self, day: date, sources: Iterable[str] | None = None) -> list[str]:
        """The files of facts observed on `day` or later (of `sources`, when given)."""
        wanted = None if sources is None else set(sources)
        return sorted(
            path
            for path, entry in self.entries().items()
            if entry["date"] >= day.isoformat() and (wanted is None or entry["source"] in wanted)
        )

    def read(self, paths: Iterable[str], columns: list[str] | None = None) -> pa.Table:
        schema = self.kind.schema
        if columns is not None:
            schema = pa.schema([schema.field(name) for name in columns])
        tables = []
        for path in paths:
            with self.lake.fs.open(self.lake._path(path), "rb") as handle:
                tables.append(pq.read_table(handle, columns=columns).cast(schema))
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def pending(self, target: str, everything: bool = False) -> list[str]:
        """Files not loaded into `target` yet (every file when `everything`)."""
        return sorted(
            path
            for path, entry in self.entries().items()
            if everything or target not in entry["loaded_into"]
        )

    def mark_loaded(self, paths: Iterable[str], target: str) -> None:
        def mark(data: dict[str, Any]) -> None:
            for path in paths:
                loaded = data["files"][path]["loaded_into"]
                if target not in loaded:
                    loaded.append(target)

        self.lake._update_json(self._state, mark)


def _seq(path: str) -> int:
    return int(path.rsplit("-", 1)[1].removesuffix(".parquet"))
