"""`refresh` against local fakes whose counters change and whose posts disappear between runs:
snapshots and deletions land in the lake, reach every view through analyze, a run stopped
half-way keeps what it read and the next reads only the rest, and no post is read twice where
the schedule does not say so."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import pytest
from fake_apis import FakeTime, Reply, iso, serving
from fake_networks import FakeBluesky, FakeReddit, FakeX, bluesky_post, reddit_link, x_tweet

from flows.config import Config, PipelineConfig, RefreshConfig, TwitterConfig
from flows.lake.facts import DELETIONS, METRICS, FactLog
from flows.lake.lake import Lake
from flows.lake.runs import RunLog
from flows.sources import lookups, registry
from flows.sources.bluesky import BlueskySettings, BlueskySource
from flows.sources.reddit import RedditSettings
from flows.sources.x import XSettings
from flows.stages import refresh as refresh_stage
from flows.stages.analyze import analyze
from flows.stages.collect import collect_source
from flows.stages.refresh import refresh, refresh_markdown
from flows.stages.reports import analyze_markdown
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse

START = datetime.now(UTC).replace(microsecond=0)
SECRETS = ("app-pass-word-1234", "app-secret-value", "test-bearer-token")


@pytest.fixture
def fake_time(monkeypatch) -> FakeTime:
    """Secrets in the environment; every source and lookup with no real sleeps."""
    fake = FakeTime()
    monkeypatch.setenv("BLUESKY_HANDLE", "me.bsky.social")
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", SECRETS[0])
    monkeypatch.setenv("REDDIT_CLIENT_ID", "app-id")
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", SECRETS[1])
    monkeypatch.setenv("X_BEARER_TOKEN", SECRETS[2])
    options = fake.options(timeout=2, attempts=2)
    monkeypatch.setitem(registry._SOURCES, "bluesky", functools.partial(BlueskySource, **options))
    for name, cls in lookups.LOOKUPS.items():
        monkeypatch.setitem(lookups.LOOKUPS, name, functools.partial(cls, **options))
    return fake


def young_post(n: int, age: timedelta) -> dict:
    """A Bluesky post written `age` before the test started."""
    view = bluesky_post(n)
    view["record"]["createdAt"] = iso(START - age)
    view["indexedAt"] = iso(START - age + timedelta(seconds=1))
    return view


def bluesky_config(tmp_path, api: FakeBluesky, sources=("bluesky",), **more) -> Config:
    url = f"{api.url}/xrpc"
    return Config(
        twitter=TwitterConfig(hashtag="dataengineering"),
        pipeline=PipelineConfig(
            sources=sources, lake=str(tmp_path / "lake"),
            warehouse=f"duckdb:///{tmp_path / 'w.duckdb'}",
        ),
        refresh=RefreshConfig(days=7),
        source_settings={"bluesky": BlueskySettings(base_url=url, appview_url=url), **more},
    )


def at(hours: float):
    return lambda: START + timedelta(hours=hours)


def snapshots(lake: Lake) -> list[dict]:
    facts = FactLog(lake, METRICS)
    return facts.read(facts.pending("nowhere")).to_pylist()


def test_counters_change_posts_vanish_and_every_view_follows(tmp_path, fake_time):
    api = FakeBluesky([young_post(n, timedelta(minutes=30)) for n in range(40)])
    with serving(api):
        config = bluesky_config(tmp_path, api)
        collect_source(config, "bluesky", "collect-1")
        # an hour later: some gained likes, two were deleted
        api.posts[0]["likeCount"] = 1_000
        api.posts[1]["likeCount"] = 500
        gone = {f"bluesky:{api.posts.pop(5)['uri']}", f"bluesky:{api.posts.pop(6)['uri']}"}
        (report,) = refresh(config, run_id="refresh-1", clock=at(1))
        assert (report.due, report.read, report.gone, report.error) == (40, 38, 2, None)
        calls = [r for r in api.requests if r.path.endswith("getPosts")]
        assert [len(r.params["uris"]) for r in calls] == [25, 15]
        # the same hour again: nothing is due, nothing is asked, no snapshot twice
        (again,) = refresh(config, run_id="refresh-2", clock=at(1.1))
        assert (again.due, again.read) == (0, 0)
        assert sum(r.path.endswith("getPosts") for r in api.requests) == len(calls)
    lake = Lake(config.lake)
    rows = snapshots(lake)
    assert len(rows) == len({r["post_id"] for r in rows}) == 38
    assert {r["post_id"] for r in FactLog(lake, DELETIONS).read(
        FactLog(lake, DELETIONS).pending("nowhere")).to_pylist()} == gone
    # the run's record, as collection's: requests counted by the client, no cost
    record = RunLog(lake).find("refresh-1", "bluesky")
    assert (record.status, record.requests, record.cost_usd) == ("ok", 2, 0.0)
    assert "| bluesky | 40 | 38 | 2 | 2 | 0.000 | ok |" in refresh_markdown([report])

    analysed = analyze(config)
    assert (analysed.snapshots_loaded, analysed.deletions_loaded) == (38, 2)
    assert "| counter snapshots, deletions loaded | 38, 2 |" in analyze_markdown(analysed)
    with DuckDBWarehouse(config.warehouse.removeprefix("duckdb:///")) as warehouse:
        top = warehouse.query(
            "SELECT post_id, like_count, counts_at FROM top_posts ORDER BY engagement DESC"
        ).to_pylist()
        assert len(top) == 38 and not gone & {row["post_id"] for row in top}
        assert top[0]["like_count"] == 1_000 and top[0]["counts_at"] == START + timedelta(hours=1)
        rising = warehouse.query(
            "SELECT post_id FROM rising_posts ORDER BY gain_per_hour DESC LIMIT 2"
        ).to_pylist()
    assert [row["post_id"] for row in rising] == [top[0]["post_id"], top[1]["post_id"]]


def test_young_posts_are_read_more_often_than_old_ones(tmp_path, fake_time):
    ages = {"young": timedelta(minutes=20), "old": timedelta(days=3)}
    api = FakeBluesky([young_post(0, ages["young"]), young_post(1, ages["old"])])
    with serving(api):
        config = bluesky_config(tmp_path, api)
        collect_source(config, "bluesky", "collect-1")
        reads = []
        for hour in range(1, 25):
            (report,) = refresh(config, run_id=f"refresh-{hour}", clock=at(hour))
            reads.append(report.read)
    per_post: dict[str, int] = {}
    for row in snapshots(Lake(config.lake)):
        per_post[row["post_id"]] = per_post.get(row["post_id"], 0) + 1
    young = f"bluesky:{api.posts[0]['uri']}"
    # collected 20 minutes old, the young one is read each time its age has doubled, at the
    # first hourly run after: 1 h 20, 3 h 20, 7 h 20, 15 h 20 old; the old one, three days old
    # when collected, is not due before three days more
    assert per_post == {young: 4}
    assert [hour for hour, read in enumerate(reads, start=1) if read] == [1, 3, 7, 15]


def test_a_refresh_stopped_half_way_keeps_what_it_read_and_the_next_reads_the_rest(
    tmp_path, fake_time, monkeypatch
):
    monkeypatch.setattr(refresh_stage, "FLUSH_POSTS", 25)
    api = FakeBluesky([young_post(n, timedelta(minutes=30)) for n in range(80)])
    with serving(api):
        config = bluesky_config(tmp_path, api)
        collect_source(config, "bluesky", "collect-1")
        # the third lookup fails every try: the run stops there
        api.fail(
            Reply(503, {"error": "Unavailable"}),
            when=lambda r: r.path.endswith("getPosts")
            and sum(q.path.endswith("getPosts") for q in api.requests) >= 3,
            times=2,
        )
        (first,) = refresh(config, run_id="refresh-1", clock=at(1))
        assert first.run.status == "failed" and "503" in first.error and first.read == 50
        (second,) = refresh(config, run_id="refresh-2", clock=at(1.05))
        assert (second.due, second.read, second.error) == (30, 30, None)
    rows = snapshots(Lake(config.lake))
    assert len(rows) == len({r["post_id"] for r in rows}) == 80


def test_a_killed_refresh_lands_what_it_read_before_the_kill(tmp_path, fake_time, monkeypatch):
    monkeypatch.setattr(refresh_stage, "FLUSH_POSTS", 10_000)  # nothing flushed on its own
    api = FakeBluesky([young_post(n, timedelta(minutes=30)) for n in range(60)])
    with serving(api):
        config = bluesky_config(tmp_path, api)
        collect_source(config, "bluesky", "collect-1")
        real = lookups.LOOKUPS["bluesky"]
        calls = []

        def interrupted(*args, **kwargs):
            lookup = real(*args, **kwargs)
            read = lookup.lookup

            def once_then_stop(posts):
                calls.append(len(posts))
                if len(calls) == 2:
                    raise KeyboardInterrupt
                return read(posts)

            lookup.lookup = once_then_stop
            return lookup

        monkeypatch.setitem(lookups.LOOKUPS, "bluesky", interrupted)
        with pytest.raises(KeyboardInterrupt):
            refresh(config, run_id="refresh-1", clock=at(1))
        assert len(snapshots(Lake(config.lake))) == 25
        monkeypatch.setitem(lookups.LOOKUPS, "bluesky", real)
        (second,) = refresh(config, run_id="refresh-2", clock=at(1.05))
    assert second.read == 35
    rows = snapshots(Lake(config.lake))
    assert len(rows) == len({r["post_id"] for r in rows}) == 60
    assert RunLog(Lake(config.lake)).find("refresh-1", "bluesky").status == "failed"


def test_x_is_refreshed_only_when_asked_and_no_secret_reaches_lake_or_report(
    tmp_path, fake_time, caplog
):
    api = FakeBluesky([young_post(n, timedelta(minutes=30)) for n in range(3)])
    x = FakeX([x_tweet(n) for n in range(3)], token="another-token")  # refuses our token
    reddit = FakeReddit([reddit_link(n) for n in range(3)])
    reddit.fail(Reply(401, {"message": "Unauthorized", "error": 401}), times=99)
    with serving(api, x, reddit):
        settings = {
            "x": XSettings(base_url=f"{x.url}/2"),
            "reddit": RedditSettings(
                base_url=reddit.url, token_url=f"{reddit.url}/api/v1/access_token",
                user_agent="python:pulse-test:v1 (by /u/tester)",
            ),
        }
        config = bluesky_config(tmp_path, api, ("bluesky", "x", "reddit"), **settings)
        reports = refresh(config, run_id="refresh-1", clock=at(1))
        assert [r.source for r in reports] == ["bluesky", "reddit"] and x.requests == []
        # with [x] refresh = true, X is read (and refused: no post of X in the lake yet, no call)
        settings["x"] = XSettings(base_url=f"{x.url}/2", refresh=True)
        config = bluesky_config(tmp_path, api, ("bluesky", "x", "reddit"), **settings)
        assert [r.source for r in refresh(config, run_id="refresh-2", clock=at(2))] == [
            "bluesky", "x", "reddit"
        ]
    lake_text = b"".join(
        path.read_bytes() for path in (tmp_path / "lake").rglob("*") if path.is_file()
    )
    shown = refresh_markdown(reports) + caplog.text + repr(reports)
    for secret in SECRETS:
        assert secret.encode() not in lake_text and secret not in shown


def test_the_refresh_command_reads_the_due_posts_and_says_what_it_did(
    tmp_path, fake_time, capsys
):
    from flows.cli import main
    from flows.schema import posts_table
    from test_warehouse_duckdb import post

    api = FakeBluesky([young_post(n, timedelta(hours=3)) for n in range(3)])
    lake = Lake(str(tmp_path / "lake"))
    rows = [
        post("bluesky", view["uri"], START - timedelta(hours=3), "ann",
             collected_at=START - timedelta(hours=2))  # collected two hours ago, an hour old then
        for view in api.posts
    ]
    with lake.writer("collect-1") as writer:
        writer.write(posts_table(rows))
    with serving(api):
        conf = tmp_path / "configuration.conf"
        conf.write_text(
            f"[pipeline]\nsources = bluesky\nlake = {lake.url}\n"
            f"[bluesky]\nappview_url = {api.url}/xrpc\n"
        )
        assert main(["refresh", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "| bluesky | 3 | 3 | 0 | 1 | 0.000 | ok |" in out and "analyze" in out
