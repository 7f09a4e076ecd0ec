"""The bluesky source against a local fake PDS: session, refresh, paging, faults, resume."""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime, timedelta

import pytest
from fake_apis import T0, FakeTime, Reply, iso, not_json, serving
from fake_networks import FakeBluesky, bluesky_post

from flows.sources import registry
from flows.stages.collect import collect_source
from flows.config import Config, PipelineConfig, TwitterConfig, parse_section
from flows.settings import ConfigError
from flows.lake.lake import Lake
from flows.schema import POST_SCHEMA, posts_table
from flows.cursors import WalkCursor
from flows.sources.base import SourceError
from flows.sources.bluesky import BlueskySettings, BlueskySource, post_view_to_post

PASSWORD = "app-pass-word-1234"
NOW = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.fixture
def bsky_env(monkeypatch) -> FakeTime:
    monkeypatch.setenv("BLUESKY_HANDLE", "@me.bsky.social")
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", PASSWORD)
    fake = FakeTime()
    monkeypatch.setitem(
        registry._SOURCES, "bluesky", functools.partial(BlueskySource, **fake.options())
    )
    return fake


def settings(api: FakeBluesky, **more) -> BlueskySettings:
    return BlueskySettings(base_url=f"{api.url}/xrpc", **more)


def config(lake, api: FakeBluesky, limit: int = 0, **more) -> Config:
    return Config(
        twitter=TwitterConfig(hashtag="dataengineering", limit=limit),
        pipeline=PipelineConfig(sources=("bluesky",), lake=str(lake)),
        source_settings={"bluesky": settings(api, **more)},
    )


def lake_ids(lake: Lake) -> list[str]:
    return [
        pid
        for path in lake.manifest()
        for pid in lake.read_posts(path).column("post_id").to_pylist()
    ]


def searches(api: FakeBluesky) -> list[dict]:
    return [r.query for r in api.requests if r.path.endswith("searchPosts")]


def test_bluesky_post_view_maps_to_the_post_schema():
    view = bluesky_post(
        4,
        reply={
            "root": {"uri": "at://did:plc:x/app.bsky.feed.post/root", "cid": "c1"},
            "parent": {"uri": "at://did:plc:x/app.bsky.feed.post/parent", "cid": "c2"},
        },
        tags=["DataOps"],
    )
    post = post_view_to_post(view, "dataengineering", NOW)
    assert posts_table([post]).schema.equals(POST_SCHEMA)
    assert post == {
        "post_id": "bluesky:at://did:plc:author1/app.bsky.feed.post/3kpost00004",
        "source": "bluesky",
        "native_id": "at://did:plc:author1/app.bsky.feed.post/3kpost00004",
        "hashtag": "dataengineering",
        "url": "https://bsky.app/profile/pipes1.bsky.social/post/3kpost00004",
        "author_handle": "pipes1.bsky.social",
        "author_name": "Pipes 1",
        "created_at": T0 + timedelta(minutes=4, seconds=-2),
        "collected_at": NOW,
        "text": "Post 4 on #dataengineering with @friend.bsky.social see example.com/4 é",
        "lang": "en",
        "like_count": 4,
        "repost_count": 1,
        "reply_count": 0,
        "quote_count": 1,
        "is_repost": False,
        "in_reply_to": "at://did:plc:x/app.bsky.feed.post/parent",
        "hashtags": ["dataengineering", "dataops"],
        "mentions": ["friend.bsky.social"],  # the handle shown, not the DID in the facet
        "links": ["https://example.com/4"],
        "client": None,
        "quoted_post": None,
    }
    # createdAt is the client's: a post with an impossible or missing one keeps its indexedAt
    for created in ("2023-02-29T10:00:00Z", None):
        odd = post_view_to_post(bluesky_post(4, createdAt=created), "dataengineering", NOW)
        assert odd["created_at"] == T0 + timedelta(minutes=4)


def test_bluesky_logs_in_pages_and_then_collects_only_newer(tmp_path, bsky_env):
    api = FakeBluesky([bluesky_post(n) for n in range(230)])
    with serving(api):
        cfg = config(tmp_path / "lake", api)
        report = collect_source(cfg, "bluesky", "run1")
        assert (report.error, report.new, report.batches) == (None, 230, 3)
        assert api.sessions == 1
        login = api.requests[0]
        assert login.path.endswith("createSession") and login.body["identifier"] == "me.bsky.social"
        first = searches(api)[0]
        assert (first["q"], first["sort"], first["limit"]) == ("#dataengineering", "latest", "100")
        assert [q.get("cursor") for q in searches(api)] == [None, "100", "200"]
        lake = Lake(cfg.lake)
        cursor = lake.read_cursor("bluesky", "dataengineering")
        # the newest post's sortAt: its createdAt, 2 s before it was indexed
        newest = T0 + timedelta(minutes=229, seconds=-2)
        assert cursor.walk is None and cursor.newest_time == newest

        api.posts += [bluesky_post(n) for n in range(230, 240)]
        api.requests.clear()
        report = collect_source(cfg, "bluesky", "run2")
        # 15 minutes below it: posts indexed late still sort above the floor
        assert searches(api)[0]["since"] == "2026-11-20T11:33:58.000Z"
        assert report.fetched == 26 and report.new == 10  # the last 16 of run 1 seen again
        ids = lake_ids(lake)
        assert len(ids) == len(set(ids)) == 240


def test_bluesky_collects_a_post_indexed_after_the_run_that_saw_newer_ones(tmp_path, bsky_env):
    api = FakeBluesky([bluesky_post(n) for n in range(10)])
    with serving(api):
        cfg = config(tmp_path / "lake", api)
        assert collect_source(cfg, "bluesky", "run1").new == 10
        # written 3 minutes before run 1's newest post, indexed 10 minutes after it: its sortAt
        # (what `since` compares) is its createdAt, below run 1's newest
        late = bluesky_post(10, createdAt=iso(T0 + timedelta(minutes=6)))
        api.posts.append(late | {"indexedAt": iso(T0 + timedelta(minutes=19))})
        report = collect_source(cfg, "bluesky", "run2")
        assert report.new == 1
        assert f"bluesky:{late['uri']}" in lake_ids(Lake(cfg.lake))


def test_bluesky_expired_access_token_is_refreshed_and_the_request_repeated(bsky_env):
    api = FakeBluesky([bluesky_post(n) for n in range(50)], access_uses=2)
    with serving(api):
        source = BlueskySource(settings(api, page_size=10), **bsky_env.options())
        batches = list(source.fetch("dataengineering", WalkCursor(), None))
    assert sum(b.posts.num_rows for b in batches) == 50
    paths = [r.path.rsplit(".", 1)[-1] for r in api.requests]
    assert paths[:5] == [
        "createSession",
        "searchPosts",
        "searchPosts",
        "searchPosts",
        "refreshSession",
    ]
    assert paths.count("createSession") == 1 and paths.count("refreshSession") == 2


def test_bluesky_logs_in_again_when_the_refresh_token_is_refused(bsky_env):
    api = FakeBluesky([bluesky_post(n) for n in range(30)], access_uses=1)
    api.fail(
        Reply(400, {"error": "ExpiredToken", "message": "Token has expired"}),
        when=lambda r: r.path.endswith("refreshSession"),
    )
    with serving(api):
        source = BlueskySource(settings(api, page_size=10), **bsky_env.options())
        assert sum(b.posts.num_rows for b in source.fetch("dataengineering", WalkCursor(), None)) == 30
    paths = [r.path.rsplit(".", 1)[-1] for r in api.requests]
    # the first refresh is refused: log in again; the second refresh works
    assert paths[:6] == [
        "createSession",
        "searchPosts",
        "searchPosts",
        "refreshSession",
        "createSession",
        "searchPosts",
    ]
    assert paths.count("createSession") == 2 and paths.count("refreshSession") == 2


def test_bluesky_wrong_password_says_what_to_fix(bsky_env, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "wrong-password")
    api = FakeBluesky([bluesky_post(1)])
    with serving(api):
        source = BlueskySource(settings(api), **bsky_env.options())
        with pytest.raises(SourceError) as error:
            list(source.fetch("dataengineering", WalkCursor(), None))
    message = str(error.value)
    assert "createSession answered 401" in message and "Invalid identifier or password" in message
    assert "app_password_env" in message
    assert "wrong-password" not in message + caplog.text + repr(source.client._session.auth)


def test_bluesky_kill_after_page_2_resumes_at_page_3(tmp_path, bsky_env):
    api = FakeBluesky([bluesky_post(n) for n in range(250)])
    api.fail(
        Reply(401, {"error": "AuthenticationRequired", "message": "Authentication Required"}),
        when=lambda r: r.query.get("cursor") == "200",
    )
    with serving(api):
        cfg = config(tmp_path / "lake", api)
        report = collect_source(cfg, "bluesky", "run1")
        assert report.new == 200 and "401" in report.error
        lake = Lake(cfg.lake)
        assert lake.read_cursor("bluesky", "dataengineering").walk.token == "200"

        api.requests.clear()
        report = collect_source(cfg, "bluesky", "run2")
        assert report.error is None and report.fetched == 50
        assert searches(api)[0]["cursor"] == "200"
        ids = lake_ids(lake)
        assert len(ids) == len(set(ids)) == 250
        assert lake.read_cursor("bluesky", "dataengineering").newest_time == T0 + timedelta(
            minutes=249, seconds=-2
        )


def test_bluesky_limit_then_resume(tmp_path, bsky_env):
    api = FakeBluesky([bluesky_post(n) for n in range(120)])
    with serving(api):
        cfg = config(tmp_path / "lake", api, limit=70, page_size=50)
        assert collect_source(cfg, "bluesky", "run1").fetched == 70
        assert collect_source(cfg, "bluesky", "run2").fetched == 50
        ids = lake_ids(Lake(cfg.lake))
        assert len(ids) == len(set(ids)) == 120


def test_bluesky_rate_limit_5xx_and_malformed_page(bsky_env):
    api = FakeBluesky([bluesky_post(n) for n in range(30)])
    reset = int(datetime.now(UTC).timestamp()) + 60
    api.fail(
        Reply(
            429,
            {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
            {"ratelimit-remaining": "0", "ratelimit-reset": str(reset)},
        ),
        when=lambda r: r.path.endswith("searchPosts"),
    )
    api.fail(Reply(502, b"<html>bad gateway</html>"), when=lambda r: r.path.endswith("searchPosts"))
    api.fail(not_json(), when=lambda r: r.query.get("cursor") == "20", times=5)
    with serving(api):
        source = BlueskySource(settings(api, page_size=10), **bsky_env.options())
        batches = list(source.fetch("dataengineering", WalkCursor(), None))
    assert [b.posts.num_rows for b in batches] == [10, 10, 0]
    assert 59 <= bsky_env[0] <= 63  # the announced reset, then backoff for the 502
    assert (
        "searchPosts?q=%23dataengineering" in batches[-1].warnings[0]
        and "not JSON" in batches[-1].warnings[0]
    )
    assert batches[-1].cursor.walk.token == "20"


def test_bluesky_empty_search(bsky_env):
    api = FakeBluesky([])
    with serving(api):
        batches = list(BlueskySource(settings(api)).fetch("dataengineering", WalkCursor(), None))
    assert [b.posts.num_rows for b in batches] == [0] and batches[0].cursor == WalkCursor()


def test_bluesky_missing_secrets_stop_before_any_request(monkeypatch):
    monkeypatch.setenv("BLUESKY_HANDLE", "me.bsky.social")
    monkeypatch.delenv("BLUESKY_APP_PASSWORD", raising=False)
    with pytest.raises(
        ConfigError, match=r"\[bluesky\] app_password_env = BLUESKY_APP_PASSWORD.*App passwords"
    ):
        BlueskySource(BlueskySettings())
    monkeypatch.delenv("BLUESKY_HANDLE")
    with pytest.raises(ConfigError, match=r"handle_env = BLUESKY_HANDLE"):
        BlueskySettings().check()


def test_bluesky_settings():
    parse = functools.partial(parse_section, BlueskySettings, section="bluesky", where="test.conf")
    assert parse({"lang": "de", "page_size": "25"}).lang == "de"
    with pytest.raises(ConfigError, match="page_size: must be between 1 and 100"):
        parse({"page_size": "0"})
