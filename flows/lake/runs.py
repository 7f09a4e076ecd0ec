"""The record of every collection run, kept in the lake beside the posts.

Layout under the lake root::

    runs/source=<source>/date=<started date>/<run id>.parquet   one row of COLLECTION_RUN_SCHEMA
    _state/runs.json    every run file: its run, source, start and cost, when it was written, and
                        the warehouses that loaded it

Files are written atomically, as posts files are. A retried run (a Prefect task retry keeps its
run id) rewrites its own file with the counts of its tries added up (`CollectionRun.after`), and
the file is loaded again: the warehouse MERGE on ``(run_id, source)`` keeps one row. What a
source spent in a month is summed from ``runs.json`` alone, without reading the files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from flows.lake.lake import Lake
from flows.schema import COLLECTION_RUN_SCHEMA, RUN_STATUSES

RUNS_DIR = "runs"
RUNS_STATE = "runs.json"


@dataclass
class CollectionRun:
    """What one run of one source got, waited for, missed and paid (`COLLECTION_RUN_SCHEMA`).

    Attributes:
        gaps: ``(from, to)`` spans the source could not see (streams, refreshes).
        lag_s: seconds from the newest new post's ``created_at`` to its landing in the lake;
            None when the run landed nothing new.
    """

    run_id: str
    source: str
    hashtag: str
    started_at: datetime
    finished_at: datetime
    status: str = "ok"
    reason: str | None = None
    requests: int = 0
    posts_new: int = 0
    posts_duplicate: int = 0
    retries: int = 0
    rate_limit_wait_s: float = 0.0
    reconnects: int = 0
    events: int | None = None
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)
    lag_s: float | None = None
    cost_usd: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in RUN_STATUSES:
            raise ValueError(f"status: one of {', '.join(RUN_STATUSES)}, got {self.status!r}")

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["gaps"] = [{"from_time": start, "to_time": end} for start, end in self.gaps]
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CollectionRun:
        gaps = [(gap["from_time"], gap["to_time"]) for gap in row.get("gaps") or ()]
        return cls(**{**row, "gaps": gaps})

    def after(self, earlier: CollectionRun) -> CollectionRun:
        """This try of a run added to an `earlier` try of the same run: counts summed, the
        start of the first, the end, status and lag of this one (the lag of the earlier one
        when this one landed nothing)."""
        return CollectionRun(
            run_id=self.run_id,
            source=self.source,
            hashtag=self.hashtag,
            started_at=earlier.started_at,
            finished_at=self.finished_at,
            status=self.status,
            reason=self.reason,
            requests=earlier.requests + self.requests,
            posts_new=earlier.posts_new + self.posts_new,
            posts_duplicate=earlier.posts_duplicate + self.posts_duplicate,
            retries=earlier.retries + self.retries,
            rate_limit_wait_s=earlier.rate_limit_wait_s + self.rate_limit_wait_s,
            reconnects=earlier.reconnects + self.reconnects,
            events=None
            if earlier.events is None and self.events is None
            else (earlier.events or 0) + (self.events or 0),
            gaps=earlier.gaps + self.gaps,
            lag_s=self.lag_s if self.lag_s is not None else earlier.lag_s,
            cost_usd=round(earlier.cost_usd + self.cost_usd, 6),
        )


class RunLog:
    """The run records of `lake`.

    Example:
        >>> RunLog(Lake("/tmp/lake")).spent_this_month("x")  # doctest: +SKIP
        1.25
    """

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def entries(self) -> dict[str, dict[str, Any]]:
        """Lake-relative run file → ``{"run_id", "source", "started_at", "cost_usd",
        "written_at", "loaded_into"}``."""
        return self.lake._read_json(RUNS_STATE).get("files", {})

    def record(self, run: CollectionRun) -> str:
        """Write `run` (replacing the file of an earlier try of it) and list it; its path."""
        day = run.started_at.astimezone(UTC).date().isoformat()
        path = f"{RUNS_DIR}/source={run.source}/date={day}/{run.run_id}.parquet"
        sink = pa.BufferOutputStream()
        table = pa.Table.from_pylist([run.to_row()], schema=COLLECTION_RUN_SCHEMA)
        pq.write_table(table, sink, compression="zstd")
        self.lake._atomic_write(self.lake._path(path), sink.getvalue().to_pybytes())
        entry = {
            "run_id": run.run_id,
            "source": run.source,
            "started_at": run.started_at.isoformat(),
            "cost_usd": run.cost_usd,
            "written_at": datetime.now(UTC).isoformat(),
            "loaded_into": [],  # a rewritten record is loaded again
        }
        self.lake._update_json(
            RUNS_STATE, lambda data: data.setdefault("files", {}).update({path: entry})
        )
        return path

    def find(self, run_id: str, source: str) -> CollectionRun | None:
        """The record of run `run_id` of `source`, if an earlier try of it left one."""
        for path, entry in self.entries().items():
            if (entry["run_id"], entry["source"]) == (run_id, source):
                return CollectionRun.from_row(self.read([path]).to_pylist()[0])
        return None

    def spent_this_month(self, source: str, now: datetime | None = None) -> float:
        """USD that the runs of `source` started this calendar month (UTC) recorded."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        month = (now.year, now.month)
        total = 0.0
        for entry in self.entries().values():
            started = datetime.fromisoformat(entry["started_at"]).astimezone(UTC)
            if entry["source"] == source and (started.year, started.month) == month:
                total += entry["cost_usd"]
        return total

    def pending(self, target: str, everything: bool = False) -> dict[str, str]:
        """Run files not loaded into `target` (every file when `everything`), each with the
        time it was written, for `mark_loaded`."""
        return {
            path: entry["written_at"]
            for path, entry in sorted(self.entries().items())
            if everything or target not in entry["loaded_into"]
        }

    def read(self, paths: Iterable[str]) -> pa.Table:
        tables = []
        for path in paths:
            with self.lake.fs.open(self.lake._path(path), "rb") as handle:
                tables.append(pq.read_table(handle, schema=COLLECTION_RUN_SCHEMA))
        return pa.concat_tables(tables) if tables else COLLECTION_RUN_SCHEMA.empty_table()

    def mark_loaded(self, loaded: dict[str, str], target: str) -> None:
        """Note that the files of `pending` went into `target`, unless one was rewritten since
        (a retry's record): that one stays pending."""

        def mark(data: dict[str, Any]) -> None:
            for path, written_at in loaded.items():
                entry = data["files"][path]
                if entry["written_at"] == written_at and target not in entry["loaded_into"]:
                    entry["loaded_into"].append(target)

        self.lake._update_json(RUNS_STATE, mark)
