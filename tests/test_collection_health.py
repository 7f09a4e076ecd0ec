"""Collection run records in the warehouse: `collection_runs` loaded by analyze, once, the view
`source_health` and the dashboard's health query, checked by hand on DuckDB (the BigQuery tests
compare BigQuery's answers with these)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from conftest import EchoBackend

from dashboard import queries
from flows.config import load_config
from flows.lake.lake import Lake
from flows.lake.runs import CollectionRun, RunLog
from flows.schema import COLLECTION_RUN_SCHEMA
from flows.stages import analyze
from flows.stages.collect import collect
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def run(run_id: str, source: str, start: datetime, minutes: int = 2, **counts) -> CollectionRun:
    return CollectionRun(
        run_id, source, "dataengineering", start, start + timedelta(minutes=minutes), **counts
    )


RUN_LIST = [
    run("r1", "x", at(20, 8), requests=3, posts_new=250, retries=1, rate_limit_wait_s=121.0,
        lag_s=40.0, cost_usd=1.33),
    run("r2", "x", at(20, 20), requests=1, status="failed", reason="x: 401 Unauthorized"),
    # a run that started before midnight counts on the day it started
    run("r3", "x", at(21, 23, 58), minutes=5, requests=4, posts_new=147, status="stopped",
        reason="x: [x] max_cost_per_run = 1.00 USD", cost_usd=0.895, lag_s=30.5),
    run("r1", "mastodon", at(20, 8), requests=9, posts_new=60, posts_duplicate=3, retries=2,
        rate_limit_wait_s=31.0, lag_s=12.0, gaps=[(at(20, 6), at(20, 7))]),
    run("r2", "mastodon", at(20, 20), requests=2, posts_new=5, lag_s=8.0),
    run("r3", "bluesky", at(21, 9), requests=1),  # nothing new: no lag
    # a stream: its events beside its posts
    run("s1", "jetstream", at(21, 10), minutes=55, requests=4, events=120_000, reconnects=2,
        posts_new=40, posts_duplicate=3, lag_s=1.5, gaps=[(at(21, 10, 20), at(21, 10, 21))]),
]
RUNS = pa.Table.from_pylist([r.to_row() for r in RUN_LIST], schema=COLLECTION_RUN_SCHEMA)


@pytest.fixture
def warehouse(tmp_path):
    with DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout=5) as w:
        yield w


def test_runs_load_once_and_a_retry_s_later_record_replaces_the_first(warehouse):
    assert warehouse.load_runs(RUNS) == 7
    assert warehouse.load_runs(RUNS) == 0
    retried = replace(RUN_LIST[1], finished_at=at(20, 21), status="ok", reason=None, requests=5)
    stale = replace(RUN_LIST[1], finished_at=at(20, 19), requests=99)
    assert warehouse.load_runs(pa.Table.from_pylist([retried.to_row(), stale.to_row()])) == 0
    rows = warehouse.query("SELECT * FROM collection_runs").to_pylist()
    assert len(rows) == len({(r["run_id"], r["source"]) for r in rows}) == 7
    by_key = {(r["run_id"], r["source"]): r for r in rows}
    assert CollectionRun.from_row(by_key["r2", "x"]) == retried
    assert by_key["r1", "mastodon"]["gaps"] == [{"from_time": at(20, 6), "to_time": at(20, 7)}]


def test_source_health_per_source_and_day(warehouse):
    warehouse.load_runs(RUNS)
    got = {
        (r["source"], r["day"]): r
        for r in warehouse.query("SELECT * FROM source_health").to_pylist()
    }
    assert sorted(got) == [
        ("bluesky", date(2026, 11, 21)),
        ("jetstream", date(2026, 11, 21)),
        ("mastodon", date(2026, 11, 20)),
        ("x", date(2026, 11, 20)),
        ("x", date(2026, 11, 21)),
    ]
    x20 = got["x", date(2026, 11, 20)]
    assert (x20["runs"], x20["failures"], x20["stops"], x20["requests"], x20["posts"]) == (
        2, 1, 0, 4, 250,
    )
    assert (x20["rate_limit_wait_s"], x20["cost_usd"], x20["max_lag_s"]) == (121.0, 1.33, 40.0)
    assert (x20["last_status"], x20["last_reason"]) == ("failed", "x: 401 Unauthorized")
    assert x20["last_finished_at"] == at(20, 20, 2)
    x21 = got["x", date(2026, 11, 21)]
    assert (x21["runs"], x21["stops"], x21["last_status"], x21["cost_usd"]) == (
        1, 1, "stopped", 0.895,
    )
    m20 = got["mastodon", date(2026, 11, 20)]
    assert (m20["runs"], m20["posts"], m20["duplicates"], m20["retries"], m20["gaps"]) == (
        2, 65, 3, 2, 1,
    )
    assert (m20["last_status"], m20["max_lag_s"], m20["cost_usd"]) == ("ok", 12.0, 0.0)
    b21 = got["bluesky", date(2026, 11, 21)]
    assert (b21["posts"], b21["gaps"], b21["max_lag_s"], b21["events"]) == (0, 0, None, None)
    j21 = got["jetstream", date(2026, 11, 21)]
    assert (j21["events"], j21["reconnects"], j21["gaps"], j21["posts"]) == (120_000, 2, 1, 40)


def health(warehouse, filters: queries.Filters, month: date) -> dict[str, dict]:
    sql, params = queries.collection_health(filters, month)
    return {r["source"]: r for r in warehouse.query(sql, list(params)).to_pylist()}


def test_the_dashboard_health_query(warehouse):
    warehouse.load_runs(RUNS)
    every = health(warehouse, queries.Filters(), date(2026, 11, 21))
    assert list(every) == ["bluesky", "jetstream", "mastodon", "x"]
    x = every["x"]
    assert (x["last_run"], x["last_status"]) == (at(22, 0, 3), "stopped")
    assert (x["runs"], x["posts"], x["failures"], x["gaps"], x["rate_limit_wait_s"]) == (
        3, 397, 1, 0, 121.0,
    )
    assert x["cost_this_month"] == pytest.approx(0.895)  # the 20th is before `month`
    assert (every["mastodon"]["gaps"], every["mastodon"]["last_status"]) == (1, "ok")
    # the 21st only, X and Mastodon: the period narrows the counts, not the last run or the cost
    narrow = queries.Filters(
        start=date(2026, 11, 21), end=date(2026, 11, 21), sources=("x", "mastodon"),
        topics=("gaming",),  # runs have no topic: ignored
    )
    shown = health(warehouse, narrow, date(2026, 11, 1))
    assert list(shown) == ["mastodon", "x"]
    assert (shown["x"]["runs"], shown["x"]["failures"], shown["x"]["posts"]) == (1, 0, 147)
    assert shown["x"]["cost_this_month"] == pytest.approx(1.33 + 0.895)
    assert (shown["mastodon"]["runs"], shown["mastodon"]["gaps"]) == (0, 0)
    assert shown["mastodon"]["last_status"] == "ok"


def test_analyze_loads_each_run_record_once(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text(
        f"[pipeline]\nlake = {tmp_path / 'lake'}\nwarehouse = duckdb:///{tmp_path / 'w.duckdb'}\n"
        "[sample]\nposts = 120\n[twitter_config]\nlimit = 50\n"
    )
    config = load_config(conf)
    reports = [collect(config, run_id=f"run-{n}")[0] for n in range(2)]
    first = analyze.analyze(config, backend=EchoBackend())
    assert first.runs_loaded == 2 and first.totals["collection_runs"] == 2
    assert analyze.analyze(config, backend=EchoBackend()).runs_loaded == 0
    # a retry of run-1 rewrites its record: loaded again, replacing the row
    retry = collect(config, run_id="run-1")[0].run
    again = analyze.analyze(config, backend=EchoBackend())
    assert (again.runs_loaded, again.totals["collection_runs"]) == (0, 2)
    log = RunLog(Lake(config.lake))
    assert not log.pending(config.warehouse)
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        stored = warehouse.query("SELECT * FROM collection_runs ORDER BY run_id").to_pylist()
    assert [CollectionRun.from_row(row) for row in stored] == [
        reports[0].run,
        log.find("run-1", "sample"),
    ]
    assert stored[1]["posts_new"] == retry.posts_new > reports[1].run.posts_new  # both tries
    assert stored[1]["started_at"] == reports[1].run.started_at
    assert {row["status"] for row in stored} == {"ok"}
    assert all(row["lag_s"] > 0 and row["cost_usd"] == 0 for row in stored)
