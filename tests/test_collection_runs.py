"""The record of each collection run, against local fakes of the APIs: the requests, retries,
rate-limit waits, posts and cost recorded are those the fake server saw and answered, and X's
budgets stop a run before a request that could pass them."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import pytest
from fake_apis import FakeTime, Reply, serving
from fake_networks import FakeBluesky, FakeMastodon, FakeX, bluesky_post, mastodon_status, x_tweet

from flows.config import Config, PipelineConfig, TwitterConfig
from flows.lake.lake import Lake
from flows.lake.runs import CollectionRun, RunLog
from flows.sources import registry
from flows.sources.bluesky import BlueskySettings, BlueskySource
from flows.sources.mastodon import MastodonSettings, MastodonSource
from flows.sources.x import PRICE_PER_POST, PRICE_PER_USER, XSettings, XSource
from flows.stages import collect as collect_stage
from flows.stages.collect import collect_source
from flows.stages.reports import collect_markdown

TOKEN = "test-bearer-token"
WORST_PER_POST = PRICE_PER_POST + PRICE_PER_USER


@pytest.fixture
def slept(monkeypatch) -> FakeTime:
    """The bearer token set, and HTTP sources that record their pauses and time out fast."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    fake = FakeTime()
    monkeypatch.setenv("BLUESKY_HANDLE", "me.bsky.social")
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "app-pass-word-1234")
    for name, cls in (("x", XSource), ("mastodon", MastodonSource), ("bluesky", BlueskySource)):
        options = fake.options(timeout=0.5)
        monkeypatch.setitem(registry._SOURCES, name, functools.partial(cls, **options))
    return fake


def x_config(lake, api: FakeX, **settings) -> Config:
    return Config(
        twitter=TwitterConfig(hashtag="dataengineering", limit=0),
        pipeline=PipelineConfig(sources=("x",), lake=str(lake)),
        source_settings={"x": XSettings(base_url=f"{api.url}/2", **settings)},
    )


def billed(api: FakeX) -> float:
    return api.billed["posts"] * PRICE_PER_POST + api.billed["users"] * PRICE_PER_USER


def lake_ids(lake: Lake) -> list[str]:
    return [pid for path in lake.manifest() for pid in lake.read_posts(path)["post_id"].to_pylist()]


def test_an_x_run_records_the_requests_retries_waits_and_bill_that_happened(tmp_path, slept):
    api = FakeX([x_tweet(n) for n in range(150)])
    reset = int(datetime.now(UTC).timestamp()) + 120
    too_many = Reply(429, {"title": "Too Many Requests"}, {"x-rate-limit-reset": str(reset)})
    api.fail(too_many, when=lambda r: len(api.requests) == 2)
    api.fail(Reply(503, {"title": "Service Unavailable"}), when=lambda r: len(api.requests) == 3)
    # a gateway that hangs (the client's timeout fires first), then gives up: nothing billed
    api.fail(Reply(504, {"title": "Gateway Timeout"}), when=lambda r: len(api.requests) == 4)
    api.hold(lambda r: len(api.requests) == 4)
    with serving(api):
        report = collect_source(x_config(tmp_path / "lake", api), "x", "run-1")
    run = report.run
    assert (run.status, run.reason, run.posts_new, run.posts_duplicate) == ("ok", None, 150, 0)
    assert run.requests == len(api.requests) == 5  # page 1, 429, 503, the hang, page 2
    assert run.retries == 3 and len(slept) == 3
    assert run.rate_limit_wait_s == pytest.approx(slept[0]) and 119 <= slept[0] <= 123
    assert api.billed == {"posts": 150, "users": 8}
    assert run.cost_usd == pytest.approx(billed(api))
    newest = max(datetime.fromisoformat(t["created_at"]) for t in api.tweets)
    assert run.lag_s == pytest.approx((run.finished_at - newest).total_seconds(), abs=5)
    assert (run.reconnects, run.gaps) == (0, [])
    # the same record in the lake, listed once
    runs = RunLog(Lake(str(tmp_path / "lake")))
    assert runs.find("run-1", "x") == run
    assert [e["run_id"] for e in runs.entries().values()] == ["run-1"]


def test_a_refused_token_is_a_failed_run_of_one_request(tmp_path, slept):
    api = FakeX([x_tweet(n) for n in range(5)], token="another-token")
    with serving(api):
        run = collect_source(x_config(tmp_path / "lake", api), "x", "run-1").run
    assert run.status == "failed" and "401" in run.reason and "bearer_token_env" in run.reason
    assert (run.requests, run.retries, run.posts_new, run.cost_usd) == (1, 0, 0, 0.0)
    assert len(api.requests) == 1 and TOKEN not in run.reason


def test_x_stops_before_passing_max_cost_per_run_and_the_next_run_resumes(tmp_path, slept):
    api = FakeX([x_tweet(n) for n in range(400)])
    with serving(api):
        config = x_config(tmp_path / "lake", api, max_cost_per_run=1.0)
        first = collect_source(config, "x", "run-1").run
        sizes = [int(r.query["max_results"]) for r in api.requests]
        runs = [first]
        while runs[-1].status != "ok" and len(runs) < 6:
            runs.append(collect_source(config, "x", f"run-{len(runs) + 1}").run)
    assert first.status == "stopped"
    assert "[x] max_cost_per_run = 1.00 USD" in first.reason
    assert f"{first.cost_usd:.3f} USD spent in this run" in first.reason
    # no request could have passed the budget: what was spent before it, plus its worst case
    spent = 0.0
    for size in sizes:
        assert spent + size * WORST_PER_POST <= 1.0 + 1e-9
        spent += size * PRICE_PER_POST + 4 * PRICE_PER_USER  # full pages by four authors
    assert first.cost_usd == pytest.approx(spent) and 1.0 - first.cost_usd < 10 * WORST_PER_POST
    assert [run.status for run in runs] == ["stopped", "stopped", "ok"]
    assert sum(run.cost_usd for run in runs) == pytest.approx(billed(api))
    ids = lake_ids(Lake(config.lake))
    assert len(ids) == len(set(ids)) == 400 == sum(run.posts_new for run in runs)
    assert RunLog(Lake(config.lake)).spent_this_month("x") == pytest.approx(billed(api))


def test_x_keeps_to_max_cost_per_month_from_the_runs_the_lake_recorded(tmp_path, slept):
    lake = Lake(str(tmp_path / "lake"))
    now = datetime.now(UTC)
    for run_id, started, cost in (("old", now - timedelta(days=40), 50.0), ("new", now, 0.95)):
        RunLog(lake).record(
            CollectionRun(run_id, "x", "dataengineering", started, started, cost_usd=cost)
        )
    api = FakeX([x_tweet(n) for n in range(300)])
    with serving(api):
        stopped = collect_source(x_config(lake.url, api, max_cost_per_month=1.0), "x", "r1").run
        assert (stopped.status, stopped.requests, len(api.requests)) == ("stopped", 0, 0)
        assert "[x] max_cost_per_month = 1.00 USD, 0.950 USD spent this month" in stopped.reason
        went_on = collect_source(x_config(lake.url, api, max_cost_per_month=2.0), "x", "r2").run
    assert went_on.status == "stopped" and "max_cost_per_month" in went_on.reason
    assert went_on.cost_usd == pytest.approx(billed(api)) and 0 < went_on.cost_usd <= 1.05
    assert RunLog(lake).spent_this_month("x") == pytest.approx(0.95 + went_on.cost_usd)


def test_a_retried_run_adds_its_tries_into_one_record(tmp_path, slept, monkeypatch):
    api = FakeX([x_tweet(n) for n in range(30)], token="another-token")
    with serving(api):
        config = x_config(tmp_path / "lake", api)
        first = collect_source(config, "x", "run-1").run
        api.token = TOKEN
        # a crash after the first batch landed: recorded as failed, then raised for a retry
        real = collect_stage.normalize
        calls = []

        def crash_on_second(posts):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("disk full")
            return real(posts)

        monkeypatch.setattr(collect_stage, "normalize", crash_on_second)
        with pytest.raises(RuntimeError, match="disk full"):
            collect_source(x_config(tmp_path / "lake", api, max_results=10), "x", "run-1")
        crashed = RunLog(Lake(config.lake)).find("run-1", "x")
        assert (crashed.status, crashed.reason) == ("failed", "RuntimeError: disk full")
        monkeypatch.setattr(collect_stage, "normalize", real)
        last = collect_source(config, "x", "run-1").run
    assert last.status == "ok" and last.started_at == first.started_at == crashed.started_at
    assert last.requests == len(api.requests) == 1 + 2 + 1  # refused; two pages; the rest
    assert last.posts_new == 30 and last.cost_usd == pytest.approx(billed(api))
    assert len(RunLog(Lake(config.lake)).entries()) == 1


def test_a_free_source_records_its_waits_and_no_cost(tmp_path, slept):
    statuses = [mastodon_status(i, "m.example", i) for i in range(1, 61)]
    api = FakeMastodon(statuses)
    later = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    spent = Reply(429, {"error": "Too many requests"}, {"X-RateLimit-Reset": later})
    api.fail(spent, when=lambda r: len(api.requests) == 1)
    api.fail(Reply(502, {"error": "Bad gateway"}), when=lambda r: len(api.requests) == 3, times=1)
    with serving(api):
        config = Config(
            twitter=TwitterConfig(hashtag="dataengineering", limit=0),
            pipeline=PipelineConfig(sources=("mastodon",), lake=str(tmp_path / "lake")),
            source_settings={"mastodon": MastodonSettings(instances=(api.url,))},
        )
        report = collect_source(config, "mastodon", "run-1")
    run = report.run
    assert (run.status, run.posts_new, run.cost_usd) == ("ok", 60, 0.0)
    assert run.requests == len(api.requests) and run.retries == 2
    assert run.rate_limit_wait_s == pytest.approx(slept[0]) and 29 <= slept[0] <= 32
    # the run summary (CLI output, Prefect artifact) shows the numbers recorded
    table = collect_markdown("dataengineering", config.lake, [report]).splitlines()
    header = [cell.strip() for cell in table[2].strip("|").split("|")]
    row = dict(zip(header, (cell.strip() for cell in table[4].strip("|").split("|")), strict=True))
    assert (row["requests"], row["retries"], row["new"]) == (str(run.requests), "2", "60")
    assert row["rate-limit wait"] == f"{run.rate_limit_wait_s:,.0f} s"
    assert (row["cost"], row["status"]) == ("$0.000", "ok")


def test_logins_and_token_refreshes_are_requests_too(tmp_path, slept):
    api = FakeBluesky([bluesky_post(n) for n in range(50)], access_uses=2)
    with serving(api):
        config = Config(
            twitter=TwitterConfig(hashtag="dataengineering", limit=0),
            pipeline=PipelineConfig(sources=("bluesky",), lake=str(tmp_path / "lake")),
            source_settings={
                "bluesky": BlueskySettings(base_url=f"{api.url}/xrpc", page_size=10)
            },
        )
        run = collect_source(config, "bluesky", "run-1").run
    paths = [r.path.rsplit(".", 1)[-1] for r in api.requests]
    assert {"createSession", "refreshSession", "searchPosts"} <= set(paths)
    assert (run.status, run.posts_new, run.cost_usd) == ("ok", 50, 0.0)
    assert run.requests == len(api.requests) > paths.count("searchPosts")
