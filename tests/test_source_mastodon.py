"""The mastodon source against local fake instances: paging, federation copies, faults, resume."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import pytest
from fake_apis import FakeTime, Reply, not_json, serving
from fake_networks import FakeMastodon, mastodon_status

from flows.sources import registry
from flows.stages.collect import collect_source
from flows.config import Config, PipelineConfig, TwitterConfig, parse_section
from flows.settings import ConfigError
from flows.lake.lake import Lake
from flows.schema import POST_SCHEMA, posts_table
from flows.cursors import WalkCursor
from flows.sources.base import SourceError
from flows.sources.mastodon import MastodonSettings, MastodonSource, html_to_text, status_to_post

NOW = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.fixture
def sleeps(monkeypatch) -> FakeTime:
    """collect_source builds sources that record their sleeps instead of sleeping."""
    fake = FakeTime()
    monkeypatch.setitem(
        registry._SOURCES, "mastodon", functools.partial(MastodonSource, **fake.options())
    )
    return fake


def statuses(n: int, host: str = "social.example", first_id: int = 1, start: int = 0) -> list[dict]:
    return [mastodon_status(first_id + i, host, start + i) for i in range(n)]


def config(lake, *instances: str, limit: int = 0, page_size: int = 40) -> Config:
    settings = MastodonSettings(instances=instances, page_size=page_size)
    return Config(
        twitter=TwitterConfig(hashtag="dataengineering", limit=limit),
        pipeline=PipelineConfig(sources=("mastodon",), lake=str(lake)),
        source_settings={"mastodon": settings},
    )


def lake_ids(lake: Lake) -> list[str]:
    return [
        pid
        for path in lake.manifest()
        for pid in lake.read_posts(path).column("post_id").to_pylist()
    ]


def page_requests(api: FakeMastodon) -> list[dict]:
    return [r.query for r in api.requests if r.path.startswith("/api/v1/timelines/tag/")]


def test_mastodon_status_maps_to_the_post_schema():
    status = mastodon_status(
        7,
        "social.example",
        3,
        host="other.example",
        in_reply_to_id="6",
        quotes_count=2,
        mentions=[
            {
                "id": "1",
                "username": "bob",
                "acct": "bob@pipes.example",
                "url": "https://pipes.example/@bob",
            }
        ],
    )
    post = status_to_post(status, "dataengineering", NOW)
    table = posts_table([post])
    assert table.schema.equals(POST_SCHEMA)
    assert post == {
        "post_id": "mastodon:https://social.example/users/user3/statuses/1003",
        "source": "mastodon",
        "native_id": "https://social.example/users/user3/statuses/1003",
        "hashtag": "dataengineering",
        "url": "https://social.example/@user3/1003",
        "author_handle": "user3@social.example",
        "author_name": "User 3",
        "created_at": datetime(2026, 11, 20, 8, 3, tzinfo=UTC),
        "collected_at": NOW,
        "text": "Post 3 about #dataengineering & pipelines\n\nsee https://example.com/3",
        "lang": "en",
        "like_count": 3,
        "repost_count": 3,
        "reply_count": 0,
        "quote_count": 2,
        "is_repost": False,
        "in_reply_to": "6",
        "hashtags": ["dataengineering"],
        "mentions": ["bob@pipes.example"],
        "links": ["https://example.com/3"],
        "client": None,  # only the author's own instance tells the posting app
        "quoted_post": None,
    }
    local = status_to_post(mastodon_status(7, "social.example", 3), "dataengineering", NOW)
    assert local["author_handle"] == "user3@social.example"  # acct has no domain there
    assert local["client"] == "Web"


def test_mastodon_boost_shows_the_boosted_text():
    original = mastodon_status(5, "social.example", 1)
    boost = mastodon_status(9, "social.example", 2, reblog=original, content="")
    post = status_to_post(boost, "dataengineering", NOW)
    assert post["is_repost"] is True
    assert post["text"].startswith("Post 1 about")
    assert post["author_handle"] == "user2@social.example"


def test_mastodon_html_to_text():
    assert html_to_text("<p>a&lt;b &#128512;</p><p>line<br />two</p>") == "a<b 😀\n\nline\ntwo"
    assert html_to_text("") == ""


def test_mastodon_pages_backwards_then_only_new_posts(tmp_path, sleeps):
    api = FakeMastodon(statuses(95))
    with serving(api):
        cfg = config(tmp_path / "lake", api.url)
        report = collect_source(cfg, "mastodon", "run1")
        assert (report.error, report.fetched, report.new) == (None, 95, 95)
        queries = page_requests(api)
        assert [q.get("max_id") for q in queries] == [None, "56", "16", "1"]  # the last is empty
        assert [q["limit"] for q in queries] == ["40"] * len(queries)
        lake = Lake(cfg.lake)
        cursor = lake.read_cursor("mastodon", "dataengineering")
        assert cursor.walk is None
        assert cursor.floors == {api.url: "95"}
        assert cursor.newest_time == datetime(2026, 11, 20, 9, 34, tzinfo=UTC)

        api.statuses += statuses(3, first_id=96, start=95)
        api.requests.clear()
        report = collect_source(cfg, "mastodon", "run2")
        assert (report.fetched, report.new) == (3, 3)
        assert page_requests(api)[0]["since_id"] == "95"
        ids = lake_ids(lake)
        assert len(ids) == len(set(ids)) == 98


def test_mastodon_same_post_on_two_instances_is_kept_once(tmp_path, sleeps):
    home = FakeMastodon(statuses(30, host="home.example"))
    # the other instance holds 20 of the same posts under other local ids, and 5 of its own
    copies = [
        mastodon_status(500 + i, "home.example", i, host="other.example") for i in range(10, 30)
    ]
    other = FakeMastodon(copies + statuses(5, host="other.example", first_id=600, start=100))
    with serving(home, other):
        cfg = config(tmp_path / "lake", home.url, other.url)
        report = collect_source(cfg, "mastodon", "run1")
        assert (report.fetched, report.new) == (55, 35)
        ids = lake_ids(Lake(cfg.lake))
        assert len(ids) == len(set(ids)) == 35


def test_mastodon_kill_after_page_2_resumes_at_page_3(tmp_path, sleeps):
    api = FakeMastodon(statuses(100))
    # the process "dies" on the third page: nothing more comes from this run
    api.fail(
        Reply(403, {"error": "This action is not allowed"}),
        when=lambda r: r.query.get("max_id") == "21",
    )
    with serving(api):
        cfg = config(tmp_path / "lake", api.url)
        report = collect_source(cfg, "mastodon", "run1")
        assert report.new == 80
        assert "403" in report.error and "[mastodon] instances" in report.error
        lake = Lake(cfg.lake)
        assert lake.read_cursor("mastodon", "dataengineering").walk.token == "21"

        api.requests.clear()
        report = collect_source(cfg, "mastodon", "run2")
        assert report.error is None
        assert page_requests(api)[0]["max_id"] == "21"  # page 3, not page 1 again
        assert report.fetched == 20
        ids = lake_ids(lake)
        assert len(ids) == len(set(ids)) == 100
        cursor = lake.read_cursor("mastodon", "dataengineering")
        assert cursor.walk is None and cursor.floors == {api.url: "100"}


def test_mastodon_limit_stops_mid_page_and_the_next_run_goes_on(tmp_path, sleeps):
    api = FakeMastodon(statuses(60))
    with serving(api):
        cfg = config(tmp_path / "lake", api.url, limit=25, page_size=20)
        assert collect_source(cfg, "mastodon", "run1").new == 25
        assert collect_source(cfg, "mastodon", "run2").new == 25
        assert collect_source(cfg, "mastodon", "run3").new == 10
        ids = lake_ids(Lake(cfg.lake))
        assert len(ids) == len(set(ids)) == 60


def test_mastodon_a_stream_gets_what_the_others_leave_of_the_limit(tmp_path, sleeps):
    one, two = FakeMastodon(statuses(30)), FakeMastodon(statuses(40, host="two.example"))
    with serving(one), serving(two):
        cfg = config(tmp_path / "lake", one.url, two.url, limit=50, page_size=40)
        assert collect_source(cfg, "mastodon", "run1").new == 50
        assert [r["limit"] for r in page_requests(two)] == ["20"]  # what the limit left
        one.statuses += statuses(5, first_id=31, start=30)  # new posts between the runs
        two.statuses += statuses(3, host="two.example", first_id=41, start=40)
        new = [collect_source(cfg, "mastodon", f"run{n}").new for n in range(2, 5)]
        assert new == [25, 3, 0]  # two's unfinished walk, one's new posts; two's new posts
        ids = lake_ids(Lake(cfg.lake))
        assert len(ids) == len(set(ids)) == 78


def test_mastodon_an_instance_that_shows_visitors_its_own_posts_only(tmp_path, caplog):
    local = statuses(5)  # written on the instance
    remote = [
        mastodon_status(100 + n, "elsewhere.example", n, host="social.example") for n in range(3)
    ]
    api = FakeMastodon(local + remote, remote_needs_login=True)
    with serving(api):
        cfg = config(tmp_path / "lake", api.url)
        report = collect_source(cfg, "mastodon", "run1")
        assert (report.error, report.new) == (None, 5)
        assert "shows visitors only its own posts" in caplog.text
        asked = [q.get("local") for q in page_requests(api)]
        assert asked[0] is None and set(asked[1:]) == {"true"}  # one 401, then its own posts
        api.statuses += statuses(2, first_id=200, start=10)
        assert collect_source(cfg, "mastodon", "run2").new == 2
    ids = lake_ids(Lake(cfg.lake))
    assert len(ids) == len(set(ids)) == 7 and not any("elsewhere" in i for i in ids)


def test_mastodon_waits_for_the_announced_reset_on_429(tmp_path):
    api = FakeMastodon(statuses(50))
    reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    api.fail(
        Reply(
            429,
            {"error": "Too many requests"},
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
        )
    )
    slept = FakeTime()
    with serving(api):
        source = MastodonSource(MastodonSettings(instances=(api.url,)), **slept.options())
        batches = list(source.fetch("dataengineering", WalkCursor(), None))
    assert sum(b.posts.num_rows for b in batches) == 50
    assert len(slept) == 1 and 29 <= slept[0] <= 32


def test_mastodon_sleeps_before_the_window_is_spent_not_after(tmp_path):
    api = FakeMastodon(statuses(50), rate_limit=1)
    slept = FakeTime()
    with serving(api):
        source = MastodonSource(MastodonSettings(instances=(api.url,)), **slept.options())
        batches = list(source.fetch("dataengineering", WalkCursor(), None))
    assert sum(b.posts.num_rows for b in batches) == 50
    assert slept and 295 <= slept[0] <= 302  # the fake's window resets in 5 minutes
    assert all(r.query for r in api.requests)  # no 429 was needed


def test_mastodon_retries_5xx_with_growing_pauses(tmp_path):
    api = FakeMastodon(statuses(10))
    api.fail(Reply(503, b"upstream down"), times=3)
    slept = FakeTime()
    with serving(api):
        source = MastodonSource(
            MastodonSettings(instances=(api.url,)), **slept.options(backoff=1.0)
        )
        batches = list(source.fetch("dataengineering", WalkCursor(), None))
    assert sum(b.posts.num_rows for b in batches) == 10
    assert len(slept) == 3
    assert 1 <= slept[0] <= 2 and 2 <= slept[1] <= 3 and 4 <= slept[2] <= 5  # doubling, jitter


def test_mastodon_gives_up_after_bounded_retries(tmp_path):
    api = FakeMastodon(statuses(10))
    api.fail(Reply(502, b"bad gateway"), times=100)
    with serving(api):
        source = MastodonSource(
            MastodonSettings(instances=(api.url,)), **FakeTime().options(attempts=3)
        )
        with pytest.raises(SourceError, match=r"answered 502 \(gave up after 3 tries\)"):
            list(source.fetch("dataengineering", WalkCursor(), None))
        assert len(api.requests) == 3


def test_mastodon_malformed_page_is_reported_and_retried_next_run(tmp_path, sleeps):
    api = FakeMastodon(statuses(100))
    api.fail(not_json(), when=lambda r: r.query.get("max_id") == "61", times=5)
    with serving(api):
        cfg = config(tmp_path / "lake", api.url)
        report = collect_source(cfg, "mastodon", "run1")
        assert report.error is None and report.new == 40
        [warning] = report.warnings
        assert f"GET {api.url}/api/v1/timelines/tag/dataengineering?limit=40&max_id=61" in warning
        assert "not JSON" in warning and "<html>" in warning

        report = collect_source(cfg, "mastodon", "run2")
        assert report.new == 60 and not report.warnings
        ids = lake_ids(Lake(cfg.lake))
        assert len(ids) == len(set(ids)) == 100


def test_mastodon_empty_timeline_and_a_refusing_instance(tmp_path, sleeps):
    empty = FakeMastodon([])
    closed = FakeMastodon(statuses(5))
    closed.fail(Reply(401, {"error": "This method requires an authenticated user"}), times=10)
    with serving(empty, closed):
        cfg = config(tmp_path / "lake", empty.url, closed.url)
        report = collect_source(cfg, "mastodon", "run1")
        assert report.error is None and report.new == 0
        [warning] = report.warnings
        assert closed.url in warning and "requires an authenticated user" in warning
        assert "remove it from [mastodon] instances" in warning

        only_closed = config(tmp_path / "lake2", closed.url)
        assert "401" in collect_source(only_closed, "mastodon", "run2").error


def test_mastodon_rate_limit_too_far_away_stops_with_when_to_come_back(tmp_path):
    api = FakeMastodon(statuses(5))
    reset = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    api.fail(Reply(429, {"error": "Too many requests"}, {"X-RateLimit-Reset": reset}))
    with serving(api):
        source = MastodonSource(MastodonSettings(instances=(api.url,)), **FakeTime().options())
        with pytest.raises(SourceError, match="resets at .* in 120 min"):
            list(source.fetch("dataengineering", WalkCursor(), None))


def test_mastodon_settings():
    parse = functools.partial(
        parse_section, MastodonSettings, section="mastodon", where="test.conf"
    )
    settings = parse(
        {"instances": "mastodon.social, http://127.0.0.1:8080/\nhttps://fosstodon.org"}
    )
    assert settings.instances == (
        "https://mastodon.social",
        "http://127.0.0.1:8080",
        "https://fosstodon.org",
    )
    with pytest.raises(ConfigError, match=r"\[mastodon\] instances: 'ftp://x.org'"):
        parse({"instances": "ftp://x.org"})
    with pytest.raises(ConfigError, match="without a path"):
        parse({"instances": "https://x.org/api/v1"})
    with pytest.raises(ConfigError, match="page_size: must be between 1 and 40"):
        parse({"page_size": "80"})
    assert "Secret" not in repr(MastodonSource(MastodonSettings()).client)
