"""What the fault tests share: real `python -m flows` processes, killed for real, and the counts
that say whether anything was lost or stored twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from flows.lake.lake import Lake

ROOT = Path(__file__).parents[2]
DRIVER = Path(__file__).with_name("analyze_driver.py")


def write_config(folder: Path, **sections: dict[str, object]) -> Path:
    """``folder/pulse.conf`` with a lake and a DuckDB warehouse in `folder`, plus `sections`."""
    pipeline = {
        "lake": folder / "lake",
        "warehouse": f"duckdb:///{folder / 'warehouse.duckdb'}",
        **sections.pop("pipeline", {}),
    }
    lines = []
    for name, values in {"pipeline": pipeline, **sections}.items():
        lines += [f"[{name}]", *(f"{key} = {value}" for key, value in values.items()), ""]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pulse.conf"
    path.write_text("\n".join(lines))
    return path


def env(**more: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **more}


def pulse(*args: str, cwd: Path, timeout: float = 120, **more: str) -> subprocess.CompletedProcess:
    """`python -m flows <args>` to the end."""
    return subprocess.run(
        [sys.executable, "-m", "flows", *args],
        cwd=cwd, env=env(**more), capture_output=True, text=True, timeout=timeout,
    )


def start(command: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """A process whose output goes to `log` (read it while it runs)."""
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=cwd, env=env(), stdout=out, stderr=subprocess.STDOUT)


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, log: Path) -> None:
    """Until `condition()`; fails if the process ends first or nothing happens for a minute."""
    deadline = time.monotonic() + 60
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode} first:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after 60 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def kill(process: subprocess.Popen) -> None:
    """SIGKILL: no handler, no `finally`, no flush runs."""
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


def lake_ids(folder: Path) -> list[str]:
    """Every post id of every file the manifest lists, repeats included."""
    lake = Lake(str(folder))
    return [pid for path in lake.manifest() for pid in lake.read_posts(path)["post_id"].to_pylist()]


def warehouse_ids(path: Path) -> tuple[list[str], list[str]]:
    """The post ids of ``posts`` and of ``post_nlp`` rows, repeats included."""
    with duckdb.connect(str(path), read_only=True) as con:
        posts = [row[0] for row in con.execute("SELECT post_id FROM posts").fetchall()]
        nlp = [row[0] for row in con.execute("SELECT post_id FROM post_nlp").fetchall()]
    return posts, nlp


def parquet_on_disk(folder: Path) -> list[Path]:
    return sorted((folder / "posts").rglob("*.parquet"))


def quick_http(monkeypatch) -> None:
    """Every HTTP client built from now on: 0.5 s timeouts, two tries, pauses recorded, not slept
    (`fake_apis.FakeTime`)."""
    from fake_apis import FakeTime

    from flows.sources.http import HttpClient

    init = HttpClient.__init__

    def quick(self, source: str, **options) -> None:
        init(self, source, **{**options, "timeout": 0.5, "attempts": 2, **FakeTime().options()})

    monkeypatch.setattr(HttpClient, "__init__", quick)
