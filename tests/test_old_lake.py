"""A lake written by an earlier version goes on being collected into and analysed, losing nothing.

`tests/data/old_lake` was written by main at 6ae5474 (before the layered package and typed
cursors): `python -m flows collect` twice and `analyze` once, with `[twitter_config] limit = 120`
and `[sample] posts = 400, days = 42, seed = 7, end_date = 2026-11-23`, so it holds 235 posts in
29 files and an unfinished sample walk in the old, untyped `_state/cursors.json`
(``{"newest_id": "239", "resume": "240", ...}``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from flows.config import load_config
from flows.lake.lake import Lake
from flows.stages.analyze import analyze
from flows.stages.collect import collect

OLD_LAKE = Path(__file__).parent / "data" / "old_lake"


def _config(tmp_path: Path, lake: Path, name: str):
    conf = tmp_path / f"{name}.conf"
    conf.write_text(
        "[pipeline]\nsources = sample\n"
        f"lake = {lake}\nwarehouse = duckdb:///{tmp_path / name}.duckdb\n"
        "[sample]\nposts = 400\ndays = 42\nseed = 7\nend_date = 2026-11-23\n"
    )
    return load_config(conf)


def _post_ids(lake: Lake) -> list[str]:
    ids: list[str] = []
    for path in lake.manifest():
        ids += pq.read_table(lake.fs.open(f"{lake.root}/{path}"), columns=["post_id"])[
            "post_id"
        ].to_pylist()
    return ids


def test_an_old_lake_is_collected_into_and_analysed_without_loss(tmp_path):
    lake_dir = tmp_path / "old_lake"
    shutil.copytree(OLD_LAKE, lake_dir)
    old = _config(tmp_path, lake_dir, "old")
    before = set(_post_ids(Lake(str(lake_dir))))
    assert len(before) == 235

    # the old cursor said: resume at index 240; the rest of the sample arrives, nothing twice
    [report] = collect(old)
    assert report.error is None
    lake = Lake(str(lake_dir))
    after = _post_ids(lake)
    assert len(after) == len(set(after))
    assert before <= set(after)

    fresh = _config(tmp_path, tmp_path / "fresh_lake", "fresh")
    collect(fresh)
    assert set(after) == set(_post_ids(Lake(str(tmp_path / "fresh_lake"))))

    # the cursors file is rewritten in the versioned format, and a second run adds nothing
    state = json.loads((lake_dir / "_state" / "cursors.json").read_text())
    assert isinstance(state.get("format"), int)
    [again] = collect(old)
    assert again.new == 0

    report = analyze(old)
    assert report.posts_loaded == len(after)
    with duckdb.connect(str(tmp_path / "old.duckdb"), read_only=True) as con:
        posts, distinct = con.execute("SELECT count(*), count(DISTINCT post_id) FROM posts").fetchone()
        classified = con.execute("SELECT count(DISTINCT post_id) FROM post_nlp").fetchone()[0]
    assert posts == distinct == classified == len(after)
