"""Runs killed with SIGKILL at known points (no handler runs, nothing is flushed): the next run
ends with the posts of a clean run, none lost and none twice.

The points are made certain from outside, with nothing in the pipeline's code: the fake API holds
its N-th request (so N-1 pages have landed), the test holds the lake's state lock (so a written
file waits to be listed), the NLP backend of `analyze_driver.py` stops at its K-th group, and the
test holds the DuckDB file (so a load waits for it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import pytest
from fake_networks import FakeMastodon, mastodon_status
from faultkit import (
    DRIVER,
    kill,
    lake_ids,
    parquet_on_disk,
    pulse,
    start,
    wait_for,
    warehouse_ids,
    write_config,
)

from conftest import make_posts
from flows.lake.lake import Lake

POSTS, PAGE = 100, 10


@pytest.fixture
def mastodon():
    statuses = [mastodon_status(5000 + n, "mastodon.example", n) for n in range(POSTS)]
    with FakeMastodon(statuses) as api:
        yield api


def mastodon_config(folder: Path, api: FakeMastodon) -> Path:
    return write_config(
        folder, pipeline={"sources": "mastodon"}, mastodon={"instances": api.url, "page_size": PAGE}
    )


@pytest.fixture
def clean_ids(tmp_path_factory, mastodon) -> list[str]:
    """The post ids of an uninterrupted collection."""
    folder = tmp_path_factory.mktemp("clean")
    done = pulse("collect", "--config", str(mastodon_config(folder, mastodon)), cwd=folder)
    assert done.returncode == 0, done.stderr
    ids = lake_ids(folder / "lake")
    assert len(ids) == len(set(ids)) == POSTS
    mastodon.requests.clear()
    return sorted(ids)


def collect_process(folder: Path, api: FakeMastodon):
    config = mastodon_config(folder, api)
    log = folder / "collect.log"
    command = [sys.executable, "-m", "flows", "collect", "--config", str(config)]
    return start(command, folder, log), log, config


def test_killed_between_pages_the_next_run_resumes_at_the_page_after(tmp_path, mastodon, clean_ids):
    mastodon.hold(lambda request: len(mastodon.requests) == 4)  # 3 pages have landed by then
    process, log, config = collect_process(tmp_path, mastodon)
    wait_for(lambda: len(mastodon.requests) == 4, process, log)
    before = lake_ids(tmp_path / "lake")
    cursor = Lake(str(tmp_path / "lake")).read_cursor("mastodon", "dataengineering")
    kill(process)
    assert len(before) == len(set(before)) == 3 * PAGE
    assert cursor.walk is not None and cursor.walk.token == mastodon.requests[3].query["max_id"]

    mastodon.release()
    mastodon.requests.clear()
    done = pulse("collect", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(lake_ids(tmp_path / "lake")) == clean_ids
    assert mastodon.requests[0].query["max_id"] == cursor.walk.token  # not from the top again


def test_killed_between_writing_a_file_and_listing_it(tmp_path, mastodon, clean_ids):
    mastodon.hold(lambda request: len(mastodon.requests) == 3)
    process, log, config = collect_process(tmp_path, mastodon)
    lake = Lake(str(tmp_path / "lake"))
    wait_for(lambda: len(mastodon.requests) == 3, process, log)
    with lake.lock("state"):  # the manifest's lock: the third file is written, then waits
        mastodon.release()
        wait_for(lambda: "state.lock" in log.read_text(), process, log)
        assert len(parquet_on_disk(tmp_path / "lake")) == 3
        before = lake_ids(tmp_path / "lake")
        kill(process)
    assert len(before) == len(set(before)) == 2 * PAGE  # the third file is not in the lake

    done = pulse("collect", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(lake_ids(tmp_path / "lake")) == clean_ids


@pytest.fixture
def lake_of_five_files(tmp_path) -> tuple[Path, list[str]]:
    """A lake of 300 posts in 5 files; analysed in groups of 100 rows it makes 3 groups."""
    config = write_config(tmp_path)
    with Lake(str(tmp_path / "lake")).writer("run-1") as writer:
        for first in range(0, 300, 60):
            writer.write(make_posts(range(first, first + 60)))
    return config, sorted(lake_ids(tmp_path / "lake"))


def analyze_process(folder: Path, config: Path, **stop: Path | int):
    options = [f"--{key.replace('_', '-')}={value}" for key, value in stop.items()]
    command = [sys.executable, str(DRIVER), str(config), "--group-rows=100", *options]
    log = folder / "analyze.log"
    return start(command, folder, log), log


def finish_analyze(folder: Path, config: Path) -> dict[str, int]:
    process, log = analyze_process(folder, config)
    assert process.wait(timeout=120) == 0, log.read_text()
    return json.loads(log.read_text().splitlines()[-1])


def test_killed_during_nlp_the_next_run_classifies_only_what_is_left(tmp_path, lake_of_five_files):
    config, ids = lake_of_five_files
    stopped = tmp_path / "stopped"
    process, log = analyze_process(tmp_path, config, stop_at=2, stopped=stopped)
    wait_for(stopped.exists, process, log)  # classifying the second group, its posts loaded
    posts, nlp = warehouse_ids(tmp_path / "warehouse.duckdb")
    kill(process)
    assert (len(posts), len(nlp)) == (240, 120)

    report = finish_analyze(tmp_path, config)
    assert report["classified"] == 300 - 120  # the first group's results were kept
    posts, nlp = warehouse_ids(tmp_path / "warehouse.duckdb")
    assert sorted(posts) == sorted(nlp) == ids


def test_killed_while_loading_into_the_warehouse(tmp_path, lake_of_five_files):
    config, ids = lake_of_five_files
    stopped, go = tmp_path / "stopped", tmp_path / "go"
    process, log = analyze_process(tmp_path, config, stop_at=2, stopped=stopped, go=go)
    wait_for(stopped.exists, process, log)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")):  # the load of results waits for it
        go.touch()
        wait_for(lambda: "held by another process" in log.read_text(), process, log)
        kill(process)
    posts, nlp = warehouse_ids(tmp_path / "warehouse.duckdb")
    assert (len(posts), len(nlp)) == (240, 120)

    report = finish_analyze(tmp_path, config)
    assert report["classified"] == 300 - 120
    posts, nlp = warehouse_ids(tmp_path / "warehouse.duckdb")
    assert sorted(posts) == sorted(nlp) == ids
