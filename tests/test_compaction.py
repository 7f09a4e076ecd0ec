"""Compaction: a partition's small files become one, and the lake reads the same posts."""

from __future__ import annotations

from datetime import timedelta

import pyarrow.compute as pc
import pytest

from conftest import T0, EchoBackend
from flows.config import Config, PipelineConfig
from flows.lake import compaction
from flows.lake.compaction import RETIRE_AFTER, SMALL_FILES, compact
from flows.lake.lake import Lake
from flows.lake.runs import CollectionRun, RunLog
from flows.stages.analyze import analyze

NOW = T0 + timedelta(hours=1)  # T0's day is open (today), the day before is open, older closed


def _write_runs(lake: Lake, posts, batches: int, day: int = 0, start: int = 0) -> list[int]:
    ids = []
    for n in range(batches):
        batch = list(range(start + 3 * n, start + 3 * n + 3))
        with lake.writer(f"run-{day}-{n}") as writer:
            assert writer.write(posts(batch, day=day)).new == 3
        ids += batch
    return ids


def _ids(lake: Lake) -> list[str]:
    return sorted(
        post_id
        for path in lake.manifest()
        for post_id in lake.read_posts(path, ["post_id"]).column(0).to_pylist()
    )


def test_an_open_partition_is_compacted_from_small_files_and_keeps_its_posts(tmp_path, posts):
    lake = Lake(str(tmp_path))
    ids = _write_runs(lake, posts, SMALL_FILES - 1)
    assert compact(lake, NOW) == 0  # an open day with few files: left as it is
    _write_runs(lake, posts, 1, start=100)
    before = _ids(lake)
    lake.mark_loaded(sorted(lake.manifest())[:-1], "m -> w")  # all but one file loaded

    assert compact(lake, NOW) == SMALL_FILES - 1
    (path, entry), = lake.manifest().items()
    assert _ids(lake) == before and len(before) == len(ids) + 3
    assert entry["rows"] == len(before) and entry["loaded_into"] == []  # one member was not
    with lake.writer("again") as writer:  # de-duplication sees the compacted file
        assert writer.write(posts(ids, day=0)).new == 0


def test_closed_days_are_compacted_and_loaded_where_every_member_was(tmp_path, posts):
    lake = Lake(str(tmp_path))
    _write_runs(lake, posts, 2, day=-2)  # closed
    _write_runs(lake, posts, 2, day=-1, start=50)  # yesterday: open
    lake.mark_loaded(list(lake.manifest()), "m -> w")
    assert compact(lake, NOW) == 1
    dates = sorted(path.split("/")[2] for path in lake.manifest())
    assert dates == ["date=2026-10-30", "date=2026-10-31", "date=2026-10-31"]
    assert lake.pending_files("m -> w") == []  # nothing to load again


def test_members_stay_readable_for_a_while_then_are_deleted(tmp_path, posts):
    lake = Lake(str(tmp_path))
    _write_runs(lake, posts, 2, day=-3)
    members = list(lake.manifest())
    compact(lake, NOW)
    assert all((tmp_path / path).exists() for path in members)  # a run that listed them reads them
    compact(lake, NOW + RETIRE_AFTER)
    assert not any((tmp_path / path).exists() for path in members)
    assert lake._read_json("manifest.json")["retired"] == {}


def test_a_retried_run_never_reuses_the_name_of_a_compacted_file(tmp_path, posts):
    lake = Lake(str(tmp_path))
    _write_runs(lake, posts, 2, day=-3)
    compact(lake, NOW)
    with lake.writer("run--3-0") as writer:  # the first run's retry, after the compaction
        path, = writer.write(posts([500], day=-3)).files
    assert path.endswith("/run--3-0-00001.parquet")
    compact(lake, NOW + RETIRE_AFTER)  # deletes the retired run--3-0-00000.parquet only
    assert "x:500" in _ids(lake)


@pytest.mark.parametrize("stop", ["write", "swap"])
def test_a_compaction_stopped_part_way_changes_nothing(tmp_path, posts, monkeypatch, stop):
    lake = Lake(str(tmp_path))
    _write_runs(lake, posts, 3, day=-3)
    before, files = _ids(lake), sorted(lake.manifest())

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    if stop == "write":
        monkeypatch.setattr(lake, "_atomic_write", fail)
    else:
        monkeypatch.setattr(compaction, "_swap", fail)
    with pytest.raises(KeyboardInterrupt):
        compact(lake, NOW)
    assert sorted(lake.manifest()) == files and _ids(lake) == before
    monkeypatch.undo()
    assert compact(lake, NOW) == 2 and _ids(lake) == before  # the next one finishes it


def test_a_member_gone_meanwhile_leaves_the_partition_as_it_is(tmp_path, posts, monkeypatch):
    lake = Lake(str(tmp_path))
    _write_runs(lake, posts, 3, day=-3)
    gone = sorted(lake.manifest())[0]
    read = lake.read_posts

    def read_then_quarantine_one(path, columns=None):
        table = read(path, columns)
        if path == gone:  # another process moves it aside after we read it
            lake._update_json("manifest.json", lambda data: data["files"].pop(gone))
        return table

    monkeypatch.setattr(lake, "read_posts", read_then_quarantine_one)
    assert compact(lake, NOW) == 0
    assert len(lake.manifest()) == 2
    partition = tmp_path / gone.rsplit("/", 1)[0]
    assert not list(partition.glob("compacted-*"))  # the merged file was deleted


def test_run_records_of_closed_days_are_merged_and_their_cost_kept(tmp_path):
    lake = Lake(str(tmp_path))
    runs = RunLog(lake)
    for n, day in enumerate((-3, -3, -3, 0, 0)):
        started = T0 + timedelta(days=day, minutes=n)
        runs.record(CollectionRun(f"r{n}", "x", "tag", started, started, cost_usd=0.25))
    runs.mark_loaded(runs.pending("w"), "w")
    assert compact(lake, NOW) == 2
    assert len(runs.entries()) == 3
    assert runs.spent_this_month("x", T0 - timedelta(days=3)) == 0.75  # October
    assert runs.spent_this_month("x", T0) == 0.5  # November
    assert runs.pending("w") == {}
    merged = runs.read(runs.pending("w", everything=True))
    assert sorted(merged.column("run_id").to_pylist()) == ["r0", "r1", "r2", "r3", "r4"]
    assert runs.find("r3", "x").cost_usd == 0.25  # today's records are kept as they are


def test_analyze_compacts_what_it_loaded_and_loads_it_once(tmp_path, posts):
    lake = Lake(str(tmp_path / "lake"))
    _write_runs(lake, posts, 3, day=-30)
    config = Config(
        pipeline=PipelineConfig(lake=lake.url, warehouse=f"duckdb:///{tmp_path}/w.duckdb")
    )
    first = analyze(config, backend=EchoBackend())
    assert (first.files, first.files_compacted, first.posts_loaded) == (3, 2, 9)
    second = analyze(config, backend=EchoBackend())
    assert (second.files, second.posts_loaded) == (0, 0)
    assert second.totals["posts"] == 9
    table = lake.read_posts(next(iter(lake.manifest())))
    assert pc.count_distinct(table.column("post_id")).as_py() == 9
