from __future__ import annotations

import os
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import make_post
from flows.cursors import FileCursor, FilePosition, SampleCursor, Walk, WalkCursor
from flows.lake.lake import Lake
from flows.schema import POST_SCHEMA, posts_table


def test_write_partitions_by_source_and_created_date(tmp_path, posts):
    lake = Lake(str(tmp_path))
    table = pa.concat_tables([posts(range(3), day=0), posts(range(3, 5), day=2), posts(range(2), source="mastodon")])
    with lake.writer("r1") as writer:
        result = writer.write(table)
    assert (result.received, result.new) == (7, 7)
    assert result.files == [
        "posts/source=mastodon/date=2026-11-01/r1-00000.parquet",
        "posts/source=x/date=2026-11-01/r1-00000.parquet",
        "posts/source=x/date=2026-11-03/r1-00000.parquet",
    ]
    stored = pq.read_table(tmp_path / result.files[1])
    assert stored.schema.equals(POST_SCHEMA, check_metadata=False)
    assert stored.column("post_id").to_pylist() == ["x:0", "x:1", "x:2"]
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]  # atomic: no leftovers


def test_duplicates_within_a_batch_and_against_the_lake_are_dropped(tmp_path, posts):
    lake = Lake(str(tmp_path))
    with lake.writer("r1") as writer:
        first = writer.write(pa.concat_tables([posts(range(5)), posts([1, 2])]))
        again = writer.write(posts(range(3, 8)))  # overlaps the batch before, same run
    assert (first.new, first.duplicates) == (5, 2)
    assert (again.new, again.duplicates) == (3, 2)
    with lake.writer("r2") as writer:  # a new run reads what the lake holds
        third = writer.write(posts(range(10)))
    assert (third.new, third.duplicates) == (2, 8)
    ids = pq.read_table(tmp_path / "posts", partitioning=None).column("post_id").to_pylist()
    assert len(ids) == len(set(ids)) == 10
    assert lake.count_posts() == 10


def test_rerunning_the_same_writes_changes_nothing(tmp_path, posts):
    lake = Lake(str(tmp_path))
    for _ in range(2):
        with lake.writer("same-run") as writer:
            writer.write(posts(range(20), day=1))
    ids = pq.read_table(tmp_path / "posts", partitioning=None).column("post_id").to_pylist()
    assert len(ids) == len(set(ids)) == 20
    assert len(lake.manifest()) == 1


def test_a_retried_run_keeps_the_posts_its_first_try_landed(tmp_path, posts):
    # a Prefect task retry reuses the run id and resumes from the cursor: other posts, maybe in
    # the same partition, which must not overwrite the first try's file
    lake = Lake(str(tmp_path))
    with lake.writer("run-1-x") as first_try:
        first_try.write(posts(range(5), day=1))
    with lake.writer("run-1-x") as retry:
        result = retry.write(posts(range(5, 9), day=1))
    assert result.files == ["posts/source=x/date=2026-11-02/run-1-x-00001.parquet"]
    ids = pq.read_table(tmp_path / "posts", partitioning=None).column("post_id").to_pylist()
    assert sorted(ids) == sorted(f"x:{i}" for i in range(9))
    assert lake.count_posts() == 9


def test_a_file_a_killed_run_never_recorded_does_not_hide_its_posts(tmp_path, posts):
    lake = Lake(str(tmp_path))
    # killed after writing a partition's file, before the manifest listed it
    orphan = tmp_path / "posts/source=x/date=2026-11-02/killed-00000.parquet"
    orphan.parent.mkdir(parents=True)
    pq.write_table(posts(range(6), day=1), orphan)
    with lake.writer("rerun") as writer:  # the next run fetches the same posts again
        result = writer.write(posts(range(6), day=1))
    assert (result.new, result.duplicates) == (6, 0)  # they were never in the lake
    assert lake.count_posts() == 6
    assert lake.pending_files("lite -> duckdb") == result.files  # what analyze loads


def test_first_occurrence_wins_within_a_batch(tmp_path):
    lake = Lake(str(tmp_path))
    table = posts_table([make_post(1, like_count=5), make_post(1, like_count=99)])
    with lake.writer("r") as writer:
        path = writer.write(table).files[0]
    assert lake.read_posts(path).column("like_count").to_pylist() == [5]


def test_cursors_round_trip_per_source_and_hashtag(tmp_path):
    lake = Lake(str(tmp_path))
    assert lake.read_cursor("x", "dataengineering") == WalkCursor()
    assert lake.read_cursor("sample", "dataengineering") == SampleCursor()
    newest = datetime(2026, 11, 2, tzinfo=timezone.utc)
    cursor = WalkCursor({"": "42"}, Walk(top="50", token="tok", skip=3), newest)
    lake.save_cursor("x", "dataengineering", cursor)
    lake.save_cursor("x", "duckdb", WalkCursor({"": "7"}))
    imported = FileCursor(("/a.csv:10:1",), FilePosition("/b.csv:20:2", 5, 1), newest)
    lake.save_cursor("file", "dataengineering", imported)
    again = Lake(str(tmp_path))
    assert again.read_cursor("x", "dataengineering") == cursor
    assert again.read_cursor("file", "dataengineering") == imported
    assert lake.read_cursor("x", "duckdb").floors == {"": "7"}


def test_manifest_tracks_what_each_target_has_loaded(tmp_path, posts):
    lake = Lake(str(tmp_path))
    with lake.writer("r1") as writer:
        files = writer.write(pa.concat_tables([posts(range(3)), posts(range(3, 6), day=1)])).files
    assert lake.pending_files("lite -> duckdb:///a") == files
    lake.mark_loaded(files[:1], "lite -> duckdb:///a")
    assert lake.pending_files("lite -> duckdb:///a") == files[1:]
    assert lake.pending_files("other-model -> duckdb:///a") == files
    assert lake.read_posts(files[1]).num_rows == 3


def test_relative_lake_path_and_url_forms(tmp_path, posts, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lake = Lake("file://" + os.path.join(str(tmp_path), "lake"))
    with lake.writer("r") as writer:
        writer.write(posts([1]))
    assert (tmp_path / "lake" / "posts" / "source=x").is_dir()


def test_a_file_written_before_a_column_was_added_reads_with_it_null(tmp_path, posts):
    # quoted_post came after the first lakes: their files lack it, and must still read whole
    lake = Lake(str(tmp_path))
    with lake.writer("r1") as writer:
        [path] = writer.write(posts(range(3))).files
    pq.write_table(pq.read_table(tmp_path / path).drop_columns(["quoted_post"]), tmp_path / path)
    assert "quoted_post" not in pq.read_schema(tmp_path / path).names
    table = lake.read_posts(path)
    assert table.schema.equals(POST_SCHEMA, check_metadata=False)
    assert table.column("quoted_post").to_pylist() == [None, None, None]
    assert table.column("post_id").to_pylist() == ["x:0", "x:1", "x:2"]


def test_two_writers_filling_one_partition_never_write_a_post_twice(tmp_path):
    # a stream and the polling source of the same network write the same partitions at once
    lake = Lake(str(tmp_path / "lake"))
    posts = posts_table(make_post(i) for i in range(6))
    with lake.writer("stream") as stream, lake.writer("poll") as poll:
        assert poll.write(posts.slice(5, 1)).new == 1  # both writers have read the partition
        assert stream.write(posts.slice(0, 1)).new == 1
        assert stream.write(posts.slice(1, 3)).new == 3
        assert poll.write(posts.slice(0, 2)).new == 0
        assert poll.write(posts.slice(2, 3)).new == 1  # post 4
        assert stream.write(posts).new == 0
    assert lake.count_posts() == 6
