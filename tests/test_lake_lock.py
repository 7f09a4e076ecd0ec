"""Locks in the lake's `_state/`: two runs at once never corrupt the lake or load twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import fsspec
import pyarrow.parquet as pq
import pytest

from flows.lake.lake import Lake
from flows.lake.lock import LakeBusy, lake_lock

ROOT = Path(__file__).parent.parent


def test_a_local_lock_has_one_holder_and_names_it_to_the_next(tmp_path):
    lake = Lake(str(tmp_path))
    with lake.lock("analyze"):
        with pytest.raises(LakeBusy, match=rf"analyze\.lock is held by .*{os.getpid()}"):
            with lake.lock("analyze", wait=0.3):
                pass
        with lake.lock("collect-x", wait=0):  # another name is another lock
            pass
    with lake.lock("analyze", wait=0):  # released on exit
        pass


def test_a_local_lock_waits_for_its_holder(tmp_path):
    lake = Lake(str(tmp_path))
    order = []

    def hold() -> None:
        with lake.lock("analyze"):
            order.append("first in")
            time.sleep(0.5)
            order.append("first out")

    thread = threading.Thread(target=hold)
    thread.start()
    while not order:
        time.sleep(0.01)
    with lake.lock("analyze", wait=10):
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]


def test_concurrent_state_updates_lose_nothing(tmp_path):
    lake = Lake(str(tmp_path))

    def record(worker: int) -> None:
        for i in range(15):
            entry = {"rows": 1, "run_id": f"w{worker}", "written_at": f"{i:03d}", "loaded_into": []}
            lake._record_files({f"posts/w{worker}-{i}.parquet": entry})

    threads = [threading.Thread(target=record, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(lake.manifest()) == 6 * 15


def test_an_object_store_lock_is_create_only(tmp_path):
    fs = fsspec.filesystem("memory")
    path = f"/lock-test-{tmp_path.name}/_state/analyze.lock"
    with lake_lock(fs, path, purpose="analyze", ttl=60):
        holder = json.loads(fs.cat_file(path))
        assert holder["purpose"] == "analyze" and holder["expires"] > holder["since"]
        with pytest.raises(LakeBusy, match="held by"):
            with lake_lock(fs, path, purpose="analyze", wait=0.3):
                pass
    assert not fs.exists(path)  # released


def test_an_object_store_lock_is_renewed_while_held(tmp_path):
    fs = fsspec.filesystem("memory")
    path = f"/lock-test-{tmp_path.name}/_state/analyze.lock"
    with lake_lock(fs, path, purpose="long run", ttl=0.3):
        first = json.loads(fs.cat_file(path))
        # the holder outlives its ttl several times over, and nobody may break its lock
        with pytest.raises(LakeBusy, match="long run"):
            with lake_lock(fs, path, purpose="next", wait=1.2):
                pass
        renewed = json.loads(fs.cat_file(path))
        assert renewed["token"] == first["token"] and renewed["since"] == first["since"]
        assert renewed["expires"] > first["expires"]
    assert not fs.exists(path)
    assert not [t for t in threading.enumerate() if t.name.startswith("renew ")]  # it stopped


def test_an_abandoned_object_store_lock_is_taken_over(tmp_path):
    fs = fsspec.filesystem("memory")
    path = f"/lock-test-{tmp_path.name}/_state/analyze.lock"
    # what a run that died leaves behind: its object, renewed no more, past its expiry
    dead = {"owner": "vm:1", "purpose": "analyze", "token": "dead", "since": "2026-11-01T00:00:00"}
    fs.pipe_file(path, json.dumps({**dead, "expires": "2026-11-01T00:05:00+00:00"}).encode())
    with lake_lock(fs, path, purpose="next", wait=5):
        assert json.loads(fs.cat_file(path))["purpose"] == "next"
    assert not fs.exists(path)


def test_a_holder_does_not_delete_a_lock_taken_over_from_it(tmp_path, caplog):
    fs = fsspec.filesystem("memory")
    path = f"/lock-test-{tmp_path.name}/_state/analyze.lock"
    with lake_lock(fs, path, purpose="stalled", ttl=0.3):
        # its renewals failed past its expiry, and another run took the lock
        other = {"owner": "vm:2", "purpose": "other", "token": "other", "since": "", "expires": ""}
        fs.pipe_file(path, json.dumps(other).encode())
        time.sleep(0.25)  # a renewal beat: it finds the lock is not its own and stops renewing
        assert json.loads(fs.cat_file(path))["token"] == "other"
    assert json.loads(fs.cat_file(path))["token"] == "other"  # left to its new holder
    assert "taken over while held by" in caplog.text


# ------------------------------------------------------------------ two real processes at once
def two_at_once(command: str, config: Path, lake: Lake, lock: str) -> list[tuple[str, str]]:
    """Run `python -m flows <command>` twice at once; returns each one's (stdout, stderr).

    The test holds the lock until both processes are waiting for it, so that they do run at
    the same time whatever the machine's speed; then they race for it.
    """
    args = [sys.executable, "-m", "flows", command, "--config", str(config), "-v"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    logs = [
        (config.parent / f"{command}-{i}.out", config.parent / f"{command}-{i}.err") for i in (1, 2)
    ]
    processes = []
    with lake.lock(lock):
        for out, err in logs:
            with out.open("w") as stdout, err.open("w") as stderr:
                processes.append(
                    subprocess.Popen(args, cwd=config.parent, env=env, stdout=stdout, stderr=stderr)
                )
        deadline = time.monotonic() + 120
        while not all("waiting for" in err.read_text() for _, err in logs):
            assert all(p.poll() is None for p in processes), [
                err.read_text()[-2000:] for _, err in logs
            ]
            assert time.monotonic() < deadline, "the runs never reached the lock"
            time.sleep(0.1)
    for process, (_, err) in zip(processes, logs, strict=True):
        assert process.wait(timeout=300) == 0, err.read_text()[-3000:]
    return [(out.read_text(), err.read_text()) for out, err in logs]


def test_two_collections_at_once_write_each_post_once(tmp_path):
    config = tmp_path / "c.conf"
    config.write_text(
        f"[pipeline]\nlake = {tmp_path / 'lake'}\n[sample]\nposts = 3000\nbatch_size = 500\n"
    )
    lake = Lake(str(tmp_path / "lake"))
    runs = two_at_once("collect", config, lake, "collect-sample")

    ids = (
        pq.read_table(tmp_path / "lake" / "posts", partitioning=None).column("post_id").to_pylist()
    )
    assert len(ids) == len(set(ids)) > 2_500
    # one run collected everything; the other started from its cursor and found nothing new
    assert sorted(out.count("| sample | 0 | 0 |") for out, _ in runs) == [0, 1]
    manifest = lake.manifest()
    on_disk = {
        str(p.relative_to(tmp_path / "lake"))
        for p in (tmp_path / "lake" / "posts").rglob("*.parquet")
    }
    assert set(manifest) == on_disk
    assert sum(entry["rows"] for entry in manifest.values()) == len(ids)


def test_two_analyses_at_once_load_each_post_once(tmp_path):
    config = tmp_path / "c.conf"
    warehouse = tmp_path / "wh.duckdb"
    config.write_text(
        f"[pipeline]\nlake = {tmp_path / 'lake'}\nwarehouse = duckdb:///{warehouse}\n"
        "[sample]\nposts = 200\nbatch_size = 100\n"
    )
    collected = subprocess.run(
        [sys.executable, "-m", "flows", "collect", "--config", str(config)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert collected.returncode == 0, collected.stderr
    lake = Lake(str(tmp_path / "lake"))
    runs = [out for out, _ in two_at_once("analyze", config, lake, "analyze")]

    lake_posts = lake.count_posts()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows, distinct = con.execute(
            "SELECT count(*), count(DISTINCT post_id) FROM posts"
        ).fetchone()
        results = con.execute(
            "SELECT count(*), count(DISTINCT (post_id, model_id)) FROM post_nlp"
        ).fetchone()
    assert rows == distinct == lake_posts
    assert results == (lake_posts, lake_posts)
    # one run analysed everything; the other waited, then found nothing pending
    analysed = sorted(run.count(f"| posts analysed | {lake_posts:,} |") for run in runs)
    assert analysed == [0, 1] and sum("| posts analysed | 0 |" in run for run in runs) == 1
