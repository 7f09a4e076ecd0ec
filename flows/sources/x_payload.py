"""X posts as POST_SCHEMA rows, from the shapes they come in.

X API v2 response pages and tweet objects (the live `x` source, twarc2 exports read by the `file`
source, snscrape results rewritten as pages), and rows of the original project's snscrape-era
table. Every shape becomes ``source="x"`` with ``post_id = "x:<tweet id>"``, so live, scraped and
imported copies of a post de-duplicate in the lake.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flows.sources.base import Record
from flows.sources.values import RowError, as_int, as_str, as_time, attempt, nested, required

_HASHTAG = re.compile(r"(?<![\w&])#(\w+)")
_MENTION = re.compile(r"(?<![\w@])@(\w+)")
_LINK = re.compile(r"https?://[^\s<>\"']+")
_STATUS_URL = re.compile(r"(?:twitter|x)\.com/(\w+)/status(?:es)?/(\d+)")
# the link X adds for a post's photo, video or GIF: the media, shown in the post, not a link
_MEDIA_URL = re.compile(r"(?:twitter|x)\.com/\w+/status/\d+/(?:photo|video)/\d+$")
# X's own codes that name no language (undetermined, no linguistic content, and its q-codes for
# posts of media, hashtags, mentions or cashtags only), and the legacy codes it still sends
_NO_LANGUAGE = re.compile(r"und|zxx|q[a-t][a-z]")
_LEGACY_LANG = {"in": "id", "iw": "he", "ji": "yi"}


def x_page_posts(page: Record, hashtag: str, collected_at: datetime) -> list[Record | str]:
    """The posts of one X API v2 response page, authors joined from ``includes.users``; a tweet
    that cannot be mapped comes as a string saying why."""
    data = page.get("data") or []
    tweets = [data] if isinstance(data, dict) else data  # a single-tweet lookup returns one object
    includes = page.get("includes") or {}
    users = {user.get("id"): user for user in includes.get("users") or ()}
    # the posts that these reference (``expansions=referenced_tweets.id``): a retweet's original
    originals = {tweet.get("id"): tweet for tweet in includes.get("tweets") or ()}
    results = []
    for tweet in tweets:
        post = attempt(x_tweet_post, tweet, hashtag, collected_at, users, originals)
        results.append(post if isinstance(post, dict) else f"tweet {_tweet_id(tweet)}: {post}")
    return results


def _tweet_id(tweet: Any) -> str:
    return str(tweet.get("id")) if isinstance(tweet, dict) else "?"


def x_tweet_post(
    tweet: Record,
    hashtag: str,
    collected_at: datetime,
    users: Mapping[str, Record] | None = None,
    originals: Mapping[str, Record] | None = None,
) -> Record:
    """One X API v2 tweet object; its author is inline (twarc2 flatten) or one of `users`.

    A retweet shows what X shows: the original post's full text, tags, counts and language
    (from `originals`, the page's ``includes.tweets``, or inline in a flattened tweet; the
    retweet's own text is cut to "RT @user: …"), under the retweeting author and time.
    """
    author = nested(tweet.get("author")) or (users or {}).get(tweet.get("author_id")) or {}
    refs = nested(tweet.get("referenced_tweets")) or ()
    references = {ref.get("type"): as_str(ref.get("id")) for ref in refs}
    # `twarc2 flatten` writes each referenced post inline, in its entry of referenced_tweets
    inline = {as_str(ref.get("id")): ref for ref in refs if "text" in ref}
    retweeted = references.get("retweeted")
    shown = (originals or {}).get(retweeted) or inline.get(retweeted) or tweet
    # a post longer than 280 characters has its full text in `note_tweet`
    note = nested(shown.get("note_tweet")) or {}
    raw = as_str(note.get("text")) or as_str(shown.get("text")) or ""
    text = _unescape(raw)
    metrics = nested(shown.get("public_metrics")) or {}
    entities = nested(note.get("entities")) or nested(shown.get("entities"))
    quoted = references.get("quoted")
    return {
        **_x_identity(hashtag, collected_at, required(tweet, "id"), as_str(author.get("username"))),
        "author_name": as_str(author.get("name")),
        "created_at": as_time(required(tweet, "created_at")),
        "text": text,
        "lang": _lang(shown.get("lang")),
        "like_count": as_int(metrics.get("like_count")),
        "repost_count": as_int(metrics.get("retweet_count")),
        "reply_count": as_int(metrics.get("reply_count")),
        "quote_count": as_int(metrics.get("quote_count")),
        "is_repost": retweeted is not None or raw.startswith("RT @"),
        "in_reply_to": references.get("replied_to"),
        **_tags(entities, text, quoted),
        "client": _client(tweet.get("source")),
        "quoted_post": quoted,
    }


def _unescape(text: str) -> str:
    """X's text as shown: the API escapes exactly ``&``, ``<`` and ``>`` (``&amp;`` last, so
    a written "&amp;lt;" stays "&lt;")."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _lang(value: Any) -> str | None:
    """An ISO 639-1 code, or None where X determined no language."""
    lang = as_str(value)
    if lang is None or _NO_LANGUAGE.fullmatch(lang):
        return None
    return _LEGACY_LANG.get(lang, lang)


def original_row_post(row: Record, hashtag: str, collected_at: datetime) -> Record:
    """A row of the original project's snscrape-era table."""
    url = as_str(row.get("url")) or ""
    match = _STATUS_URL.search(url)
    tweet_id = match.group(2) if match else as_str(row.get("id"))
    if not tweet_id:
        raise RowError(f"no tweet id: 'url' {url!r} is not a status URL and there is no 'id'")
    username = as_str(row.get("username")) or (match.group(1) if match else None)
    # snscrape's `content` is the escaped text of Twitter's API, as the live answers
    text = _unescape(as_str(row.get("content")) or "")
    return {
        **_x_identity(hashtag, collected_at, tweet_id, username),
        "author_name": None,
        "created_at": as_time(required(row, "created_utc")),
        "text": text,
        "lang": _lang(row.get("lang")),
        "like_count": as_int(row.get("likes")),
        "repost_count": as_int(row.get("retweets")),
        "reply_count": as_int(row.get("replies")),
        "quote_count": None,
        "is_repost": text.startswith("RT @"),
        "in_reply_to": None,
        **_tags(None, text),
        "client": _client(row.get("source")),
    }


def _x_identity(
    hashtag: str, collected_at: datetime, tweet_id: Any, username: str | None
) -> Record:
    tweet_id = str(tweet_id)
    return {
        "post_id": f"x:{tweet_id}",
        "source": "x",
        "native_id": tweet_id,
        "hashtag": hashtag,
        # without a username, X still resolves the post through /i/web/
        "url": f"https://x.com/{username or 'i/web'}/status/{tweet_id}",
        "author_handle": username,
        "collected_at": collected_at,
    }


def _tags(entities: Record | None, text: str, quoted: str | None = None) -> dict[str, list[str]]:
    """Hashtags (lower case, no '#'), mentions (no '@') and links, from `entities` when the
    payload has them (the API leaves out empty lists), else from the text.

    Links leave out what X shows as part of the post rather than as a link: its media
    (``…/photo/1``, entities with a ``media_key``) and the post it quotes (`quoted`).
    """
    if entities is not None:
        hashtags = [h["tag"] for h in entities.get("hashtags") or ()]
        mentions = [m["username"] for m in entities.get("mentions") or ()]
        links = [
            u.get("expanded_url") or u["url"]
            for u in entities.get("urls") or ()
            if not u.get("media_key")
        ]
    else:
        hashtags = _HASHTAG.findall(text)
        mentions = _MENTION.findall(text)
        links = [link.rstrip(".,;:!?)…") for link in _LINK.findall(text)]
    return {
        "hashtags": list(dict.fromkeys(tag.lower() for tag in hashtags)),
        "mentions": list(dict.fromkeys(mentions)),
        "links": list(dict.fromkeys(link for link in links if not _shown(link, quoted))),
    }


def _shown(link: str, quoted: str | None) -> bool:
    """Whether X shows `link` inside the post: its media, or the post it quotes."""
    if _MEDIA_URL.search(link.split("?", 1)[0]):
        return True
    status = _STATUS_URL.search(link)
    return quoted is not None and status is not None and status.group(2) == quoted


def _client(source: Any) -> str | None:
    """The posting app; v1.1-era payloads wrap it in an HTML link."""
    value = as_str(source)
    if value is None:
        return None
    if "<" in value:
        value = re.sub(r"<[^>]+>", "", value)
    return html.unescape(value).strip() or None
