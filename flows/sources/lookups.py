"""Reading collected posts again: each network's bulk lookup, for their counters and deletions.

A lookup takes posts by their ``native_id`` (and ``url``) and answers, through the shared
`flows.sources.http.HttpClient` (retries, rate-limit waits, typed errors), the counters of those
it found and how each of the others is gone:

- `BlueskyLookup`: ``app.bsky.feed.getPosts`` on the public AppView (``[bluesky] appview_url``,
  no account), 25 URIs a call; a URI left out of the answer is gone.
- `MastodonLookup`: on the instance the post comes from (its ``uri`` names it, and its id there),
  ``GET /api/v1/statuses?id[]=`` (Mastodon 4.3+), 20 ids a call, those left out gone; a server
  older than 4.3 answers that path 404 and is asked ``GET /api/v1/statuses/:id`` one by one,
  404 or 410 meaning gone. An instance that refuses or cannot be reached is skipped for the run,
  its posts neither read nor gone.
- `RedditLookup`: ``/api/info?id=t3_…``, 100 a call; Reddit keeps answering for a deleted or
  removed post, with ``removed_by_category`` set.
- `XLookup`: ``GET /2/tweets?ids=``, 100 a call, those left out gone. Each post read is billed,
  so it runs only with ``[x] refresh = true``, and no call starts that could pass ``[x]
  max_cost_per_run`` or ``max_cost_per_month`` (`flows.sources.x.affordable`).

A lookup is only ever a read: it changes nothing at the source and needs no secret beyond those
its source's collection uses (Bluesky's needs none).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

from flows.sources.base import SourceError, Spent, Usage
from flows.sources.bluesky import BlueskySettings
from flows.sources.http import BearerToken, HttpClient, HttpError, NotFound
from flows.sources.mastodon import HOW_TO_FIX as MASTODON_FIXES
from flows.sources.mastodon import MastodonSettings
from flows.sources.reddit import HOW_TO_FIX as REDDIT_FIXES
from flows.sources.reddit import RedditSettings, RedditToken
from flows.sources.x import HOW_TO_FIX as X_FIXES
from flows.sources.x import PRICE_PER_POST, XSettings, affordable

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Known:
    """A collected post to read again: its native id, and its URL (Mastodon's origin)."""

    native_id: str
    url: str | None = None


@dataclass
class Found:
    """What lookups answered: counters by native id, how each gone post is gone
    (`flows.schema.DELETION_HOWS`), and why some posts could not be read this time."""

    counters: dict[str, dict[str, int | None]] = field(default_factory=dict)
    gone: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class Lookup(Protocol):
    """A source's bulk lookup."""

    name: ClassVar[str]
    batch_size: ClassVar[int]  # ids per request, the API's cap
    usage: Usage

    def lookup(self, posts: Sequence[Known]) -> Found:
        """Read `posts` again. Raises `SourceError` when the source cannot be read at all."""
        ...


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class BlueskyLookup:
    name = "bluesky"
    batch_size = 25

    def __init__(self, settings: BlueskySettings, **client_options: Any) -> None:
        self.url = f"{settings.appview_url.rstrip('/')}/app.bsky.feed.getPosts"
        self.client = HttpClient(self.name, max_wait=settings.max_wait, **client_options)
        self.usage = self.client.usage

    def lookup(self, posts: Sequence[Known]) -> Found:
        found = Found()
        for chunk in _chunks([post.native_id for post in posts], self.batch_size):
            body, _ = self.client.get_json(self.url, {"uris": list(chunk)})
            views = body.get("posts") if isinstance(body, dict) else None
            for view in views or ():
                found.counters[view["uri"]] = {
                    "like_count": view.get("likeCount"),
                    "repost_count": view.get("repostCount"),
                    "reply_count": view.get("replyCount"),
                    "quote_count": view.get("quoteCount"),
                }
            _missing(found, chunk)
        return found


def _missing(found: Found, asked: Sequence[str]) -> None:
    for native_id in asked:
        if native_id not in found.counters and native_id not in found.gone:
            found.gone[native_id] = "missing-from-batch"


# Where a Mastodon status lives: its ActivityPub uri (https://host/users/<name>/statuses/<id>),
# or its page (https://host/@<name>/<id>); the id is the status's id on that host.
_STATUS_URI = re.compile(r"^https?://([^/]+)/users/[^/]+/statuses/(\d+)$")
_STATUS_URL = re.compile(r"^https?://([^/]+)/@[^/]+/(\d+)$")


def mastodon_origin(post: Known) -> tuple[str, str] | None:
    """(host, status id there) of a Mastodon post, or None when neither its uri nor its url is
    Mastodon's (other fediverse software)."""
    for text, pattern in ((post.native_id, _STATUS_URI), (post.url or "", _STATUS_URL)):
        if match := pattern.match(text):
            return match.group(1), match.group(2)
    return None


class MastodonLookup:
    name = "mastodon"
    batch_size = 20  # Mastodon's DEFAULT_STATUSES_LIMIT; more ids answer 422

    def __init__(self, settings: MastodonSettings, **client_options: Any) -> None:
        # a configured instance keeps its scheme (http:// for a local server); others https://
        self.bases = {urlsplit(url).netloc: url for url in settings.instances}
        self.client = HttpClient(
            self.name, fixes=MASTODON_FIXES, max_wait=settings.max_wait, **client_options
        )
        self.usage = self.client.usage
        self._one_by_one: set[str] = set()  # hosts older than 4.3

    def lookup(self, posts: Sequence[Known]) -> Found:
        found = Found()
        by_host: dict[str, dict[str, str]] = {}  # host → status id → native id
        for post in posts:
            origin = mastodon_origin(post)
            if origin is None:
                found.skipped.append(f"{post.native_id}: not a Mastodon status uri")
                continue
            by_host.setdefault(origin[0], {})[origin[1]] = post.native_id
        for host, ids in by_host.items():
            base = self.bases.get(host, f"https://{host}")
            try:
                self._host(base, host, ids, found)
            except HttpError as exc:  # refused, unreachable, rate-limited: next run
                found.skipped.append(f"{host}: {exc}")
                log.warning("mastodon: %s skipped this run: %s", host, exc)
        return found

    def _host(self, base: str, host: str, ids: dict[str, str], found: Found) -> None:
        for chunk in _chunks(list(ids), self.batch_size):
            if host not in self._one_by_one:
                try:
                    statuses, _ = self.client.get_json(
                        f"{base}/api/v1/statuses", {"id[]": list(chunk)}
                    )
                except NotFound:  # no such path before Mastodon 4.3
                    self._one_by_one.add(host)
                else:
                    for status in statuses if isinstance(statuses, list) else ():
                        if str(status.get("id")) in ids:
                            found.counters[ids[str(status["id"])]] = _status_counters(status)
                    _missing(found, [ids[i] for i in chunk])
                    continue
            for status_id in chunk:
                try:
                    status, _ = self.client.get_json(f"{base}/api/v1/statuses/{status_id}")
                except HttpError as exc:
                    if exc.status not in (404, 410):
                        raise
                    found.gone[ids[status_id]] = "lookup-gone"
                else:
                    found.counters[ids[status_id]] = _status_counters(status)


def _status_counters(status: dict[str, Any]) -> dict[str, int | None]:
    shown = status.get("reblog") or status  # a boost shows the boosted status's counters
    return {
        "like_count": shown.get("favourites_count"),
        "repost_count": shown.get("reblogs_count"),
        "reply_count": shown.get("replies_count"),
        "quote_count": shown.get("quotes_count"),
    }


class RedditLookup:
    name = "reddit"
    batch_size = 100

    def __init__(self, settings: RedditSettings, **client_options: Any) -> None:
        client_id, secret = settings.credentials()
        self.url = f"{settings.base_url.rstrip('/')}/api/info"
        self.client = HttpClient(
            self.name,
            auth=RedditToken(settings.token_url, client_id, secret, settings.user_agent),
            headers={"User-Agent": settings.user_agent},
            fixes=REDDIT_FIXES,
            max_wait=settings.max_wait,
            **client_options,
        )
        self.usage = self.client.usage

    def lookup(self, posts: Sequence[Known]) -> Found:
        found = Found()
        for chunk in _chunks([post.native_id for post in posts], self.batch_size):
            body, _ = self.client.get_json(self.url, {"id": ",".join(chunk), "raw_json": 1})
            data = (body.get("data") if isinstance(body, dict) else None) or {}
            for child in data.get("children") or ():
                link = child.get("data") or {}
                if child.get("kind") != "t3" or link.get("name") not in chunk:
                    continue
                if link.get("removed_by_category"):  # deleted by its author, or removed
                    found.gone[link["name"]] = "removed"
                    continue
                found.counters[link["name"]] = {
                    "like_count": link.get("score"),
                    "repost_count": link.get("num_crossposts"),
                    "reply_count": link.get("num_comments"),
                    "quote_count": None,
                }
            _missing(found, chunk)
        return found


class XLookup:
    name = "x"
    batch_size = 100

    def __init__(
        self, settings: XSettings, spent: Spent = Spent(), **client_options: Any
    ) -> None:
        self.settings = settings
        self.spent = spent
        self.client = HttpClient(
            self.name,
            auth=BearerToken(settings.token()),
            fixes=X_FIXES,
            max_wait=settings.max_wait,
            **client_options,
        )
        self.usage = self.client.usage
        self._read = 0  # posts returned (billed) in this run

    def lookup(self, posts: Sequence[Known]) -> Found:
        found = Found()
        ids = [post.native_id for post in posts]
        # a retweet's counters are its original's, which comes expanded (and billed) with it
        worst = PRICE_PER_POST * (2 if self.settings.retweets else 1)
        unread: set[str] = set()
        while ids:
            size = affordable(
                self.settings, self.spent, self.usage.cost_usd, self.batch_size, worst, 1
            )
            chunk, ids = ids[:size], ids[size:]
            body, _ = self.client.get_json(
                f"{self.settings.base_url.rstrip('/')}/tweets",
                {
                    "ids": ",".join(chunk),
                    "tweet.fields": "public_metrics,referenced_tweets",
                    "expansions": "referenced_tweets.id" if self.settings.retweets else None,
                },
            )
            body = body if isinstance(body, dict) else {}
            tweets = body.get("data") or []
            originals = {t["id"]: t for t in (body.get("includes") or {}).get("tweets") or ()}
            self._read += len(tweets) + len(originals)
            self.usage.cost_usd = round(self._read * PRICE_PER_POST, 6)
            for tweet in tweets:
                retweeted = [
                    ref["id"]
                    for ref in tweet.get("referenced_tweets") or ()
                    if ref.get("type") == "retweeted"
                ]
                shown = originals.get(retweeted[0]) if retweeted else tweet
                if shown is None:  # a retweet whose original did not come: not read
                    unread.add(tweet["id"])
                    found.skipped.append(f"{tweet['id']}: retweet without its original")
                    continue
                metrics = shown.get("public_metrics") or {}
                found.counters[tweet["id"]] = {
                    "like_count": metrics.get("like_count"),
                    "repost_count": metrics.get("retweet_count"),
                    "reply_count": metrics.get("reply_count"),
                    "quote_count": metrics.get("quote_count"),
                }
            _missing(found, [i for i in chunk if i not in unread])
        return found


LOOKUPS: dict[str, type] = {
    "bluesky": BlueskyLookup,
    "mastodon": MastodonLookup,
    "reddit": RedditLookup,
    "x": XLookup,
}


def refreshable(name: str, settings: Any) -> bool:
    """Whether a refresh reads `name`'s posts again: it has a lookup, and X is asked to."""
    return name in LOOKUPS and (name != "x" or settings.refresh)


def make_lookup(name: str, settings: Any, spent: Spent = Spent()) -> Lookup:
    """The lookup of source `name`. Raises `SourceError` for a source without one."""
    if name not in LOOKUPS:
        raise SourceError(f"{name}: has no lookup; a refresh reads {', '.join(LOOKUPS)}")
    if name == "x":
        return LOOKUPS[name](settings, spent=spent)
    return LOOKUPS[name](settings)
