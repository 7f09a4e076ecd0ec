"""Each network's bulk lookup against its local fake: the API's batch sizes, counters as they
are now, and posts gone (left out of a batch, 404 on older Mastodon, removed on Reddit)."""

from __future__ import annotations

import pytest
from fake_apis import FakeTime, Reply, serving
from fake_networks import (
    FakeBluesky,
    FakeMastodon,
    FakeReddit,
    FakeX,
    bluesky_post,
    mastodon_status,
    reddit_link,
    x_tweet,
)

from flows.sources.base import Spent
from flows.sources.bluesky import BlueskySettings
from flows.sources.lookups import (
    BlueskyLookup,
    Known,
    MastodonLookup,
    RedditLookup,
    XLookup,
    mastodon_origin,
)
from flows.sources.mastodon import MastodonSettings
from flows.sources.reddit import RedditSettings
from flows.sources.x import PRICE_PER_POST, BudgetSpent, XSettings


@pytest.fixture
def fast() -> dict:
    return FakeTime().options(timeout=2)


def test_bluesky_reads_25_uris_a_call_without_an_account_and_missing_ones_are_gone(fast):
    api = FakeBluesky([bluesky_post(n) for n in range(60)])
    with serving(api):
        lookup = BlueskyLookup(BlueskySettings(appview_url=f"{api.url}/xrpc"), **fast)
        api.posts[3]["likeCount"] = 1000
        gone = api.posts.pop(10)["uri"]
        found = lookup.lookup([Known(post["uri"]) for post in api.posts] + [Known(gone)])
    calls = [r for r in api.requests if r.path.endswith("getPosts")]
    assert [len(r.params["uris"]) for r in calls] == [25, 25, 10]
    assert all("authorization" not in r.headers for r in calls) and api.sessions == 0
    assert found.counters[api.posts[3]["uri"]]["like_count"] == 1000
    assert len(found.counters) == 59 and found.gone == {gone: "missing-from-batch"}
    assert lookup.usage.requests == 3


def test_mastodon_asks_the_origin_20_ids_a_call_and_older_servers_one_by_one(fast):
    new, old = FakeMastodon(), FakeMastodon()
    old.version = (4, 2)
    with serving(new, old):
        hosts = {api: api.url.removeprefix("http://") for api in (new, old)}
        for api, host in hosts.items():
            # on its origin, a status's id is the one its uri ends with
            api.statuses = [mastodon_status(1000 + n, host, n) for n in range(25)]
        settings = MastodonSettings(instances=(new.url, old.url))
        lookup = MastodonLookup(settings, **fast)
        posts = [Known(s["uri"], s["url"]) for api in (new, old) for s in api.statuses]
        new.statuses[0]["favourites_count"] = 77
        deleted = {new.statuses.pop(5)["uri"], old.statuses.pop(7)["uri"]}
        found = lookup.lookup(posts + [Known("https://misskey.example/notes/9abc")])
    assert [len(r.params["id[]"]) for r in new.requests] == [20, 5]
    # the older server: its 404 for the batch path, then each status
    assert old.requests[0].path == "/api/v1/statuses" and len(old.requests) == 1 + 25
    assert found.counters[new.statuses[0]["uri"]]["like_count"] == 77
    assert set(found.gone) == deleted and len(found.counters) == 48
    assert sorted(found.gone.values()) == ["lookup-gone", "missing-from-batch"]
    assert found.skipped == ["https://misskey.example/notes/9abc: not a Mastodon status uri"]


def test_mastodon_skips_an_instance_that_refuses_and_reads_the_others(fast):
    good, bad = FakeMastodon(), FakeMastodon()
    with serving(good, bad):
        for api in (good, bad):
            host = api.url.removeprefix("http://")
            api.statuses = [mastodon_status(1000 + n, host, n) for n in range(3)]
        bad.fail(Reply(401, {"error": "This API requires an authenticated user"}), times=99)
        lookup = MastodonLookup(MastodonSettings(instances=(good.url, bad.url)), **fast)
        found = lookup.lookup([Known(s["uri"]) for api in (bad, good) for s in api.statuses])
    assert len(found.counters) == 3 and found.gone == {}
    assert len(found.skipped) == 1 and "401" in found.skipped[0]


def test_mastodon_origin_from_the_uri_or_the_page_url():
    assert mastodon_origin(Known("https://m.example/users/al/statuses/123")) == (
        "m.example",
        "123",
    )
    assert mastodon_origin(Known("https://m.example/x/y", "https://m.example/@al/124")) == (
        "m.example",
        "124",
    )


@pytest.fixture
def reddit_env(monkeypatch):
    monkeypatch.setenv("REDDIT_CLIENT_ID", "app-id")
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", "app-secret-value")


def test_reddit_reads_100_names_a_call_and_a_removed_post_is_gone(fast, reddit_env):
    api = FakeReddit([reddit_link(n) for n in range(150)])
    with serving(api):
        settings = RedditSettings(base_url=api.url, token_url=f"{api.url}/api/v1/access_token")
        lookup = RedditLookup(settings, **fast)
        links = [link["data"] for link in api.links]
        links[0].update(score=321, num_comments=12)
        links[1].update(removed_by_category="deleted", selftext="[deleted]", author="[deleted]")
        vanished = api.links.pop(2)["data"]["name"]
        found = lookup.lookup([Known(link["name"]) for link in links])
    calls = [r for r in api.requests if r.path == "/api/info"]
    assert [len(r.query["id"].split(",")) for r in calls] == [100, 50]
    assert found.counters[links[0]["name"]] == {
        "like_count": 321,
        "repost_count": 0,
        "reply_count": 12,
        "quote_count": None,
    }
    assert found.gone == {links[1]["name"]: "removed", vanished: "missing-from-batch"}


def test_x_reads_100_ids_a_call_billed_per_post_within_the_run_budget(fast, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", "test-bearer-token")
    api = FakeX([x_tweet(n) for n in range(250)])
    with serving(api):
        settings = XSettings(base_url=f"{api.url}/2", refresh=True, max_cost_per_run=1.0)
        lookup = XLookup(settings, **fast)
        api.tweets[0]["public_metrics"]["like_count"] = 999
        gone = api.tweets.pop(1)["id"]
        ids = [t["id"] for t in api.tweets] + [gone]
        with pytest.raises(BudgetSpent, match=r"max_cost_per_run = 1.00 USD"):
            lookup.lookup([Known(i) for i in ids])
        # 1.00 USD buys 200 posts: two full calls, and no call that could pass it
        sizes = [len(r.query["ids"].split(",")) for r in api.requests]
        assert sizes == [100, 100] and api.billed["posts"] == 200
        assert lookup.usage.cost_usd == pytest.approx(200 * PRICE_PER_POST)
        # the next run, with what this one spent, reads the rest
        rest = XLookup(settings, spent=Spent(this_month_usd=1.0), **fast)
        found = rest.lookup([Known(i) for i in ids[200:]])
    assert found.gone == {gone: "missing-from-batch"} and len(found.counters) == 49
    assert api.billed["posts"] == 249


def test_a_lookup_waits_for_the_announced_rate_limit_reset_then_goes_on():
    import time

    fake = FakeTime()
    api = FakeBluesky([bluesky_post(n) for n in range(30)])
    reset = int(time.time()) + 40
    headers = {"ratelimit-remaining": "0", "ratelimit-reset": str(reset)}
    api.fail(
        Reply(429, {"error": "RateLimitExceeded"}, headers),
        when=lambda r: r.path.endswith("getPosts"),
    )
    with serving(api):
        lookup = BlueskyLookup(
            BlueskySettings(appview_url=f"{api.url}/xrpc"), **fake.options(timeout=2)
        )
        found = lookup.lookup([Known(post["uri"]) for post in api.posts])
    assert len(found.counters) == 30 and found.gone == {}
    assert lookup.usage.retries == 1 and 38 <= lookup.usage.rate_limit_wait_s <= 43
    assert fake == [lookup.usage.rate_limit_wait_s]


def test_an_x_retweet_takes_its_originals_counters_as_collection_does(fast, monkeypatch):
    monkeypatch.setenv("X_BEARER_TOKEN", "test-bearer-token")
    original = x_tweet(50)
    original["public_metrics"]["like_count"] = 500
    retweet = x_tweet(1, retweet_of=original["id"])
    api = FakeX([retweet], referenced=[original])
    with serving(api):
        settings = XSettings(base_url=f"{api.url}/2", refresh=True, retweets=True)
        lookup = XLookup(settings, **fast)
        found = lookup.lookup([Known(retweet["id"])])
    assert found.counters[retweet["id"]]["like_count"] == 500
    assert api.requests[0].query["expansions"] == "referenced_tweets.id"
    assert lookup.usage.cost_usd == pytest.approx(2 * PRICE_PER_POST) and api.billed["posts"] == 2
