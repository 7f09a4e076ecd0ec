"""The reddit source against a local fake of Reddit's OAuth API."""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime, timedelta

import pytest
from fake_apis import T0, FakeTime, Reply, not_json, serving
from fake_networks import FakeReddit, reddit_link

from flows.sources import registry
from flows.stages.collect import collect_source
from flows.config import Config, PipelineConfig, TwitterConfig, parse_section
from flows.settings import ConfigError
from flows.lake.lake import Lake
from flows.schema import POST_SCHEMA, posts_table
from flows.cursors import WalkCursor
from flows.sources.base import SourceError
from flows.sources.reddit import RedditSettings, RedditSource, link_to_post

SECRET = "app-secret-value"
NOW = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.fixture
def reddit_env(monkeypatch) -> FakeTime:
    monkeypatch.setenv("REDDIT_CLIENT_ID", "app-id")
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", SECRET)
    fake = FakeTime()
    monkeypatch.setitem(
        registry._SOURCES, "reddit", functools.partial(RedditSource, **fake.options())
    )
    return fake


def settings(api: FakeReddit, **more) -> RedditSettings:
    return RedditSettings(base_url=api.url, token_url=f"{api.url}/api/v1/access_token", **more)


def config(lake, api: FakeReddit, limit: int = 0, **more) -> Config:
    return Config(
        twitter=TwitterConfig(hashtag="dataengineering", limit=limit),
        pipeline=PipelineConfig(sources=("reddit",), lake=str(lake)),
        source_settings={"reddit": settings(api, **more)},
    )


def lake_ids(lake: Lake) -> list[str]:
    return [
        pid
        for path in lake.manifest()
        for pid in lake.read_posts(path).column("post_id").to_pylist()
    ]


def listings(api: FakeReddit) -> list:
    return [r for r in api.requests if r.path != "/api/v1/access_token"]


def test_reddit_link_maps_to_the_post_schema():
    post = link_to_post(reddit_link(7)["data"], "dataengineering", NOW)
    assert posts_table([post]).schema.equals(POST_SCHEMA)
    name = post["native_id"]
    assert post == {
        "post_id": f"reddit:{name}",
        "source": "reddit",
        "native_id": name,
        "hashtag": "dataengineering",
        "url": f"https://www.reddit.com/r/dataengineering/comments/{name[3:]}/post_7/",
        "author_handle": "redditor3",
        "author_name": None,
        "created_at": T0 + timedelta(minutes=7),
        "collected_at": NOW,
        "text": "Post 7: how do you run #DataEngineering pipelines?\n\nAsking u/helper1 too, see https://example.com/7.",
        "lang": None,
        "like_count": 7,
        "repost_count": 0,
        "reply_count": 2,
        "quote_count": None,
        "is_repost": False,
        "in_reply_to": None,
        "hashtags": ["dataengineering"],
        "mentions": ["helper1"],
        "links": ["https://example.com/7"],
        "client": None,
        "quoted_post": None,
    }
    link = link_to_post(
        reddit_link(
            8,
            is_self=False,
            url="https://blog.example/x",
            selftext="",
            author="[deleted]",
            crosspost_parent="t3_abc",
        )["data"],
        "dataengineering",
        NOW,
    )
    # a crosspost keeps its own score and comments: no repost, it quotes what it shares
    assert (link["links"], link["author_handle"], link["is_repost"], link["quoted_post"]) == (
        ["https://blog.example/x"],
        None,
        False,
        "t3_abc",
    )


def test_reddit_subreddit_and_search_streams_then_only_new(tmp_path, reddit_env):
    api = FakeReddit(
        [reddit_link(n) for n in range(150)] + [reddit_link(n, "python") for n in range(150, 160)]
    )
    with serving(api):
        cfg = config(tmp_path / "lake", api, subreddits=("r/dataengineering",))
        report = collect_source(cfg, "reddit", "run1")
        # the search finds the same 150 posts again (the lake keeps them once) and the 10 others
        assert (report.error, report.fetched, report.new) == (None, 310, 160)
        assert api.requests[0].path == "/api/v1/access_token" and api.grants == 1
        paths = [(r.path, r.query.get("after")) for r in listings(api)]
        assert (
            paths[0] == ("/r/dataengineering/new", None) and paths[1][0] == "/r/dataengineering/new"
        )
        assert paths[2] == ("/search", None)
        assert all(r.headers["user-agent"].startswith("python:hashtag-pulse") for r in api.requests)
        lake = Lake(cfg.lake)
        floors = lake.read_cursor("reddit", "dataengineering").floors
        assert set(floors) == {"r/dataengineering", "search"}

        api.links += [reddit_link(n) for n in range(160, 165)]
        api.requests.clear()
        report = collect_source(cfg, "reddit", "run2")
        assert (report.fetched, report.new) == (10, 5)
        assert len(listings(api)) == 2  # one page per stream: it reached the floor
        ids = lake_ids(lake)
        assert len(ids) == len(set(ids)) == 165


def test_reddit_kill_after_page_2_resumes_at_page_3(tmp_path, reddit_env):
    api = FakeReddit([reddit_link(n) for n in range(250)])
    api.fail(
        Reply(403, {"message": "Forbidden", "error": 403}), when=lambda r: len(listings(api)) == 3
    )
    with serving(api):
        cfg = config(
            tmp_path / "lake", api, subreddits=("dataengineering",), search=False, page_size=100
        )
        report = collect_source(cfg, "reddit", "run1")
        assert report.new == 200 and "403" in report.error and "[reddit] subreddits" in report.error
        lake = Lake(cfg.lake)
        token = lake.read_cursor("reddit", "dataengineering").walk.token

        api.requests.clear()
        report = collect_source(cfg, "reddit", "run2")
        assert report.error is None and report.fetched == 50
        assert listings(api)[0].query["after"] == token
        ids = lake_ids(lake)
        assert len(ids) == len(set(ids)) == 250


def test_reddit_expired_token_is_renewed(reddit_env):
    api = FakeReddit([reddit_link(n) for n in range(30)])
    with serving(api):
        source = RedditSource(
            settings(api, page_size=10, search=False, subreddits=("dataengineering",)),
            **reddit_env.options(),
        )
        batches = source.fetch("dataengineering", WalkCursor(), None)
        assert next(batches).posts.num_rows == 10
        api.tokens.clear()  # the token expires
        assert sum(b.posts.num_rows for b in batches) == 20
    assert api.grants == 2


def test_reddit_throttling_errors_and_a_malformed_page(reddit_env):
    api = FakeReddit([reddit_link(n) for n in range(30)])
    api.fail(
        Reply(429, b"Too Many Requests", {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "42"}),
        when=lambda r: r.path.endswith("/new"),
    )
    api.fail(
        Reply(500, {"message": "Internal Server Error", "error": 500}),
        when=lambda r: r.path.endswith("/new"),
    )
    api.fail(not_json(), when=lambda r: "after" in r.query, times=5)
    with serving(api):
        source = RedditSource(
            settings(api, page_size=10, search=False, subreddits=("dataengineering",)),
            **reddit_env.options(),
        )
        batches = list(source.fetch("dataengineering", WalkCursor(), None))
    assert [b.posts.num_rows for b in batches] == [10, 0]
    assert 42 <= reddit_env[0] <= 44  # seconds from now, as Reddit counts them
    assert "/r/dataengineering/new?limit=10&after=t3_" in batches[1].warnings[0]


def test_reddit_one_refused_subreddit_does_not_stop_the_others(tmp_path, reddit_env):
    api = FakeReddit([reddit_link(n) for n in range(5)])
    with serving(api):
        cfg = config(
            tmp_path / "lake", api, subreddits=("gone_private", "dataengineering"), search=False
        )
        api.fail(
            Reply(403, {"message": "Forbidden", "error": 403}),
            when=lambda r: "gone_private" in r.path,
        )
        report = collect_source(cfg, "reddit", "run1")
        assert report.error is None and report.new == 5
        assert "gone_private" in report.warnings[0] and "403" in report.warnings[0]


def test_reddit_missing_credentials_and_secret_never_shown(reddit_env, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    api = FakeReddit([reddit_link(1)], secret="the-real-secret")
    with serving(api):
        source = RedditSource(
            settings(api, search=False, subreddits=("dataengineering",)), **reddit_env.options()
        )
        with pytest.raises(SourceError) as error:
            list(source.fetch("dataengineering", WalkCursor(), None))
    assert "access_token answered 401" in str(error.value) and "client_secret_env" in str(
        error.value
    )
    assert SECRET not in str(error.value) + caplog.text + repr(source.client._session.auth)
    monkeypatch.delenv("REDDIT_CLIENT_SECRET")
    with pytest.raises(
        ConfigError, match=r"\[reddit\] client_secret_env = REDDIT_CLIENT_SECRET.*prefs/apps"
    ):
        RedditSource(RedditSettings())


def test_reddit_settings():
    parse = functools.partial(parse_section, RedditSettings, section="reddit", where="test.conf")
    assert parse({"subreddits": "r/dataengineering, python"}).subreddits == (
        "dataengineering",
        "python",
    )
    with pytest.raises(ConfigError, match="name a subreddit or search"):
        parse({"search": "false"})
    with pytest.raises(ConfigError, match="not a subreddit name"):
        parse({"subreddits": "data engineering"})


def test_reddit_wants_a_user_agent_that_names_its_user(reddit_env):
    for agent in (RedditSettings().user_agent, "python-requests/2.32", "bot (by someone)"):
        with pytest.raises(ConfigError, match=r"\[reddit\] user_agent = .*your Reddit username"):
            RedditSettings(user_agent=agent).check()
    RedditSettings(user_agent="python:pulse-at-acme:v1.2 (by /u/acme_data)").check()
