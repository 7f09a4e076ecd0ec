"""What every source shares: the batch it yields, the interface the collector calls, its error.

A source is built from its typed settings (its own INI section) and yields `Batch`es of posts in
`flows.schema.POST_SCHEMA`, each with the `Cursor` that holds once that batch has landed in the
lake. The collector writes a batch, then saves its cursor, so a run that dies after batch k
resumes at batch k+1; a batch written twice is de-duplicated by the lake.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar, Protocol

import pyarrow as pa


@dataclass(frozen=True)
class Cursor:
    """Incremental state of one source for one hashtag, saved in the lake's `_state/`.

    Attributes:
        newest_id: the newest native id that has landed (APIs that take ``since_id``).
        newest_time: the newest ``created_at`` that has landed (APIs that filter by time).
        resume: where an unfinished run stopped (a page token or an offset); None once a run
            has finished.
        imported: fingerprints of files already imported (the file source).
    """

    newest_id: str | None = None
    newest_time: datetime | None = None
    resume: str | None = None
    imported: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["newest_time"] = self.newest_time.isoformat() if self.newest_time else None
        data["imported"] = list(self.imported)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cursor:
        newest_time = data.get("newest_time")
        return cls(
            newest_id=data.get("newest_id"),
            newest_time=datetime.fromisoformat(newest_time) if newest_time else None,
            resume=data.get("resume"),
            imported=tuple(data.get("imported", ())),
        )

    def __str__(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)

    def advanced(self, **changes: Any) -> Cursor:
        return replace(self, **changes)


@dataclass(frozen=True)
class Batch:
    """Posts (POST_SCHEMA) and the cursor that holds once they are in the lake."""

    posts: pa.Table
    cursor: Cursor
    # problems met while producing this batch that did not stop it (a malformed line, say)
    warnings: tuple[str, ...] = field(default=())


class Source(Protocol):
    """What the collector needs from a source."""

    name: ClassVar[str]

    def fetch(self, hashtag: str, cursor: Cursor, limit: int | None) -> Iterator[Batch]:
        """Yield batches of posts newer than `cursor`, at most `limit` posts in all."""
        ...


class SourceError(RuntimeError):
    """A source cannot run; the message says why and what to do. Other sources still run."""
