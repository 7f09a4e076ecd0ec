"""The `mastodon` source: public hashtag timelines of a list of instances, no account needed.

``GET <instance>/api/v1/timelines/tag/<hashtag>`` answers newest first, ``limit`` up to 40; the
``Link`` header's ``rel="next"`` URL carries the ``max_id`` of the following (older) page, and
``since_id`` bounds a walk at the newest status of the previous run. Each instance is its own
walk with its own floor, kept in ``WalkCursor.floors`` as ``{instance: status id}``
(status ids are local to an instance, so one id cannot serve them all).

One post reaches many instances through federation, under a different local ``id`` on each. Its
``uri`` (the ActivityPub object id, e.g. ``https://mastodon.social/users/alice/statuses/1``) is
the same everywhere, so ``native_id`` is the ``uri`` and ``post_id = "mastodon:<uri>"``: copies
from several instances de-duplicate in the lake, and a post is counted once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import httpx

from flows.cursors import Walk
from flows.settings import ConfigError
from flows.sources.base import Record
from flows.sources.http import HttpClient, Unauthorized
from flows.sources.paging import Page, PagedSource
from flows.sources.secrets import Secret, secret_from_env

log = logging.getLogger(__name__)

HOW_TO_FIX = {
    401: "This instance does not show its hashtag timelines, even of its own posts, to visitors "
    "without an account: remove it from [mastodon] instances or pick another instance.",
    403: "This instance refuses this client: remove it from [mastodon] instances.",
    404: "No Mastodon API at this address: check the instance's URL in [mastodon] instances "
    "(https://host, without a path).",
}
TOKEN_HOW_TO_GET = (
    "Make a token on each instance you stream (Preferences > Development > New application, "
    "scope read:statuses) and put it in that variable: one token for every instance, or "
    "https://host=token pairs separated by spaces."
)


@dataclass(frozen=True)
class MastodonSettings:
    """`[mastodon]`: which instances to read.

    Attributes:
        instances: base URLs (``https://`` is assumed when no scheme is given; ``http://`` is
            accepted for a local server), separated by commas or new lines.
        page_size: statuses per request, at most 40 (the API's cap).
        max_wait: the longest rate-limit wait, in seconds, before the source stops and
            leaves the rest to the next run.
        access_token_env: the environment variable holding access tokens, for streaming
            (`flows.sources.mastodon_stream`; Mastodon streams only to a signed-in user since
            4.2): one token for every instance, or ``https://host=token`` pairs separated by
            spaces. Empty: no streaming; instances without a token are polled only.
    """

    instances: tuple[str, ...] = ("https://mastodon.social",)
    page_size: int = 40
    max_wait: float = 900.0
    access_token_env: str = ""

    def __post_init__(self) -> None:
        if not self.instances:
            raise ValueError("instances: name at least one instance, e.g. https://mastodon.social")
        # the same instance named twice is read once
        object.__setattr__(self, "instances", tuple(dict.fromkeys(map(_base_url, self.instances))))
        if not 1 <= self.page_size <= 40:
            raise ValueError(f"page_size: must be between 1 and 40, got {self.page_size}")
        if self.max_wait < 0:
            raise ValueError(f"max_wait: must be 0 or more seconds, got {self.max_wait}")
        named = self.access_token_env
        if named and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", named):
            # the value is not shown: it may be the token itself
            raise ValueError(
                "access_token_env: name an environment variable (MASTODON_TOKENS), not the "
                "token itself"
            )

    def tokens(self) -> dict[str, Secret]:
        """The token of each instance that has one; none when `access_token_env` is empty.

        Raises:
            ConfigError: the variable is unset or empty, an item is not ``https://host=token``,
                or a pair names an instance that is not in `instances`.
        """
        if not self.access_token_env:
            return {}
        where = f"[mastodon] access_token_env = {self.access_token_env}"
        value = secret_from_env(
            "mastodon", "access_token_env", self.access_token_env, TOKEN_HOW_TO_GET
        ).reveal()
        items = value.split()
        if len(items) == 1 and "=" not in items[0]:
            return dict.fromkeys(self.instances, Secret(items[0]))
        tokens: dict[str, Secret] = {}
        for number, item in enumerate(items, 1):
            url, _, token = item.rpartition("=")
            try:
                instance = _base_url(url) if url and token else None
            except ValueError:
                instance = None
            if instance is None:  # the message never shows the item: it may be a token
                raise ConfigError(
                    f"{where}: item {number} of that variable is not https://host=token. "
                    + TOKEN_HOW_TO_GET
                )
            if instance not in self.instances:
                raise ConfigError(
                    f"{where}: {instance} has a token but is not in [mastodon] instances: "
                    "add it there, or drop its token."
                )
            tokens[instance] = Secret(token)
        return tokens


def _base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"https://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.path or parts.query:
        raise ValueError(
            f"instances: {url!r} is not an instance's base URL; write https://host "
            "(or http://host:port for a local server), without a path"
        )
    return url


class MastodonSource(PagedSource):
    """Statuses with the hashtag from every instance of `MastodonSettings.instances`."""

    name = "mastodon"

    def __init__(self, settings: MastodonSettings, **client_options: Any) -> None:
        self.settings = settings
        self.client = HttpClient(
            self.name, fixes=HOW_TO_FIX, max_wait=settings.max_wait, **client_options
        )
        self._local_only: set[str] = set()  # instances that show visitors their own posts alone

    def streams(self) -> list[str]:
        return list(self.settings.instances)

    def page(self, hashtag: str, walk: Walk, size: int) -> Page:
        local = walk.key in self._local_only
        params = {"limit": size, "max_id": walk.token, "since_id": walk.floor}
        params["local"] = local or None
        try:
            statuses, response = self.client.get_json(
                f"{walk.key}/api/v1/timelines/tag/{hashtag}", params
            )
        except Unauthorized:
            if local:
                raise
            # Mastodon 4.5 lets an instance show visitors the hashtag feeds of its own posts only
            # (timelines_access), answering 401 to a request that does not ask for those alone
            log.warning("mastodon: %s shows visitors only its own posts: collecting them", walk.key)
            self._local_only.add(walk.key)
            return self.page(hashtag, walk, size)
        if not isinstance(statuses, list):
            statuses = []
        newest = statuses[0].get("id") if statuses and isinstance(statuses[0], dict) else None
        return Page(statuses, _next_max_id(response) if statuses else None, newest)

    def to_posts(
        self, hashtag: str, key: str, payload: Any, collected_at: datetime
    ) -> list[Record | str]:
        return [_attempt(status, hashtag, collected_at) for status in payload]


def _next_max_id(response: httpx.Response) -> str | None:
    """The ``max_id`` of the ``rel="next"`` link: the page of older statuses."""
    link = response.links.get("next", {}).get("url")
    return httpx.URL(link).params.get("max_id") if link else None


def _attempt(status: Any, hashtag: str, collected_at: datetime) -> Record | str:
    try:
        return status_to_post(status, hashtag, collected_at)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        status_id = status.get("id") if isinstance(status, dict) else "?"
        return f"status {status_id}: {type(exc).__name__}: {exc}"


def status_to_post(status: dict[str, Any], hashtag: str, collected_at: datetime) -> Record:
    """One Mastodon Status entity as a POST_SCHEMA row.

    A boost shows the boosted status's text and counts, with ``is_repost`` set; the author is
    who boosted it. A poll's options follow the text, one a line, as Mastodon lists them under
    it. A quote (Mastodon 4.5+, or a quoting post federated in) is `quoted_post`, and the
    "RE: <url>" that the server adds to its content for other software is left out, as
    Mastodon's own interface leaves it out.
    """
    shown = status.get("reblog") or status
    account = status["account"]
    html = shown.get("content") or ""
    content = _parse(html)
    text = "".join(content.parts).strip()
    if not text and shown.get("spoiler_text"):
        text = shown["spoiler_text"]
    poll = shown.get("poll") or {}
    options = [option.get("title") or "" for option in poll.get("options") or ()]
    if options:
        text = "\n\n".join(part for part in (text, "\n".join(options)) if part)
    uri = status["uri"]
    application = shown.get("application") or {}
    quote = shown.get("quote") or {}
    return {
        "post_id": f"mastodon:{uri}",
        "source": "mastodon",
        "native_id": uri,
        "hashtag": hashtag,
        "url": status.get("url") or shown.get("url") or uri,
        "author_handle": _handle(account),
        "author_name": account.get("display_name") or account.get("username"),
        "created_at": datetime.fromisoformat(status["created_at"]),
        "collected_at": collected_at,
        "text": text,
        "lang": shown.get("language"),
        "like_count": shown.get("favourites_count"),
        "repost_count": shown.get("reblogs_count"),
        "reply_count": shown.get("replies_count"),
        "quote_count": shown.get("quotes_count"),
        "is_repost": status.get("reblog") is not None,
        # a status id local to the instance that served the post (the parent's uri is not given)
        "in_reply_to": shown.get("in_reply_to_id"),
        "hashtags": list(dict.fromkeys(tag["name"].lower() for tag in shown.get("tags") or ())),
        "mentions": [_handle(mention) for mention in shown.get("mentions") or ()],
        "links": list(dict.fromkeys(content.links)),
        "client": application.get("name"),
        # the quote's own uri; only the RE: link where the quoted post is not shown (pending,
        # revoked, deleted) or the quote comes from software without Mastodon's `quote`
        "quoted_post": (quote.get("quoted_status") or {}).get("uri") or content.quote,
    }


def _handle(account: dict[str, Any]) -> str:
    """``user@domain`` wherever the post was read (``acct`` omits the domain of local users)."""
    acct = account.get("acct") or account["username"]
    if "@" in acct:
        return acct
    host = urlsplit(account.get("url") or "").hostname
    return f"{acct}@{host}" if host else acct


def html_to_text(html: str) -> str:
    """Mastodon's HTML content as plain text: paragraphs and line breaks kept, tags dropped,
    entities decoded, links written out in full.

    Example:
        >>> html_to_text('<p>Hi <a href="https://x.org/a"><span class="invisible">https://</span>'
        ...              '<span>x.org/a</span></a></p><p>bye&amp;<br>ok</p>')
        'Hi https://x.org/a\\n\\nbye&\\nok'
    """
    return "".join(_parse(html).parts).strip()


def _parse(html: str) -> _Text:
    parser = _Text()
    parser.feed(html)
    parser.close()
    return parser


class _Text(HTMLParser):
    """The text and link targets of Mastodon's HTML, without the links Mastodon makes for
    mentions and hashtags, and without the ``quote-inline`` element (its link is `quote`)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str] = []
        self.quote: str | None = None
        self._paragraphs = 0
        # while inside the quote-inline element: its tag, and how deep in tags of that name
        self._hidden: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if self._hidden:
            self._depth += tag == self._hidden
            if tag == "a" and self.quote is None:
                self.quote = attributes.get("href")
            return
        if "quote-inline" in (attributes.get("class") or "").split():
            self._hidden, self._depth = tag, 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "p":
            if self._paragraphs:
                self.parts.append("\n\n")
            self._paragraphs += 1
        elif tag == "a":
            classes = (attributes.get("class") or "").split()
            href = attributes.get("href")
            if href and not {"mention", "hashtag"} & set(classes):
                self.links.append(href)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._hidden:
            self._depth -= 1
            if not self._depth:
                self._hidden = None

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)
