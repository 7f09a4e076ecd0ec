"""Locks in the lake's ``_state/`` folder, so that two runs never write the same thing at once.

The lock lives beside the data it protects, not in Prefect: a CLI run, a `flow.serve` run and a
worker's run on another machine all see it, and it needs no server. Two kinds, one interface:

- a local folder: ``fcntl.flock`` on ``_state/<name>.lock``. The kernel releases it when the
  holder dies, so a crashed run never leaves a stale lock behind.
- an object store (``gs://``): a small JSON object written with a create-only precondition
  (``pipe_file(mode="create")``: GCS ``ifGenerationMatch=0``) that names its owner and expiry.
  The holder renews the expiry from a background thread every third of ``ttl``, so a run may last
  any time; a lock past its expiry was left by a run that died, and the next run deletes it and
  takes its place, minutes later rather than hours.

Example:
    >>> with lake_lock(fs, "/lake/_state/analyze.lock", purpose="analyze"):  # doctest: +SKIP
    ...     ...  # only one holder at a time, across processes and machines
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

log = logging.getLogger(__name__)

DEFAULT_WAIT_S = 600.0  # a scheduled run waits for the one before it, up to one schedule slot
# Object-store locks only: how long a lock outlives its holder's last renewal. Shorter than a
# waiter's DEFAULT_WAIT_S, so that the next scheduled run takes over from a run that died.
DEFAULT_TTL_S = 300.0


class LakeBusy(RuntimeError):
    """The lock stayed held by another run for longer than we were willing to wait."""


def _owner(purpose: str) -> dict[str, Any]:
    return {
        "owner": f"{socket.gethostname()}:{os.getpid()}",
        "purpose": purpose,
        "token": uuid.uuid4().hex,
    }


@contextmanager
def lake_lock(
    fs: AbstractFileSystem,
    path: str,
    *,
    purpose: str,
    wait: float = DEFAULT_WAIT_S,
    ttl: float = DEFAULT_TTL_S,
    poll: float = 0.2,
) -> Iterator[None]:
    """Hold the lock at `path` for the body of the `with` block.

    Args:
        fs: the lake's filesystem.
        path: the lock file, under the lake's ``_state/``.
        purpose: what the holder does, shown to whoever waits.
        wait: seconds to wait for a holder to finish before raising `LakeBusy`.
        ttl: on object stores, seconds after the holder's last renewal (every ``ttl / 3``) at
            which a lock counts as abandoned.
        poll: seconds between attempts while waiting.
    """
    lock = _FileLock(path) if isinstance(fs, LocalFileSystem) else _ObjectLock(fs, path, ttl)
    me = _owner(purpose)
    deadline = time.monotonic() + wait
    announced = False
    while not lock.try_acquire(me):
        holder = lock.holder()
        if time.monotonic() >= deadline:
            raise LakeBusy(f"{path} is held by {holder or 'another run'}; waited {wait:g} s")
        if not announced:  # a warning: a person at a terminal sees why nothing happens
            who = holder or "another run"
            log.warning("waiting for %s, held by %s (up to %g s)", path, who, wait)
            announced = True
        time.sleep(poll)
    try:
        yield
    finally:
        lock.release(me)


class _FileLock:
    """``flock`` on a local file; the file stays (removing it would race with the next holder)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self, me: dict[str, Any]) -> bool:
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)  # who holds it, for a person (and `holder`) to read
        os.write(fd, json.dumps({**me, "since": datetime.now(timezone.utc).isoformat()}).encode())
        self._fd = fd
        return True

    def holder(self) -> dict[str, Any] | None:
        try:
            with open(self.path, "rb") as handle:
                return json.loads(handle.read() or b"null")
        except (OSError, ValueError):
            return None

    def release(self, me: dict[str, Any]) -> None:
        import fcntl

        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


class _ObjectLock:
    """A create-only object naming its owner and expiry, renewed while held."""

    def __init__(self, fs: AbstractFileSystem, path: str, ttl: float) -> None:
        self.fs, self.path, self.ttl = fs, path, ttl
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def try_acquire(self, me: dict[str, Any]) -> bool:
        now = datetime.now(timezone.utc)
        try:
            self.fs.pipe_file(self.path, self._body(me, now.isoformat()), mode="create")
        except FileExistsError:
            holder = self.holder()
            if holder and datetime.fromisoformat(holder["expires"]) < now:
                log.warning("breaking the abandoned lock %s of %s", self.path, holder["owner"])
                self.fs.rm_file(self.path)
            return False
        self._renewer = threading.Thread(
            target=self._renew, args=(me,), name=f"renew {self.path}", daemon=True
        )
        self._renewer.start()
        return True

    def _body(self, me: dict[str, Any], since: str) -> bytes:
        expires = datetime.now(timezone.utc) + timedelta(seconds=self.ttl)
        return json.dumps({**me, "since": since, "expires": expires.isoformat()}).encode()

    def _renew(self, me: dict[str, Any]) -> None:
        """Push the expiry forward every third of ``ttl`` while the lock is ours.

        Object stores offer no compare-and-swap on content here, so this reads, checks the token and
        overwrites: another run can only have taken the lock if ours expired, that is if renewals
        failed for two thirds of ``ttl``, and a failed renewal is retried at the next beat.
        """
        while not self._stop.wait(self.ttl / 3):
            try:
                holder = self.holder()
                if not holder or holder.get("token") != me["token"]:
                    log.error("lock %s was taken over while held by %s", self.path, me["owner"])
                    return
                self.fs.pipe_file(self.path, self._body(me, holder["since"]))
            except Exception as error:  # noqa: BLE001 - the next beat tries again
                log.warning("could not renew the lock %s: %s", self.path, error)

    def holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.fs.cat_file(self.path))
        except (FileNotFoundError, ValueError):
            return None

    def release(self, me: dict[str, Any]) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        holder = self.holder()
        if holder and holder.get("token") == me["token"]:
            self.fs.rm_file(self.path)
        else:  # expired while we worked and taken by another run: theirs now, leave it
            log.warning("lock %s was taken over while held by %s", self.path, me["owner"])
