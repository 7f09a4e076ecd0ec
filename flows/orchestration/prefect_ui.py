"""What a person sees of a run in the Prefect UI besides its state: our log lines and progress."""

from __future__ import annotations

import logging
import time
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.logging.configuration import ensure_logging_setup
from prefect.settings import PREFECT_LOGGING_EXTRA_LOGGERS


def show_logs_in_ui() -> None:
    """Let the INFO lines of the loggers in ``PREFECT_LOGGING_EXTRA_LOGGERS`` reach the UI.

    Prefect attaches its API handler to those loggers but leaves their level unset, so they
    inherit the root logger's WARNING and every INFO line is dropped before any handler sees it.
    They get the level of Prefect's own ``prefect.extra`` logger (``PREFECT_LOGGING_LEVEL``),
    unless something set theirs already.
    """
    ensure_logging_setup()  # a no-op in a flow run, where Prefect has set logging up already
    level = logging.getLogger("prefect.extra").level
    for name in PREFECT_LOGGING_EXTRA_LOGGERS.value():
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)


class ProgressArtifact:
    """An ``on_progress(done, total)`` callback that keeps a Prefect progress artifact current.

    The artifact is created at the first call; later calls update it at most every
    `min_interval` seconds (the API is not flooded by fast work) and always at the end.

    Example:
        >>> progress = ProgressArtifact("gcs-to-bq-progress", "posts analysed")
        >>> analyze(config, on_progress=progress)  # doctest: +SKIP
    """

    def __init__(self, key: str, what: str, min_interval: float = 2.0) -> None:
        self.key, self.what, self.min_interval = key, what, min_interval
        self._id: UUID | None = None
        self._last = 0.0
        self._progress = -1.0

    def __call__(self, done: int, total: int) -> None:
        progress = 100.0 if total == 0 else round(100.0 * done / total, 1)
        now = time.monotonic()
        if progress == self._progress or (progress < 100 and now - self._last < self.min_interval):
            return
        description = f"{done:,} of {total:,} {self.what}"
        if self._id is None:
            self._id = create_progress_artifact(progress, key=self.key, description=description)
        else:
            update_progress_artifact(self._id, progress, description=description)
        self._last, self._progress = now, progress
