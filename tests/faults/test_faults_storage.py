"""Storage that fails under the pipeline: unreadable lake files, a full disk, a read-only lake, a
warehouse file another process holds. Each gives a clear error or goes on around the fault, and
leaves the lake and the warehouse as a later run can finish."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from faultkit import DRIVER, env, lake_ids, pulse, warehouse_ids, write_config

from conftest import EchoBackend, make_posts
from flows.config import load_config
from flows.lake.lake import Lake
from flows.stages import analyze as analyze_stage
from flows.warehouse.errors import WarehouseLockedError
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse

SAMPLE = {"posts": 1000, "batch_size": 100}


def five_files(folder: Path) -> Lake:
    lake = Lake(str(folder / "lake"))
    with lake.writer("run-1") as writer:
        for first in range(0, 300, 60):
            writer.write(make_posts(range(first, first + 60)))
    return lake


def ids_of(numbers) -> list[str]:
    return sorted(f"x:{n}" for n in numbers)


def test_unreadable_lake_files_are_moved_aside_and_the_rest_is_analysed(tmp_path, caplog):
    lake = five_files(tmp_path)
    files = sorted(lake.manifest(), key=lambda path: lake.manifest()[path]["written_at"])
    truncated, emptied = tmp_path / "lake" / files[1], tmp_path / "lake" / files[3]
    truncated.write_bytes(truncated.read_bytes()[:300])
    emptied.write_bytes(b"")

    with caplog.at_level(logging.WARNING):
        report = analyze_stage.analyze(load_config(write_config(tmp_path)), backend=EchoBackend())

    kept = ids_of([*range(0, 60), *range(120, 180), *range(240, 300)])
    assert report.files == 3
    assert sorted(lake_ids(tmp_path / "lake")) == kept
    posts, nlp = warehouse_ids(tmp_path / "warehouse.duckdb")
    assert sorted(posts) == sorted(nlp) == kept
    for path in (files[1], files[3]):
        assert not (tmp_path / "lake" / path).exists()
        assert (tmp_path / "lake" / "_quarantine" / path).exists()
        assert path not in lake.manifest()
        assert lake.uri(path) in caplog.text and "_quarantine" in caplog.text
    again = analyze_stage.analyze(load_config(write_config(tmp_path)), backend=EchoBackend())
    assert again.files == 0


def test_a_writer_moves_an_unreadable_file_aside_and_lands_its_posts_again(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    with lake.writer("run-1") as writer:
        writer.write(make_posts(range(0, 50)))
        broken = writer.write(make_posts(range(50, 100))).files[0]
    (tmp_path / "lake" / broken).write_bytes(b"not parquet at all")
    with lake.writer("run-2") as writer:
        result = writer.write(make_posts(range(0, 100)))  # a source sends them all again
    assert result.new == 50  # those of the moved file; the others are duplicates
    assert sorted(lake_ids(tmp_path / "lake")) == ids_of(range(100))


def test_a_listed_file_that_cannot_be_read_is_an_error_and_stays_listed(tmp_path):
    lake = five_files(tmp_path)
    missing = sorted(lake.manifest())[0]
    (tmp_path / "lake" / missing).unlink()  # an I/O failure, not a corrupt file: nothing moved
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        analyze_stage.analyze(load_config(write_config(tmp_path)), backend=EchoBackend())
    assert missing in lake.manifest() and not (tmp_path / "lake" / "_quarantine").exists()


def _can_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


needs_namespaces = pytest.mark.skipif(
    not _can_unshare(), reason="needs unshare -rm (a private tmpfs and a read-only mount)"
)


def in_private_mounts(script: str, cwd: Path) -> None:
    """Run `script` (sh) where its mounts are its own: no root needed, nothing left behind."""
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"set -u\n{script}"],
        cwd=cwd, env=env(PY=sys.executable), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr


def clean_sample_ids(folder: Path) -> list[str]:
    folder.mkdir()
    done = pulse("collect", "--config", str(write_config(folder, sample=SAMPLE)), cwd=folder)
    assert done.returncode == 0, done.stderr
    return sorted(lake_ids(folder / "lake"))


@needs_namespaces
def test_a_full_disk_stops_collection_with_the_path_and_the_next_run_finishes(tmp_path):
    clean = clean_sample_ids(tmp_path / "clean")
    (tmp_path / "lake").mkdir()
    write_config(tmp_path, sample=SAMPLE)
    in_private_mounts(
        """
        mount -t tmpfs -o size=160k tmpfs lake
        $PY -m flows collect --config pulse.conf > first.out 2> first.err; echo $? > first.rc
        cp -a lake full
        mount -o remount,size=64m lake  # space freed
        $PY -m flows collect --config pulse.conf > second.out 2> second.err; echo $? > second.rc
        cp -a lake after
        """,
        tmp_path,
    )
    error = (tmp_path / "first.err").read_text().splitlines()[-1]
    assert (tmp_path / "first.rc").read_text().strip() == "2"
    assert re.fullmatch(rf"collect: \[Errno 28\] No space left on device: '{tmp_path}/lake/.+'",
                        error)

    full = tmp_path / "full"
    assert not list(full.rglob("*.tmp-*"))  # no half-written file takes the space
    landed = lake_ids(full)  # every listed file is whole
    assert 0 < len(landed) == len(set(landed)) < len(clean) and set(landed) <= set(clean)
    cursor = Lake(str(full)).read_cursor("sample", "dataengineering")
    assert 0 < cursor.next_index < SAMPLE["posts"]

    assert (tmp_path / "second.rc").read_text().strip() == "0"
    assert sorted(lake_ids(tmp_path / "after")) == clean


@needs_namespaces
def test_a_full_disk_under_the_warehouse_is_a_warehouse_error_and_the_next_run_finishes(tmp_path):
    config = write_config(tmp_path, sample={**SAMPLE, "posts": 3000})
    assert pulse("collect", "--config", str(config), cwd=tmp_path).returncode == 0
    config = write_config(  # the warehouse alone on the small disk
        tmp_path, pipeline={"warehouse": f"duckdb:///{tmp_path}/disk/w.duckdb"}
    )
    (tmp_path / "disk").mkdir()
    in_private_mounts(
        f"""
        mount -t tmpfs -o size=2m tmpfs disk  # room for the tables, not for every load
        $PY {DRIVER} pulse.conf --group-rows=500 2> first.err; echo $? > first.rc
        cp -a disk full && cp lake/_state/manifest.json full/manifest.json
        mount -o remount,size=64m disk
        $PY {DRIVER} pulse.conf --group-rows=500 2> second.err; echo $? > second.rc
        cp -a disk after
        """,
        tmp_path,
    )
    assert (tmp_path / "first.rc").read_text().strip() == "1"
    error = (tmp_path / "first.err").read_text().splitlines()[-1]
    assert error.startswith(f"flows.warehouse.errors.WarehouseError: {tmp_path}/disk/w.duckdb: ")
    assert error.endswith("No space left on device")

    lake = Lake(str(tmp_path / "lake"))
    posts, nlp = warehouse_ids(tmp_path / "full" / "w.duckdb")
    marked = json.loads((tmp_path / "full" / "manifest.json").read_text())["files"]
    assert 0 < len(posts) < len(lake_ids(tmp_path / "lake"))
    assert any(entry["loaded_into"] for entry in marked.values())  # some groups went in
    for path, entry in marked.items():  # a file marked as loaded is wholly there
        if entry["loaded_into"]:
            assert set(lake.read_posts(path)["post_id"].to_pylist()) <= set(nlp)

    assert (tmp_path / "second.rc").read_text().strip() == "0"
    posts, nlp = warehouse_ids(tmp_path / "after" / "w.duckdb")
    assert sorted(posts) == sorted(nlp) == sorted(lake_ids(tmp_path / "lake"))


def tree(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@needs_namespaces
def test_a_read_only_lake_is_a_clear_error_and_changes_nothing(tmp_path):
    clean = clean_sample_ids(tmp_path / "clean")
    config = write_config(tmp_path, sample={**SAMPLE, "posts": 300})
    assert pulse("collect", "--config", str(config), cwd=tmp_path).returncode == 0
    write_config(tmp_path, sample=SAMPLE)  # more posts to collect than the lake holds
    before = tree(tmp_path / "lake")
    in_private_mounts(
        """
        mount --bind lake lake && mount -o remount,bind,ro lake
        $PY -m flows collect --config pulse.conf 2> collect.err; echo $? > collect.rc
        $PY -m flows analyze --config pulse.conf 2> analyze.err; echo $? > analyze.rc
        """,
        tmp_path,
    )
    for command in ("collect", "analyze"):
        assert (tmp_path / f"{command}.rc").read_text().strip() == "2"
        error = (tmp_path / f"{command}.err").read_text().splitlines()[-1]
        says = rf"{command}: \[Errno 30\] Read-only file system: '{tmp_path}/lake/.+'"
        assert re.fullmatch(says, error)
    assert tree(tmp_path / "lake") == before
    assert not (tmp_path / "warehouse.duckdb").exists()

    done = pulse("collect", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(lake_ids(tmp_path / "lake")) == clean


HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_warehouse(path: Path, seconds: float) -> subprocess.Popen:
    """Another process with the DuckDB file open for writing, for `seconds`."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline() == "held\n"
    return holder


def test_analyze_waits_for_a_warehouse_another_process_holds(tmp_path, caplog):
    five_files(tmp_path)
    config = load_config(write_config(tmp_path))
    DuckDBWarehouse(tmp_path / "warehouse.duckdb").close()
    holder = hold_warehouse(tmp_path / "warehouse.duckdb", 2)
    try:
        with caplog.at_level(logging.INFO):
            report = analyze_stage.analyze(config, backend=EchoBackend())
    finally:
        holder.wait(timeout=30)
    assert "held by another process" in caplog.text
    assert report.files == 5
    posts, nlp = warehouse_ids(tmp_path / "warehouse.duckdb")
    assert sorted(posts) == sorted(nlp) == ids_of(range(300))


def test_a_warehouse_held_too_long_stops_analyze_before_any_work(tmp_path, monkeypatch):
    lake = five_files(tmp_path)
    config = load_config(write_config(tmp_path))
    path = tmp_path / "warehouse.duckdb"
    DuckDBWarehouse(path).close()
    monkeypatch.setattr(
        analyze_stage, "open_config_warehouse", lambda *a: DuckDBWarehouse(path, lock_timeout=1)
    )
    holder = hold_warehouse(path, 60)
    try:
        with pytest.raises(WarehouseLockedError, match=re.escape(str(path))):
            analyze_stage.analyze(config, backend=EchoBackend())
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert all(entry["loaded_into"] == [] for entry in lake.manifest().values())
    report = analyze_stage.analyze(config, backend=EchoBackend())
    assert report.files == 5 and report.analysed == 300
