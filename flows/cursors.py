"""Typed cursors: where each source stands for one hashtag, saved in the lake's `_state/`.

A cursor is an immutable dataclass of its source's kind: `SampleCursor` (an index into the
sample), `FileCursor` (files imported, the position inside an unfinished one) or `WalkCursor` (the
paged APIs: the floor of each stream and the unfinished walk down the pages). `CURSOR_TYPES` says
which kind each source keeps. A batch carries the cursor that holds once it has landed.

``_state/cursors.json`` holds ``{"format": CURSORS_FORMAT, "cursors": {"<source>/<hashtag>":
{...}}}``. A file without ``"format"`` was written before cursors were typed (format 1): its keys
are ``"<source>/<hashtag>"`` and each entry has ``newest_id``, ``newest_time``, ``resume`` and
``imported``, with JSON inside some strings; `load_cursors` converts each entry to its kind, and the
next save writes the current format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import PurePath
from typing import Any

CURSORS_FORMAT = 2


class CursorError(ValueError):
    """A saved cursor cannot be read; the message names it and what to do."""


def _time_to_json(time: datetime | None) -> str | None:
    return time.isoformat() if time else None


def _time_from_json(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _summary(*parts: str | None, newest_time: datetime | None) -> str:
    """A cursor in a few words, for the run report."""
    time = f"{newest_time:%Y-%m-%d %H:%M}" if newest_time else None
    return ", ".join(part for part in (*parts, time) if part)


@dataclass(frozen=True)
class SampleCursor:
    """The sample source: the index of the next post to deliver; all before it have landed.

    Attributes:
        next_index: the first post index not yet delivered.
        newest_time: the newest ``created_at`` that has landed.
    """

    next_index: int = 0
    newest_time: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"next_index": self.next_index, "newest_time": _time_to_json(self.newest_time)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SampleCursor:
        return cls(int(data["next_index"]), _time_from_json(data.get("newest_time")))

    @classmethod
    def from_format_1(cls, data: Mapping[str, Any]) -> SampleCursor:
        # `resume`: the next index of a run stopped early; else `newest_id`: the last delivered
        resume, newest_id = data.get("resume"), data.get("newest_id")
        where = resume if resume is not None else newest_id
        if where is not None and not (where.isascii() and where.isdigit()):
            raise ValueError(f"expected a post index, got {where!r}")
        next_index = 0 if where is None else int(where) + (0 if resume is not None else 1)
        return cls(next_index, _time_from_json(data.get("newest_time")))

    def __str__(self) -> str:
        return _summary(f"next post {self.next_index}", newest_time=self.newest_time)


@dataclass(frozen=True)
class FilePosition:
    """Where a run stopped inside a file: its last post that landed.

    Attributes:
        file: the file's fingerprint (path, size, modification time).
        line: the line (JSONL, CSV) or row (Parquet) number of that post's record.
        index: the post's index within that record (an X API page holds many).
    """

    file: str
    line: int
    index: int


@dataclass(frozen=True)
class FileCursor:
    """The file source: which files are imported, and where an unfinished one stopped.

    Attributes:
        imported: fingerprints of the files whose posts have all landed.
        position: the last post that landed of a file not finished; None between files.
        newest_time: the newest ``created_at`` that has landed.
    """

    imported: tuple[str, ...] = ()
    position: FilePosition | None = None
    newest_time: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "imported": list(self.imported),
            "position": asdict(self.position) if self.position else None,
            "newest_time": _time_to_json(self.newest_time),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileCursor:
        position = data.get("position")
        return cls(
            tuple(data.get("imported", ())),
            FilePosition(position["file"], int(position["line"]), int(position["index"]))
            if position
            else None,
            _time_from_json(data.get("newest_time")),
        )

    @classmethod
    def from_format_1(cls, data: Mapping[str, Any]) -> FileCursor:
        # `resume` held {"file": fingerprint, "at": [line, index]} as JSON text
        try:
            resume = json.loads(data.get("resume") or "")
            position = FilePosition(resume["file"], int(resume["at"][0]), int(resume["at"][1]))
        except (ValueError, TypeError, KeyError, IndexError):
            position = None  # as the old reader did: the file is read from its start
        newest_time = _time_from_json(data.get("newest_time"))
        return cls(tuple(data.get("imported", ())), position, newest_time)

    def __str__(self) -> str:
        at = None
        if self.position:
            name = PurePath(self.position.file.rsplit(":", 2)[0]).name  # path:size:mtime
            at = f"at line {self.position.line} of {name}"
        return _summary(f"{len(self.imported)} files", at, newest_time=self.newest_time)


@dataclass(frozen=True)
class Walk:
    """A newest-first walk down one stream (one Mastodon instance; the only stream elsewhere).

    Attributes:
        key: which stream ("" when a source has one).
        floor: where the last finished walk started (an id or time): this walk stops there.
        top: this walk's newest marker, seen on its first page; the next walk's floor.
        token: the next page to fetch.
        skip: posts at the start of that page that have landed already (a run stopped by its
            limit in the middle of a page). The first page (token None) may have gained newer
            posts since: skipping then passes over some of those, which are newer than `top`,
            so the next walk collects them, and returns a few that landed already.
    """

    key: str = ""
    floor: str | None = None
    top: str | None = None
    token: str | None = None
    skip: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Walk:
        return cls(data["key"], data["floor"], data["top"], data["token"], int(data.get("skip", 0)))


@dataclass(frozen=True)
class WalkCursor:
    """A source over newest-first pages (`flows.sources.paging.PagedSource`).

    Attributes:
        floors: per stream ("" when a source has one), the newest marker (an id) of its last
            finished walk, where the next walk stops.
        walk: the walk a run left unfinished; the next run goes on with it.
        newest_time: the newest ``created_at`` that has landed; Bluesky keeps here the newest
            ``sortAt`` of its last finished walk, its floor.
    """

    floors: Mapping[str, str] = field(default_factory=dict)
    walk: Walk | None = None
    newest_time: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "floors": dict(self.floors),
            "walk": asdict(self.walk) if self.walk else None,
            "newest_time": _time_to_json(self.newest_time),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WalkCursor:
        walk = data.get("walk")
        return cls(
            {str(key): str(value) for key, value in (data.get("floors") or {}).items()},
            Walk.from_json(walk) if walk else None,
            _time_from_json(data.get("newest_time")),
        )

    @classmethod
    def from_format_1(cls, data: Mapping[str, Any]) -> WalkCursor:
        # `newest_id`: an id, or (several streams) a JSON object {stream: id};
        # `resume`: the unfinished walk as JSON text
        newest_id = data.get("newest_id")
        try:
            floors = json.loads(newest_id or "")
        except ValueError:
            floors = None
        if not isinstance(floors, dict):
            floors = {"": newest_id} if newest_id else {}
        try:
            walk = Walk.from_json(json.loads(data.get("resume") or ""))
        except (ValueError, TypeError, KeyError):
            walk = None  # as the old reader did: walk afresh
        return cls(
            {str(key): str(value) for key, value in floors.items()},
            walk,
            _time_from_json(data.get("newest_time")),
        )

    def __str__(self) -> str:
        floors = [f"{key or 'id'} {floor}" for key, floor in sorted(self.floors.items())]
        resume = None
        if self.walk:
            resume = " ".join(filter(None, ("resume", self.walk.key, self.walk.token or "page 1")))
        return _summary(*floors, resume, newest_time=self.newest_time)


@dataclass(frozen=True)
class JetstreamCursor:
    """Bluesky's Jetstream: the ``time_us`` of the last event whose posts have landed.

    Attributes:
        time_us: microseconds since the epoch, the Jetstream instance's own clock; a reconnect
            asks for a few seconds before it, and the lake drops the replayed posts.
        newest_time: the newest ``created_at`` that has landed.
    """

    time_us: int | None = None
    newest_time: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"time_us": self.time_us, "newest_time": _time_to_json(self.newest_time)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JetstreamCursor:
        time_us = data.get("time_us")
        return cls(
            None if time_us is None else int(time_us), _time_from_json(data.get("newest_time"))
        )

    def __str__(self) -> str:
        at = None
        if self.time_us is not None:
            when = datetime.fromtimestamp(self.time_us / 1e6, timezone.utc)
            at = f"event {when:%Y-%m-%d %H:%M:%S}"
        return _summary(at, newest_time=self.newest_time)


SourceCursor = SampleCursor | FileCursor | WalkCursor | JetstreamCursor

# The kind of cursor each source keeps.
CURSOR_TYPES: dict[str, type[SourceCursor]] = {
    "sample": SampleCursor,
    "file": FileCursor,
    "x": WalkCursor,
    "snscrape": WalkCursor,
    "mastodon": WalkCursor,
    "reddit": WalkCursor,
    "bluesky": WalkCursor,
    # the streaming sources (`python -m flows stream`)
    "jetstream": JetstreamCursor,
    "mastodon-stream": WalkCursor,  # per instance, the last status id seen: a reconnect reads the gap
}


def new_cursor(source: str) -> SourceCursor:
    """The cursor of `source` before its first run."""
    return CURSOR_TYPES[source]()


def load_cursors(data: Mapping[str, Any]) -> dict[str, SourceCursor]:
    """The cursors of a ``cursors.json`` of either format, by ``"<source>/<hashtag>"``.

    Raises:
        CursorError: the file is from a newer version, or an entry does not fit its source.
    """
    version = data.get("format", 1)
    if not isinstance(version, int) or version > CURSORS_FORMAT:
        raise CursorError(
            f"_state/cursors.json has format {version!r}; this version reads formats 1 to "
            f"{CURSORS_FORMAT}: collect with the version that wrote it, or a newer one."
        )
    entries = data.get("cursors", {}) if version > 1 else data
    cursors: dict[str, SourceCursor] = {}
    for key, entry in entries.items():
        kind = CURSOR_TYPES.get(key.split("/", 1)[0])
        try:
            if kind is None:
                raise ValueError("no source of that name")
            cursors[key] = kind.from_json(entry) if version > 1 else kind.from_format_1(entry)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CursorError(
                f"_state/cursors.json: the cursor {key!r} cannot be read ({exc}). Remove that "
                "entry to collect this source and hashtag from the start."
            ) from None
    return cursors


def dump_cursors(cursors: Mapping[str, SourceCursor]) -> dict[str, Any]:
    """What ``cursors.json`` holds: the format and each cursor by ``"<source>/<hashtag>"``."""
    return {
        "format": CURSORS_FORMAT,
        "cursors": {key: cursor.to_json() for key, cursor in sorted(cursors.items())},
    }
