"""The x source against a local fake of X API v2 recent search."""

from __future__ import annotations

import functools
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from fake_apis import FakeTime, Reply, not_json, serving
from fake_networks import FakeX, snowflake, x_tweet

from flows.sources import registry
from flows.stages.collect import collect_source
from flows.config import Config, PipelineConfig, TwitterConfig, parse_section
from flows.settings import ConfigError
from flows.lake.lake import Lake
from flows.schema import POST_SCHEMA
from flows.cursors import FileCursor, WalkCursor
from flows.sources.base import SourceError
from flows.sources.file.source import FileSettings, FileSource
from flows.sources.x import XSettings, XSource

TOKEN = "test-bearer-token"


@pytest.fixture
def x_env(monkeypatch) -> FakeTime:
    """The bearer token in the environment, and sources that record their sleeps."""
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    fake = FakeTime()
    monkeypatch.setitem(registry._SOURCES, "x", functools.partial(XSource, **fake.options()))
    return fake


def config(lake, api: FakeX, limit: int = 0, **settings) -> Config:
    return Config(
        twitter=TwitterConfig(hashtag="dataengineering", limit=limit),
        pipeline=PipelineConfig(sources=("x",), lake=str(lake)),
        source_settings={"x": XSettings(base_url=f"{api.url}/2", **settings)},
    )


def lake_ids(lake: Lake) -> list[str]:
    return [
        pid
        for path in lake.manifest()
        for pid in lake.read_posts(path).column("post_id").to_pylist()
    ]


def test_x_live_pages_map_exactly_as_the_file_source_maps_them(tmp_path, x_env):
    api = FakeX([x_tweet(n) for n in range(30)])
    with serving(api):
        live = [
            b.posts
            for b in XSource(XSettings(base_url=f"{api.url}/2", max_results=10)).fetch(
                "dataengineering", WalkCursor(), None
            )
        ]
    pages = [r for r in api.requests if r.path.endswith("/recent")]
    assert len(pages) == 3
    # the same pages, saved as twarc2 would, through the file source
    dump = tmp_path / "pages.jsonl"
    bodies = [api.answer(request).body for request in pages]
    dump.write_text("\n".join(json.dumps(body) for body in bodies) + "\n")
    imported = [
        b.posts
        for b in FileSource(FileSettings(paths=(str(dump),))).fetch(
            "dataengineering", FileCursor(), None
        )
    ]
    def drop(tables: list) -> list[dict]:
        return sorted(
            (row for t in tables for row in t.drop_columns(["collected_at"]).to_pylist()),
            key=lambda r: r["post_id"],
        )

    assert len(drop(live)) == 30
    assert drop(live) == drop(imported)


def test_x_post_fields(x_env):
    tweet = x_tweet(5)
    api = FakeX([tweet])
    with serving(api):
        [batch] = XSource(XSettings(base_url=f"{api.url}/2")).fetch(
            "DataEngineering", WalkCursor(), None
        )
    assert batch.posts.schema.equals(POST_SCHEMA)
    row = batch.posts.to_pylist()[0]
    assert row["post_id"] == f"x:{tweet['id']}" and row["native_id"] == tweet["id"]
    assert row["url"] == f"https://x.com/piper1/status/{tweet['id']}"
    assert (row["author_handle"], row["author_name"]) == ("piper1", "Pipe Person 1")
    assert row["created_at"] == datetime.fromisoformat(tweet["created_at"])
    assert (row["like_count"], row["repost_count"], row["reply_count"], row["quote_count"]) == (
        5,
        2,
        1,
        0,
    )
    assert (row["hashtag"], row["hashtags"], row["mentions"]) == (
        "dataengineering",
        ["dataengineering"],
        ["piper2"],
    )
    assert row["links"] == ["https://example.com/5"]
    assert (row["lang"], row["client"], row["is_repost"]) == ("en", "Twitter Web App", False)
    assert batch.cursor.floors == {"": tweet["id"]} and batch.cursor.walk is None


def test_x_request_asks_for_what_the_mapping_needs(x_env):
    api = FakeX([x_tweet(1)])
    with serving(api):
        list(XSource(XSettings(base_url=f"{api.url}/2")).fetch("dataengineering", WalkCursor(), None))
        list(
            XSource(XSettings(base_url=f"{api.url}/2", retweets=True, extra_query="lang:en")).fetch(
                "dataengineering", WalkCursor(), None
            )
        )
    first, second = (r.query for r in api.requests)
    assert first["query"] == "#dataengineering -is:retweet"
    assert second["query"] == "#dataengineering lang:en"
    assert first["max_results"] == "100"
    assert first["expansions"] == "author_id" and "username" in first["user.fields"]
    fields = set(first["tweet.fields"].split(","))
    assert {
        "public_metrics",
        "entities",
        "referenced_tweets",
        "created_at",
        "lang",
        "source",
        "conversation_id",
    } <= fields


def test_x_retweets_setting(x_env):
    tweets = [x_tweet(n) for n in range(10)] + [x_tweet(n, retweet_of="1") for n in range(10, 15)]
    api = FakeX(tweets)
    with serving(api):
        without = sum(
            b.posts.num_rows
            for b in XSource(XSettings(base_url=f"{api.url}/2")).fetch(
                "dataengineering", WalkCursor(), None
            )
        )
        batches = list(
            XSource(XSettings(base_url=f"{api.url}/2", retweets=True)).fetch(
                "dataengineering", WalkCursor(), None
            )
        )
    assert without == 10
    assert sum(b.posts.num_rows for b in batches) == 15
    assert sum(b.posts.column("is_repost").to_pylist().count(True) for b in batches) == 5


def test_x_pages_with_next_token_then_since_id(tmp_path, x_env):
    api = FakeX([x_tweet(n) for n in range(250)])
    with serving(api):
        cfg = config(tmp_path / "lake", api)
        report = collect_source(cfg, "x", "run1")
        assert (report.error, report.new, report.batches) == (None, 250, 3)
        tokens = [r.query.get("next_token") for r in api.requests]
        assert tokens[0] is None and all(tokens[1:]) and len(set(tokens)) == 3
        lake = Lake(cfg.lake)
        newest = max(api.tweets, key=lambda t: int(t["id"]))["id"]
        assert lake.read_cursor("x", "dataengineering").floors == {"": newest}

        api.tweets += [x_tweet(n) for n in range(250, 260)]
        api.requests.clear()
        report = collect_source(cfg, "x", "run2")
        assert report.new == report.fetched == 10
        assert api.requests[0].query["since_id"] == newest
        ids = lake_ids(lake)
        assert len(ids) == len(set(ids)) == 260


def test_x_kill_after_page_2_resumes_at_page_3(tmp_path, x_env):
    api = FakeX([x_tweet(n) for n in range(350)])
    api.fail(
        Reply(401, {"title": "Unauthorized", "detail": "Unauthorized", "status": 401}),
        when=lambda r: len(api.requests) == 3,
    )
    with serving(api):
        cfg = config(tmp_path / "lake", api)
        report = collect_source(cfg, "x", "run1")
        assert report.new == 200 and "401" in report.error and "bearer_token_env" in report.error
        lake = Lake(cfg.lake)
        saved = lake.read_cursor("x", "dataengineering").walk
        assert saved.token == api.requests[2].query["next_token"]

        api.requests.clear()
        report = collect_source(cfg, "x", "run2")
        assert report.error is None and report.fetched == 150
        assert api.requests[0].query["next_token"] == saved.token
        ids = lake_ids(lake)
        assert len(ids) == len(set(ids)) == 350


def test_x_limit_is_honoured_and_the_rest_comes_next_run(tmp_path, x_env):
    api = FakeX([x_tweet(n) for n in range(250)])
    with serving(api):
        cfg = config(tmp_path / "lake", api, limit=130)
        assert collect_source(cfg, "x", "run1").fetched == 130
        assert collect_source(cfg, "x", "run2").fetched == 120
        assert collect_source(cfg, "x", "run3").fetched == 0
        ids = lake_ids(Lake(cfg.lake))
        assert len(ids) == len(set(ids)) == 250


def test_x_asks_for_no_more_posts_than_the_limit_leaves(tmp_path, x_env):
    api = FakeX([x_tweet(n) for n in range(40)])
    with serving(api):
        cfg = config(tmp_path / "lake", api, limit=15)
        assert [collect_source(cfg, "x", f"run{n}").fetched for n in range(4)] == [15, 15, 10, 0]
        # each post is paid for once: pages of the limit, not of 100 with the rest thrown away
        sizes = [r.query["max_results"] for r in api.requests]
        assert sizes == ["15", "15", "15", "15"]  # run 3 asks 15 and finds 10; run 4 one page
        ids = lake_ids(Lake(cfg.lake))
        assert len(ids) == len(set(ids)) == 40


def test_x_a_limit_inside_the_first_page_loses_nothing(tmp_path, x_env):
    # X's smallest page is 10 posts: with a limit of 4 the first page is cut, and the next run
    # starts again at the first page, past the posts that landed. Posts that arrive in between
    # shift that page: the run then gets a few it has already (de-duplicated), and the new ones
    # are newer than the walk's top, so the walk after it collects them.
    api = FakeX([x_tweet(n) for n in range(12)])
    with serving(api):
        cfg = config(tmp_path / "lake", api, limit=4)
        new = [collect_source(cfg, "x", f"run{n}").new for n in range(2)]
        api.tweets += [x_tweet(n) for n in range(12, 15)]
        new += [collect_source(cfg, "x", f"run{n}").new for n in range(2, 7)]
        assert new[:2] == [4, 4] and sum(new) == 15 and new[-2:] == [0, 0]
        assert {r.query["max_results"] for r in api.requests} == {"10"}
        ids = lake_ids(Lake(cfg.lake))
        assert len(ids) == len(set(ids)) == 15


def test_x_rate_limit_headers_are_respected(x_env, monkeypatch):
    api = FakeX([x_tweet(n) for n in range(150)])
    reset = int(datetime.now(UTC).timestamp()) + 120
    api.fail(
        Reply(
            429,
            {"title": "Too Many Requests", "detail": "Too Many Requests", "status": 429},
            {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)},
        ),
        when=lambda r: len(api.requests) == 2,
    )
    slept = FakeTime()
    with serving(api):
        batches = list(
            XSource(XSettings(base_url=f"{api.url}/2"), **slept.options()).fetch(
                "dataengineering", WalkCursor(), None
            )
        )
    assert sum(b.posts.num_rows for b in batches) == 150
    assert len(slept) == 1 and 119 <= slept[0] <= 123


def test_x_server_errors_and_a_malformed_page(x_env):
    api = FakeX([x_tweet(n) for n in range(150)])
    api.fail(Reply(503, {"title": "Service Unavailable"}), times=2)
    api.fail(not_json(), when=lambda r: "next_token" in r.query, times=5)
    slept = FakeTime()
    with serving(api):
        batches = list(
            XSource(XSettings(base_url=f"{api.url}/2"), **slept.options()).fetch(
                "dataengineering", WalkCursor(), None
            )
        )
    assert [b.posts.num_rows for b in batches] == [100, 0]
    warning = batches[1].warnings[0]
    assert (
        "GET" in warning
        and "/2/tweets/search/recent?query=%23dataengineering" in warning
        and "next_token=" in warning
    )
    assert TOKEN not in warning
    assert batches[1].cursor.walk.token  # the next run asks for this page again


def test_x_empty_result(x_env):
    api = FakeX([])
    with serving(api):
        batches = list(
            XSource(XSettings(base_url=f"{api.url}/2")).fetch(
                "dataengineering", WalkCursor(floors={"": "5"}), None
            )
        )
    assert [b.posts.num_rows for b in batches] == [0]
    assert batches[0].cursor == WalkCursor(floors={"": "5"})


def test_x_since_id_older_than_the_search_window_is_dropped(x_env, caplog):
    api = FakeX([x_tweet(n) for n in range(3)])
    old = snowflake(datetime.now(UTC) - timedelta(days=9))
    with serving(api):
        batches = list(
            XSource(XSettings(base_url=f"{api.url}/2")).fetch(
                "dataengineering", WalkCursor(floors={"": old}), None
            )
        )
    assert "since_id" not in api.requests[0].query
    assert sum(b.posts.num_rows for b in batches) == 3
    assert "older than the 7 days" in caplog.text


def test_x_missing_token_stops_before_any_request(monkeypatch):
    monkeypatch.delenv("X_BEARER_TOKEN", raising=False)
    with pytest.raises(ConfigError) as error:
        XSource(XSettings())
    message = str(error.value)
    assert "[x] bearer_token_env = X_BEARER_TOKEN" in message
    assert "X Developer Console" in message and "Bearer Token" in message
    monkeypatch.setenv("MY_X", "abc")
    assert XSettings(bearer_token_env="MY_X").token().reveal() == "abc"


def test_x_token_never_shown(tmp_path, x_env, caplog):
    caplog.set_level(logging.DEBUG)
    api = FakeX([x_tweet(1)], token="another-token")  # our token is refused
    with serving(api):
        source = XSource(XSettings(base_url=f"{api.url}/2"))
        assert TOKEN not in repr(source.client) + repr(source.client._session.auth) + repr(
            XSettings().token()
        )
        with pytest.raises(SourceError) as error:
            list(source.fetch("dataengineering", WalkCursor(), None))
    assert "401 Unauthorized" in str(error.value)
    assert TOKEN not in str(error.value) and TOKEN not in caplog.text


def test_x_settings():
    parse = functools.partial(parse_section, XSettings, section="x", where="test.conf")
    settings = parse({"retweets": "yes", "max_results": "50", "bearer_token_env": "MY_TOKEN"})
    assert (settings.retweets, settings.max_results, settings.bearer_token_env) == (
        True,
        50,
        "MY_TOKEN",
    )
    with pytest.raises(ConfigError, match="max_results: must be between 10 and 100"):
        parse({"max_results": "500"})
