"""The snscrape source: Twitter's refusal gives a clear error and the other sources still run."""

from __future__ import annotations

import functools
import sys
import types
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from fake_apis import FakeTime, serving
from fake_networks import FakeMastodon, mastodon_status

from flows.sources import registry
from flows.stages.collect import collect, collect_source
from flows.config import Config, PipelineConfig, TwitterConfig
from flows.lake.lake import Lake
from flows.schema import POST_SCHEMA
from flows.cursors import WalkCursor
from flows.sources.base import SourceError
from flows.sources.mastodon import MastodonSettings, MastodonSource
from flows.sources.snscrape import SnscrapeSettings, SnscrapeSource

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
REFUSAL = "4 requests to https://twitter.com/search?f=live&q=%23dataengineering failed, giving up."


class ScraperException(Exception):
    """snscrape.base.ScraperException"""


def tweet(n: int) -> SimpleNamespace:
    """An object with the attributes of snscrape 0.7's `Tweet`."""
    user = SimpleNamespace(
        id=500 + n % 3, username=f"tweeter{n % 3}", displayname=f"Tweeter {n % 3}"
    )
    return SimpleNamespace(
        id=1_800_000_000_000_000_000 + n,
        url=f"https://twitter.com/tweeter{n % 3}/status/{1_800_000_000_000_000_000 + n}",
        date=T0 + timedelta(minutes=n),
        rawContent=f"Tweet {n} about #DataEngineering with @tweeter{(n + 1) % 3}",
        user=user,
        replyCount=1,
        retweetCount=2,
        likeCount=n,
        quoteCount=0,
        lang="en",
        sourceLabel="Twitter Web App",
        hashtags=["DataEngineering"],
        mentionedUsers=[SimpleNamespace(username=f"tweeter{(n + 1) % 3}")],
        links=[
            SimpleNamespace(url=f"https://example.com/{n}", tcourl=f"https://t.co/{n}", text="")
        ],
        retweetedTweet=None,
        quotedTweet=None,
        inReplyToTweetId=None,
    )


@pytest.fixture
def fake_snscrape(monkeypatch):
    """Installs a stand-in `snscrape.modules.twitter`; `.tweets` is what Twitter answers, or
    `.refuse` makes it fail as snscrape does since 2023."""
    twitter = types.ModuleType("snscrape.modules.twitter")
    twitter.tweets, twitter.refuse, twitter.queries = [], False, []

    class TwitterSearchScraper:
        def __init__(self, query: str) -> None:
            self.query = query
            twitter.queries.append(query)

        def get_items(self):
            if twitter.refuse:
                raise ScraperException(REFUSAL)
            since = max_id = None
            for part in self.query.split():
                if part.startswith("since_id:"):
                    since = int(part[9:])
                if part.startswith("max_id:"):
                    max_id = int(part[7:])
            for item in sorted(twitter.tweets, key=lambda t: t.id, reverse=True):
                if (since is None or item.id > since) and (max_id is None or item.id <= max_id):
                    yield item

    twitter.TwitterSearchScraper = TwitterSearchScraper
    package, modules = types.ModuleType("snscrape"), types.ModuleType("snscrape.modules")
    package.modules, modules.twitter = modules, twitter
    monkeypatch.setitem(sys.modules, "snscrape", package)
    monkeypatch.setitem(sys.modules, "snscrape.modules", modules)
    monkeypatch.setitem(sys.modules, "snscrape.modules.twitter", twitter)
    return twitter


def test_snscrape_refusal_says_so_and_names_the_working_sources(fake_snscrape):
    fake_snscrape.refuse = True
    with pytest.raises(SourceError) as error:
        list(SnscrapeSource(SnscrapeSettings()).fetch("dataengineering", WalkCursor(), None))
    message = str(error.value)
    assert "Twitter refused" in message and REFUSAL in message and "since 2023" in message
    for working in ("x (X API v2", "mastodon", "bluesky", "reddit", "file"):
        assert working in message


def test_snscrape_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "snscrape", None)
    with pytest.raises(
        SourceError, match="not installed.*pip install snscrape.*refused snscrape since 2023"
    ):
        list(SnscrapeSource(SnscrapeSettings()).fetch("dataengineering", WalkCursor(), None))


def test_snscrape_refusal_stops_only_that_source(tmp_path, fake_snscrape, monkeypatch):
    fake_snscrape.refuse = True
    fake = FakeTime()
    monkeypatch.setitem(
        registry._SOURCES, "mastodon", functools.partial(MastodonSource, **fake.options())
    )
    api = FakeMastodon([mastodon_status(i + 1, "social.example", i) for i in range(12)])
    with serving(api):
        config = Config(
            twitter=TwitterConfig(hashtag="dataengineering"),
            pipeline=PipelineConfig(sources=("snscrape", "mastodon"), lake=str(tmp_path / "lake")),
            source_settings={
                "snscrape": SnscrapeSettings(),
                "mastodon": MastodonSettings(instances=(api.url,)),
            },
        )
        snscrape, mastodon = collect(config)
    assert "Twitter refused" in snscrape.error and snscrape.new == 0
    assert mastodon.error is None and mastodon.new == 12


def test_snscrape_tweets_map_like_x_posts_and_resume(tmp_path, fake_snscrape):
    fake_snscrape.tweets = [tweet(n) for n in range(250)]
    config = Config(
        twitter=TwitterConfig(hashtag="dataengineering", limit=150),
        pipeline=PipelineConfig(sources=("snscrape",), lake=str(tmp_path / "lake")),
        source_settings={"snscrape": SnscrapeSettings()},
    )
    assert collect_source(config, "snscrape", "run1").new == 150
    assert collect_source(config, "snscrape", "run2").new == 100
    assert fake_snscrape.queries[-1].startswith("#dataengineering max_id:")
    fake_snscrape.tweets.append(tweet(300))
    assert collect_source(config, "snscrape", "run3").new == 1
    assert fake_snscrape.queries[-1] == f"#dataengineering since_id:{1_800_000_000_000_000_249}"
    lake = Lake(config.lake)
    [table] = [lake.read_posts(p) for p in lake.manifest() if "run3" in p]
    assert table.schema.equals(POST_SCHEMA)
    row = table.to_pylist()[0]
    assert row["post_id"] == "x:1800000000000000300"  # the same key as the x source's
    assert row["url"] == "https://x.com/tweeter0/status/1800000000000000300"
    assert (row["author_handle"], row["author_name"], row["like_count"]) == (
        "tweeter0",
        "Tweeter 0",
        300,
    )
    assert (row["hashtags"], row["mentions"], row["links"]) == (
        ["dataengineering"],
        ["tweeter1"],
        ["https://example.com/300"],
    )
    assert (row["client"], row["lang"], row["created_at"]) == (
        "Twitter Web App",
        "en",
        T0 + timedelta(minutes=300),
    )
