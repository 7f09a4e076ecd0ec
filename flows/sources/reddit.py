"""The `reddit` source (optional): new posts of chosen subreddits and/or a Reddit-wide search.

Reddit has no hashtags: a subreddit about the topic (``r/dataengineering``) or a search for the
hashtag's word stands in. The source reads the official OAuth API with an application-only token
(the client credentials grant, ``POST /api/v1/access_token``), renewed when it expires. Listings
(``/r/<sub>/new``, ``/search?sort=new``) come newest first, 100 at most a page, with ``after`` for
the older page. Listings take no ``since``: each stream stops at the newest post of its last
finished walk (post ids are base-36 numbers that grow with time), kept per stream in
``WalkCursor.floors``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from flows.cursors import Walk
from flows.settings import ConfigError
from flows.sources.base import Record
from flows.sources.http import HttpClient, TransientError, Unauthorized, json_body
from flows.sources.paging import Page, PagedSource
from flows.sources.secrets import Secret, secret_from_env

PLACEHOLDER_USER = "your-reddit-username"  # the example's; `check` refuses it

HOW_TO_GET = (
    "Register a 'script' app at https://www.reddit.com/prefs/apps while logged in (Reddit may "
    "first ask you to request API access under its Responsible Builder Policy); the client id is "
    "under the app's name, the secret beside 'secret'."
)
HOW_TO_FIX = {
    401: "Reddit refused the app's credentials: check the environment variables named by "
    "[reddit] client_id_env and client_secret_env.",
    403: "Reddit refused this listing: the subreddit may be private, quarantined or banned, or "
    "the app lacks API access; remove it from [reddit] subreddits or check the app.",
    404: "No such listing: check [reddit] subreddits (names without r/) and base_url.",
}
# a '#' after a word, '&', '/', '#' (a markdown heading, ``###Progress``) or '](' (a markdown
# anchor, ``[*](#tooltip)``) starts no hashtag; nor does one at a line's start: Reddit shows
# ``#Word`` there as a heading
_HASHTAG = re.compile(r"(?<![\w&/#])(?<!\]\()(?<!^)#(\w+)", re.MULTILINE)
# what Reddit puts in place of the body of a removed or deleted post
_GONE = ("[removed]", "[deleted]")
_USER = re.compile(r"(?<![\w/])/?u/([\w-]{3,20})")
_LINK = re.compile(r"https?://[^\s<>\"'\])]+")


@dataclass(frozen=True)
class RedditSettings:
    """`[reddit]`: which listings to read, and the app's credentials.

    Attributes:
        subreddits: subreddit names (without ``r/``) whose new posts are collected.
        search: also search all of Reddit for the hashtag's word.
        client_id_env, client_secret_env: environment variables holding the app's credentials.
        user_agent: what Reddit asks every client to send:
            ``<platform>:<app id>:<version> (by /u/<your username>)``.
        base_url: the OAuth API root.
        token_url: where application-only tokens are issued.
        page_size: posts per page, at most 100.
        max_wait: the longest rate-limit wait, in seconds.
    """

    subreddits: tuple[str, ...] = ()
    search: bool = True
    client_id_env: str = "REDDIT_CLIENT_ID"
    client_secret_env: str = "REDDIT_CLIENT_SECRET"
    user_agent: str = f"python:hashtag-pulse:v1.0 (by /u/{PLACEHOLDER_USER})"
    base_url: str = "https://oauth.reddit.com"
    token_url: str = "https://www.reddit.com/api/v1/access_token"
    page_size: int = 100
    max_wait: float = 900.0

    def __post_init__(self) -> None:
        names = tuple(
            name.strip().removeprefix("r/").removeprefix("/r/") for name in self.subreddits
        )
        for name in names:
            if not re.fullmatch(r"\w{2,21}", name):
                raise ValueError(
                    f"subreddits: {name!r} is not a subreddit name (letters, digits, _)"
                )
        object.__setattr__(self, "subreddits", tuple(dict.fromkeys(names)))
        if not names and not self.search:
            raise ValueError("subreddits is empty and search = false: name a subreddit or search")
        if not 1 <= self.page_size <= 100:
            raise ValueError(f"page_size: must be between 1 and 100, got {self.page_size}")

    def credentials(self) -> tuple[Secret, Secret]:
        return (
            secret_from_env("reddit", "client_id_env", self.client_id_env, HOW_TO_GET),
            secret_from_env("reddit", "client_secret_env", self.client_secret_env, HOW_TO_GET),
        )

    def check(self) -> None:
        """Fail before any work when a secret is missing or the User-Agent is not the user's."""
        self.credentials()
        user = re.search(r"\(by /?u/([\w-]+)\)", self.user_agent)
        if not user or user.group(1) == PLACEHOLDER_USER:
            raise ConfigError(
                f"[reddit] user_agent = {self.user_agent}: Reddit wants a User-Agent of its own "
                "from every client, naming its author's account, and throttles or bans generic "
                "and false ones: write python:<app name>:<version> (by /u/<your Reddit username>)"
            )


class RedditToken(httpx.Auth):
    """An application-only OAuth token: fetched on first use, fetched again on a 401."""

    requires_response_body = True

    def __init__(
        self, token_url: str, client_id: Secret, client_secret: Secret, user_agent: str
    ) -> None:
        self.token_url = token_url
        self.user_agent = user_agent
        self._client = (client_id, client_secret)
        self._token: Secret | None = None

    def __repr__(self) -> str:
        return "RedditToken('***')"

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        if self._token is None:
            self._keep((yield self._grant()))
        request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        response = yield request
        if response.status_code == 401:  # tokens last a day: this one has expired
            self._keep((yield self._grant()))
            request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
            yield request

    def _grant(self) -> httpx.Request:
        client_id, secret = self._client
        basic = base64.b64encode(f"{client_id.reveal()}:{secret.reveal()}".encode()).decode()
        return httpx.Request(
            "POST",
            self.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}", "User-Agent": self.user_agent},
        )

    def _keep(self, response: httpx.Response) -> None:
        what = f"POST {response.request.url}"
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"{what} answered {response.status_code}")
        body = json_body(response, what) if response.status_code == 200 else {}
        if "access_token" not in body:  # Reddit answers 200 {"error": "invalid_grant"} too
            raise Unauthorized(
                f"reddit: {what} answered {response.status_code} without a token "
                f"({body.get('error') or response.reason_phrase}). {HOW_TO_FIX[401]}",
                response.status_code,
            )
        self._token = Secret(body["access_token"])


class RedditSource(PagedSource):
    """New posts of each subreddit (streams ``r/<name>``) and of a search (stream ``search``)."""

    name = "reddit"

    def __init__(self, settings: RedditSettings, **client_options: Any) -> None:
        self.settings = settings
        client_id, secret = settings.credentials()
        self.client = HttpClient(
            self.name,
            auth=RedditToken(settings.token_url, client_id, secret, settings.user_agent),
            headers={"User-Agent": settings.user_agent},
            fixes=HOW_TO_FIX,
            max_wait=settings.max_wait,
            **client_options,
        )

    def streams(self) -> list[str]:
        return [f"r/{name}" for name in self.settings.subreddits] + (
            ["search"] if self.settings.search else []
        )

    def page(self, hashtag: str, walk: Walk, size: int) -> Page:
        base = self.settings.base_url.rstrip("/")
        params: dict[str, Any] = {
            "limit": size,
            "after": walk.token,
            "raw_json": 1,
        }
        if walk.key == "search":
            url = f"{base}/search"
            params.update(q=hashtag, sort="new", type="link")
        else:
            url = f"{base}/{walk.key}/new"
        body, _ = self.client.get_json(url, params)
        data = (body.get("data") if isinstance(body, dict) else None) or {}
        posts = [child["data"] for child in data.get("children") or () if child.get("kind") == "t3"]
        newer = [post for post in posts if _after_floor(post.get("name"), walk.floor)]
        # a post at or below the floor means the rest is from earlier runs
        done = len(newer) < len(posts)
        return Page(newer, None if done else data.get("after"), newer[0]["name"] if newer else None)

    def to_posts(
        self, hashtag: str, key: str, payload: Any, collected_at: datetime
    ) -> list[Record | str]:
        results: list[Record | str] = []
        for post in payload:
            try:
                results.append(link_to_post(post, hashtag, collected_at))
            except (KeyError, TypeError, ValueError) as exc:
                results.append(f"post {post.get('name', '?')}: {type(exc).__name__}: {exc}")
        return results


def _after_floor(name: str | None, floor: str | None) -> bool:
    if not floor:
        return True
    return _number(name) > _number(floor)


def _number(name: str | None) -> int:
    return int((name or "t3_0").removeprefix("t3_"), 36)


def link_to_post(post: dict[str, Any], hashtag: str, collected_at: datetime) -> Record:
    """One Reddit link (``kind: t3``) as a POST_SCHEMA row: the title, then the body."""
    body = post.get("selftext") or ""
    body = "" if body.strip() in _GONE else body
    text = "\n\n".join(part for part in (post.get("title"), body) if part)
    links = _LINK.findall(body)
    if not post.get("is_self") and post.get("url"):
        links.insert(0, post["url"])
    author = post.get("author")
    return {
        "post_id": f"reddit:{post['name']}",
        "source": "reddit",
        "native_id": post["name"],
        "hashtag": hashtag,
        "url": f"https://www.reddit.com{post['permalink']}",
        "author_handle": None if author in (None, "[deleted]") else author,
        "author_name": None,
        "created_at": datetime.fromtimestamp(float(post["created_utc"]), UTC),
        "collected_at": collected_at,
        "text": text,
        "lang": None,
        "like_count": post.get("score"),
        "repost_count": post.get("num_crossposts"),
        "reply_count": post.get("num_comments"),
        "quote_count": None,
        # a crosspost is a post of its own (its own title, score and comments) that shares
        # another: that one is its quoted post, as a quote is elsewhere
        "is_repost": False,
        "in_reply_to": None,
        # a number (``#1``) is no hashtag, as on every platform that has them
        "hashtags": list(
            dict.fromkeys(tag.lower() for tag in _HASHTAG.findall(text) if not tag.isdigit())
        ),
        "mentions": list(dict.fromkeys(_USER.findall(text))),
        "links": list(dict.fromkeys(link.rstrip(".,;:!?") for link in links)),
        "client": None,  # Reddit does not say which app posted
        "quoted_post": post.get("crosspost_parent"),
    }
