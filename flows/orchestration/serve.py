"""`python -m flows serve`: the deployments of `prefect.yaml`, served by one process, no work pool.

`prefect.yaml` stays the one place that says which flows are deployed, with which parameters and
schedules: this module reads the same file (its YAML anchors resolved, ``{{ $VAR }}`` placeholders
filled from the environment as `prefect deploy` fills them) and hands it to Prefect's `serve`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from prefect import serve as prefect_serve
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.client.schemas.schedules import construct_schedule
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.templating import apply_values

_SCHEDULE_KEYS = ("interval", "anchor_date", "cron", "rrule", "timezone")


def _schedule(entry: dict[str, Any]) -> DeploymentScheduleCreate:
    """One `schedules:` entry of prefect.yaml, read as `prefect deploy` reads it."""
    schedule = construct_schedule(**{key: entry[key] for key in _SCHEDULE_KEYS if key in entry})
    return DeploymentScheduleCreate(schedule=schedule, active=entry.get("active", True))


def load_deployments(prefect_file: Path, config_path: str | None = None) -> list[RunnerDeployment]:
    """The deployments of `prefect_file` as runner deployments, ready for `prefect.serve`.

    Args:
        prefect_file: a `prefect.yaml`; entrypoints are relative to the current directory.
        config_path: when given, replaces every deployment's ``config_path`` parameter.
    """
    spec = _read(prefect_file)
    deployments = []
    for entry in spec["deployments"]:
        parameters = dict(entry.get("parameters") or {})
        if config_path is not None:
            parameters["config_path"] = config_path
        flow = load_flow_from_entrypoint(entry["entrypoint"])
        deployments.append(
            flow.to_deployment(
                name=entry["name"],
                description=entry.get("description"),
                parameters=parameters,
                schedules=[_schedule(schedule) for schedule in entry.get("schedules") or []],
                concurrency_limit=_concurrency(entry.get("concurrency_limit")),
                tags=entry.get("tags"),
            )
        )
    return deployments


def job_environment(prefect_file: Path) -> dict[str, str]:
    """The ``env`` that prefect.yaml gives the worker's flow runs: `serve` gives it to its own.

    Raises:
        ValueError: a value is still a placeholder (an unset ``{{ $VAR }}``, or a block reference,
            which only `prefect deploy` resolves, into the deployment in plain text).
    """
    env: dict[str, str] = {}
    for entry in _read(prefect_file)["deployments"]:
        env.update((entry.get("work_pool") or {}).get("job_variables", {}).get("env") or {})
    for key, value in env.items():
        if "{{" in str(value):
            raise ValueError(
                f"{prefect_file}: the work pool's env {key} = {value!r} is a placeholder that "
                f"serve cannot fill: export {key} before `python -m flows serve` instead (a "
                "secret never belongs in prefect.yaml: docs/prefect.md)"
            )
    return env


def _read(prefect_file: Path) -> dict[str, Any]:
    """prefect.yaml, its ``{{ $VAR }}`` placeholders filled from the environment."""
    spec = yaml.safe_load(prefect_file.read_text())
    return apply_values(spec, dict(os.environ), remove_notset=False)


def _concurrency(entry: dict[str, Any] | None) -> ConcurrencyLimitConfig | None:
    """A deployment's `concurrency_limit:` of prefect.yaml, read as `prefect deploy` reads it."""
    if isinstance(entry, dict):
        return ConcurrencyLimitConfig(**entry)
    return entry


def serve(prefect_file: Path, config_path: str | None = None) -> None:
    """Register the deployments and run their scheduled and requested runs until interrupted."""
    for key, value in job_environment(prefect_file).items():
        os.environ.setdefault(key, str(value))  # read by the flow-run processes serve starts
    prefect_serve(*load_deployments(prefect_file, config_path))
