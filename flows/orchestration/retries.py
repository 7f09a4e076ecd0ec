"""The retry policy that every task of the flows shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NONE

P = ParamSpec("P")
R = TypeVar("R")


def retried_task(task_run_name: str | None = None) -> Callable[[Callable[P, R]], Task[P, R]]:
    """Prefect's `task`, tried again after 5 s, 30 s and 2 min: our tasks are coarse I/O (a
    source's API, the lake, the warehouse) that such a wait often mends. No result cache: every
    try does the work again, and each task's stage makes that safe by going on from what the
    failed try saved.

    Args:
        task_run_name: the name of each run in the Prefect UI, as Prefect's `task` takes it.

    Example:
        >>> @retried_task(task_run_name="collect-{name}")
        ... def collect_source_task(config, name, run_id): ...
    """
    return task(
        retries=3, retry_delay_seconds=[5, 30, 120], cache_policy=NONE, task_run_name=task_run_name
    )
