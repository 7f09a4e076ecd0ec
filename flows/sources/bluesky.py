"""The `bluesky` source: ``app.bsky.feed.searchPosts`` for the hashtag, logged in with an app password.

Search pages come newest first (``sort=latest``), up to 100 posts, with a ``cursor`` for the older
page. A run walks down to the previous run's newest post: ``since`` (inclusive) is the newest
``indexedAt`` of the last finished walk, kept in ``WalkCursor.newest_time`` (the server's indexing
time, not ``createdAt``, which the posting app sets and may put in the future). Searching needs a
session since Bluesky stopped serving follow-up pages to logged-out clients: the source logs in
with ``com.atproto.server.createSession`` and, when the access token expires mid-run, renews it
with ``com.atproto.server.refreshSession`` (or logs in again) and repeats the request.

A post's ``native_id`` is its ``at://`` URI, the same on every service that shows it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from flows.cursors import Walk, WalkCursor
from flows.sources.base import Record
from flows.sources.http import USER_AGENT, HttpClient, TransientError, Unauthorized, json_body
from flows.sources.paging import Page, PagedSource
from flows.sources.secrets import Secret, secret_from_env

HOW_TO_GET = (
    "Use your Bluesky handle (e.g. alice.bsky.social) and an app password made in the Bluesky "
    "app: Settings, Privacy and security, App passwords (never your account password)."
)
HOW_TO_FIX = {
    401: "Bluesky refused the login: check the handle and the app password in the environment "
    "variables named by [bluesky] handle_env and app_password_env, or make a new app password.",
    403: "This account may not search: check it is active and not taken down.",
    404: "No Bluesky XRPC API here: [bluesky] base_url should be https://bsky.social/xrpc (or "
    "your own PDS's https://host/xrpc).",
}
# How far below the last run's newest post a run searches again. `since` compares a post's sortAt,
# the earlier of its createdAt and indexedAt, so a post written before that newest one but indexed
# after the run (indexing lag, a slow device clock, a queued post) would sort below the floor and
# never be seen. The lake drops the posts seen twice.
INDEXING_LAG = timedelta(minutes=15)

_LINK = "app.bsky.richtext.facet#link"
_MENTION = "app.bsky.richtext.facet#mention"
_TAG = "app.bsky.richtext.facet#tag"


@dataclass(frozen=True)
class BlueskySettings:
    """`[bluesky]`: search through a Bluesky account.

    Attributes:
        base_url: the XRPC root of the account's server (``https://bsky.social/xrpc`` for
            accounts hosted by Bluesky).
        handle_env: the environment variable holding the handle.
        app_password_env: the environment variable holding an app password.
        page_size: posts per page, at most 100.
        lang: only posts in this language (e.g. ``en``); empty for all.
        max_wait: the longest rate-limit wait, in seconds, before the source stops and
            leaves the rest to the next run.
        appview_url: the XRPC root of a public AppView, where a refresh reads posts again
            (``app.bsky.feed.getPosts``) without an account.
    """

    base_url: str = "https://bsky.social/xrpc"
    handle_env: str = "BLUESKY_HANDLE"
    app_password_env: str = "BLUESKY_APP_PASSWORD"
    page_size: int = 100
    lang: str = ""
    max_wait: float = 900.0
    appview_url: str = "https://public.api.bsky.app/xrpc"

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= 100:
            raise ValueError(f"page_size: must be between 1 and 100, got {self.page_size}")
        for key in ("base_url", "appview_url"):
            if not getattr(self, key).startswith(("https://", "http://")):
                raise ValueError(f"{key}: expected https://host/xrpc, got {getattr(self, key)!r}")

    def credentials(self) -> tuple[str, Secret]:
        """(handle, app password); a ConfigError naming the variable and the fix if unset."""
        handle = secret_from_env("bluesky", "handle_env", self.handle_env, HOW_TO_GET)
        password = secret_from_env("bluesky", "app_password_env", self.app_password_env, HOW_TO_GET)
        return handle.reveal().lstrip("@"), password

    def check(self) -> None:
        """Fail before any work when a secret is missing."""
        self.credentials()


class BlueskySession(httpx.Auth):
    """A logged-in session: logs in on first use, renews an expired access token, repeats."""

    requires_response_body = True

    def __init__(self, base_url: str, handle: str, password: Secret) -> None:
        self.base_url = base_url.rstrip("/")
        self.handle = handle
        self._password = password
        self._access: Secret | None = None
        self._refresh: Secret | None = None

    def __repr__(self) -> str:
        return f"BlueskySession({self.handle!r}, password='***')"

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        if self._access is None:
            self._keep((yield self._login()))
        request.headers["Authorization"] = f"Bearer {self._access.reveal()}"
        response = yield request
        if not _expired(response):
            return
        renewed = yield self._call("refreshSession", self._refresh)
        if renewed.status_code == 200:
            self._keep(renewed)
        else:  # the refresh token expired too (after some weeks): log in again
            self._keep((yield self._login()))
        request.headers["Authorization"] = f"Bearer {self._access.reveal()}"
        yield request

    def _login(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            f"{self.base_url}/com.atproto.server.createSession",
            json={"identifier": self.handle, "password": self._password.reveal()},
            headers={"User-Agent": USER_AGENT},
        )

    def _call(self, method: str, token: Secret | None) -> httpx.Request:
        headers = {"User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token.reveal()}"
        return httpx.Request(
            "POST", f"{self.base_url}/com.atproto.server.{method}", headers=headers
        )

    def _keep(self, response: httpx.Response) -> None:
        """Store the tokens of a createSession or refreshSession answer."""
        what = f"POST {response.request.url}"
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"{what} answered {response.status_code}")
        if response.status_code != 200:
            raise Unauthorized(
                f"bluesky: {what} answered {response.status_code}: "
                f"{_error(response)}. {HOW_TO_FIX[401]}",
                response.status_code,
            )
        body = json_body(response, what)
        self._access, self._refresh = Secret(body["accessJwt"]), Secret(body["refreshJwt"])


def _expired(response: httpx.Response) -> bool:
    # the PDS answers 400 ExpiredToken for an expired access token; some services answer 401
    return response.status_code in (400, 401) and _error(response).startswith("ExpiredToken")


def _error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return f"{body.get('error', '')}: {body.get('message', '')}" if isinstance(body, dict) else ""


class BlueskySource(PagedSource):
    """Posts with the hashtag, newest first, down to the last run's newest."""

    name = "bluesky"

    def __init__(self, settings: BlueskySettings, **client_options: Any) -> None:
        self.settings = settings
        handle, password = settings.credentials()
        self.client = HttpClient(
            self.name,
            auth=BlueskySession(settings.base_url, handle, password),
            fixes=HOW_TO_FIX,
            max_wait=settings.max_wait,
            **client_options,
        )

    def floor(self, cursor: WalkCursor, key: str) -> str | None:
        return _iso(cursor.newest_time - INDEXING_LAG) if cursor.newest_time else None

    def commit(
        self, cursor: WalkCursor, key: str, top: str | None, newest: datetime | None
    ) -> WalkCursor:
        return replace(cursor, newest_time=_time(top) if top else cursor.newest_time)

    def page(self, hashtag: str, walk: Walk, size: int) -> Page:
        body, _ = self.client.get_json(
            f"{self.settings.base_url.rstrip('/')}/app.bsky.feed.searchPosts",
            {
                "q": f"#{hashtag}",
                "sort": "latest",
                "limit": size,
                "since": walk.floor,
                "lang": self.settings.lang or None,
                "cursor": walk.token,
            },
        )
        body = body if isinstance(body, dict) else {}
        posts = [post for post in body.get("posts") or () if isinstance(post, dict)]
        times = list(filter(None, map(_sort_at, posts)))
        newest = _iso(max(times)) if times else None
        return Page(posts, body.get("cursor") if posts else None, newest)

    def to_posts(
        self, hashtag: str, key: str, payload: Any, collected_at: datetime
    ) -> list[Record | str]:
        results: list[Record | str] = []
        for view in payload:
            try:
                results.append(post_view_to_post(view, hashtag, collected_at))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                results.append(f"post {view.get('uri', '?')}: {type(exc).__name__}: {exc}")
        return results


def post_view_to_post(view: dict[str, Any], hashtag: str, collected_at: datetime) -> Record:
    """One ``app.bsky.feed.defs#postView`` as a POST_SCHEMA row."""
    author = view["author"]
    return post_record_to_post(
        view["uri"],
        view["record"],
        author["handle"],
        author.get("displayName") or None,
        _time(view["indexedAt"]),
        hashtag,
        collected_at,
        counts=view,
    )


def post_record_to_post(
    uri: str,
    record: dict[str, Any],
    handle: str,
    name: str | None,
    indexed_at: datetime,
    hashtag: str,
    collected_at: datetime,
    counts: Mapping[str, Any] | None = None,
) -> Record:
    """One ``app.bsky.feed.post`` record at `uri` as a POST_SCHEMA row.

    Args:
        handle, name: the author's handle and display name.
        indexed_at: when the network saw it: the creation time where the record's is not a time.
        counts: ``likeCount``, ``repostCount``, ``replyCount``, ``quoteCount`` (a postView);
            None where they are unknown (a record from the firehose).
    """
    counts = counts or {}
    text = record.get("text") or ""
    data = text.encode("utf-8")
    links, mentions = [], []
    for facet in record.get("facets") or ():
        for feature in facet.get("features") or ():
            kind = feature.get("$type")
            if kind == _LINK:
                links.append(feature["uri"])
            elif kind == _MENTION:  # the feature holds a DID; the handle is the text it covers
                index = facet["index"]
                shown = data[index["byteStart"] : index["byteEnd"]].decode("utf-8", "replace")
                mentions.append(shown.lstrip("@"))
    card, quoted = _embedded(record.get("embed"))
    if card:
        links.append(card)
    reply = record.get("reply") or {}
    langs = record.get("langs") or []
    return {
        "post_id": f"bluesky:{uri}",
        "source": "bluesky",
        "native_id": uri,
        "hashtag": hashtag,
        "url": f"https://bsky.app/profile/{handle}/post/{uri.rsplit('/', 1)[-1]}",
        "author_handle": handle,
        "author_name": name,
        "created_at": _created_at(record.get("createdAt"), indexed_at),
        "collected_at": collected_at,
        "text": text,
        "lang": langs[0] if langs else None,
        "like_count": counts.get("likeCount"),
        "repost_count": counts.get("repostCount"),
        "reply_count": counts.get("replyCount"),
        "quote_count": counts.get("quoteCount"),
        "is_repost": False,  # a post record; a repost is a separate record (another collection)
        "in_reply_to": (reply.get("parent") or {}).get("uri"),
        "hashtags": list(dict.fromkeys(record_tags(record))),
        "mentions": list(dict.fromkeys(mentions)),
        "links": list(dict.fromkeys(links)),
        "client": None,  # posts do not record the app that made them
        "quoted_post": quoted,
    }


def record_tags(record: dict[str, Any]) -> list[str]:
    """A post record's hashtags, lower case, in order: its tag facets, then its ``tags``."""
    tags = [
        feature["tag"].lower()
        for facet in record.get("facets") or ()
        for feature in facet.get("features") or ()
        if feature.get("$type") == _TAG
    ]
    tags += [tag.lower() for tag in record.get("tags") or ()]
    return tags


def _embedded(embed: Any) -> tuple[str | None, str | None]:
    """(the link card's URL, the quoted post's URI) of a post record's ``embed``.

    A link may be shown only as a card (``app.bsky.embed.external``), with no link facet in the
    text. A quote embeds the quoted post (``app.bsky.embed.record``), beside images, a video or a
    card in ``app.bsky.embed.recordWithMedia``; an embedded feed, list or starter pack is no
    quote.
    """
    if not isinstance(embed, dict):
        return None, None
    kind = embed.get("$type")
    if kind == "app.bsky.embed.recordWithMedia":
        card, _ = _embedded(embed.get("media"))
        _, quoted = _embedded(embed.get("record"))
        return card, quoted
    if kind == "app.bsky.embed.external":
        return (embed.get("external") or {}).get("uri"), None
    if kind == "app.bsky.embed.record":
        uri = (embed.get("record") or {}).get("uri")
        return None, uri if isinstance(uri, str) and "/app.bsky.feed.post/" in uri else None
    return None, None


def _time(value: str) -> datetime:
    time = datetime.fromisoformat(value)
    return time.replace(tzinfo=UTC) if time.tzinfo is None else time.astimezone(UTC)


def _created_at(created: str | None, indexed: datetime) -> datetime:
    """The post's createdAt, which its client sets: its indexedAt where that is absent or not a
    time (a post is not dropped for a bad date)."""
    try:
        return _time(created)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return indexed


def _sort_at(view: dict[str, Any]) -> datetime | None:
    """What `since` compares: the earlier of the post's createdAt and indexedAt (its sortAt)."""
    try:
        indexed = _time(view["indexedAt"])
    except (KeyError, TypeError, ValueError):  # a malformed view, skipped by `to_posts`
        return None
    return min(_created_at((view.get("record") or {}).get("createdAt"), indexed), indexed)


def _iso(time: datetime) -> str:
    return time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
