"""The `snscrape` source: Twitter search through snscrape, as the original project did.

Kept for the design card, not for use: Twitter (X) withdrew the logged-out search that snscrape
scrapes in 2023, and has refused it since. When it refuses, this source stops with a
`SourceError` that says so and names the sources that work; the collector then goes on with the
other sources. snscrape is not a dependency of the project (``pip install snscrape`` to try it).

Should it answer, posts come 100 a page, newest first, through the search operators
``since_id:`` (the last run's newest post) and ``max_id:`` (the page token, one below the oldest
post of the page before). Each page of snscrape ``Tweet`` objects is rewritten as an X API v2
page and mapped by the same code as the `x` and `file` sources, so the rows are the same.
"""

from __future__ import annotations

import importlib
import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flows.cursors import Walk
from flows.sources.base import Record, SourceError
from flows.sources.paging import Page, PagedSource
from flows.sources.x_payload import x_page_posts

WORKING_SOURCES = (
    "Use the sources that work today, in [pipeline] sources: x (X API v2 recent search; pay per "
    "use, a bearer token), mastodon (public hashtag timelines, no account), bluesky (search with "
    "an app password), reddit (an OAuth app), or file (X exports you already have). See "
    "docs/sources.md."
)


@dataclass(frozen=True)
class SnscrapeSettings:
    """`[snscrape]`: Twitter search through snscrape (refused by Twitter since 2023).

    Attributes:
        page_size: posts per batch.
    """

    page_size: int = 100

    def __post_init__(self) -> None:
        if self.page_size < 1:
            raise ValueError(f"page_size: must be at least 1, got {self.page_size}")


class SnscrapeSource(PagedSource):
    """Twitter's search for the hashtag, scraped; stops with a clear error when refused."""

    name = "snscrape"

    def __init__(self, settings: SnscrapeSettings) -> None:
        self.settings = settings

    def page(self, hashtag: str, walk: Walk, size: int) -> Page:
        twitter = _twitter_module()
        query = " ".join(
            part
            for part in (
                f"#{hashtag}",
                f"since_id:{walk.floor}" if walk.floor else "",
                f"max_id:{walk.token}" if walk.token else "",
            )
            if part
        )
        try:
            scraper = twitter.TwitterSearchScraper(query)
            tweets = list(itertools.islice(scraper.get_items(), size))
        except Exception as exc:  # noqa: BLE001 (snscrape fails in many ways when Twitter changes)
            raise SourceError(
                f"snscrape: Twitter refused the search {query!r} ({type(exc).__name__}: {exc}). "
                f"Twitter has blocked snscrape since 2023, so this source cannot collect. "
                f"{WORKING_SOURCES}"
            ) from None
        ids = [int(tweet.id) for tweet in tweets]
        full = len(tweets) == size
        return Page(
            _as_api_page(tweets),
            str(min(ids) - 1) if full else None,
            str(max(ids)) if ids else None,
        )

    def to_posts(
        self, hashtag: str, key: str, payload: Any, collected_at: datetime
    ) -> list[Record | str]:
        return x_page_posts(payload, hashtag, collected_at)


def _twitter_module() -> Any:
    try:
        return importlib.import_module("snscrape.modules.twitter")
    except ImportError as exc:
        raise SourceError(
            f"snscrape: not installed ({exc}); `pip install snscrape` to try it, but Twitter has "
            f"refused snscrape since 2023. {WORKING_SOURCES}"
        ) from None


def _as_api_page(tweets: list[Any]) -> dict[str, Any]:
    """snscrape ``Tweet`` objects as an X API v2 search page (``data`` and ``includes.users``)."""
    data, users = [], {}
    for tweet in tweets:
        user = tweet.user
        users[str(user.id)] = {
            "id": str(user.id),
            "username": user.username,
            "name": user.displayname,
        }
        text = getattr(tweet, "rawContent", None) or getattr(tweet, "content", "")
        links = getattr(tweet, "links", None) or []
        references = [
            {"type": kind, "id": str(target.id)}
            for kind, target in (
                ("retweeted", getattr(tweet, "retweetedTweet", None)),
                ("quoted", getattr(tweet, "quotedTweet", None)),
            )
            if target is not None
        ]
        if getattr(tweet, "inReplyToTweetId", None):
            references.append({"type": "replied_to", "id": str(tweet.inReplyToTweetId)})
        data.append(
            {
                "id": str(tweet.id),
                "text": text,
                "created_at": tweet.date.isoformat(),
                "author_id": str(user.id),
                "lang": getattr(tweet, "lang", None),
                "source": getattr(tweet, "sourceLabel", None),
                "public_metrics": {
                    "like_count": tweet.likeCount,
                    "retweet_count": tweet.retweetCount,
                    "reply_count": tweet.replyCount,
                    "quote_count": getattr(tweet, "quoteCount", None),
                },
                "entities": {
                    "hashtags": [{"tag": tag} for tag in getattr(tweet, "hashtags", None) or ()],
                    "mentions": [
                        {"username": mention.username}
                        for mention in getattr(tweet, "mentionedUsers", None) or ()
                    ],
                    "urls": [
                        {"url": link.tcourl or link.url, "expanded_url": link.url} for link in links
                    ],
                },
                "referenced_tweets": references,
            }
        )
    return {"data": data, "includes": {"users": list(users.values())}}
