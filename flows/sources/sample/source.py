"""The `sample` source: a deterministic, offline generator of realistic posts for one hashtag.

It stands in for a social network in the demo, the tests and the benchmarks. Post ``i`` of a sample
is a pure function of ``(seed, i, settings, hashtag)``: every random choice comes from a
splitmix64 hash of the seed and the index, so any range of posts can be generated on its own, in
any chunking, with numpy and pyarrow compute and no per-post Python loop.

What the data looks like, so that dashboards have something to show:

- ``posts`` posts over ``days`` days; the last day is ``end_date`` (UTC). ``created_at`` grows with
  the index, with a little jitter; weekdays and afternoons (UTC) are busier, and volume grows
  slowly.
- Several hundred authors with a Zipf-like skew (a few newsletters and regulars post a lot), plus
  small pools of German, Spanish, French, Portuguese and Japanese authors.
- Texts are assembled from parts (an opener, a body about data tools and companies, a mention, a
  link, a tail of hashtags and emoji) with clear positive, negative or neutral cues and a topic.
- The story, when ``days >= 14``: a week of a cloud outage (starting on a Monday about 30% into
  the window) where volume jumps and negative posts dominate at first, then fade; and a
  conference week (a Tuesday about 70% into the window, four days) with more posts, most of them
  positive.
- Reposts (~12%, ``RT @handle: <original text>``), exact duplicates (~2%, the previous row
  delivered again), replies (~15%, ``@handle ...``), other languages (~8%), very long texts
  (~1%, 1,000+ characters) and empty texts (~0.5%). The ``hashtags``, ``mentions`` and ``links``
  columns always agree with the text.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flows.schema import POST_SCHEMA, UTC_TIMESTAMP
from flows.sources.base import Batch, Cursor, SourceError


@dataclass(frozen=True)
class SampleSettings:
    """`[sample]`: how many posts the sample holds and how they spread over time.

    Attributes:
        posts: posts in the whole sample.
        days: days the posts spread over.
        seed: changes every random choice; the same seed gives the same posts.
        end_date: the last day of posts (UTC), ``YYYY-MM-DD``.
        batch_size: posts per batch handed to the collector.
    """

    posts: int = 5000
    days: int = 42
    seed: int = 7
    end_date: str = "2026-11-23"
    batch_size: int = 10_000

    def __post_init__(self) -> None:
        if self.posts < 1:
            raise ValueError(f"posts: must be at least 1, got {self.posts}")
        if not 1 <= self.days <= 3650:
            raise ValueError(f"days: must be between 1 and 3650, got {self.days}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed: must be a whole number from 0 to 2**63 - 1, got {self.seed}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be at least 1, got {self.batch_size}")
        try:
            date.fromisoformat(self.end_date)
        except (TypeError, ValueError):
            raise ValueError(
                f"end_date: expected a date like 2026-11-23, got {self.end_date!r}"
            ) from None

    def window(self) -> tuple[datetime, datetime]:
        """The half-open UTC interval ``[first day 00:00, day after end_date 00:00)`` of posts."""
        end = datetime.combine(date.fromisoformat(self.end_date), datetime.min.time(), UTC)
        end += timedelta(days=1)
        return end - timedelta(days=self.days), end


class SampleSource:
    """An incremental API over the sample: posts after the cursor, a batch at a time.

    ``cursor.resume`` (an offset) wins over ``cursor.newest_id`` (the last index delivered), so a
    run stopped by its limit or killed after a batch goes on with the next post, with no gap and
    no overlap.
    """

    name = "sample"

    def __init__(self, settings: SampleSettings) -> None:
        self.settings = settings

    def fetch(self, hashtag: str, cursor: Cursor, limit: int | None) -> Iterator[Batch]:
        """Yield the posts after `cursor`, `batch_size` at a time, at most `limit` in all."""
        settings = self.settings
        start = _start_index(cursor)
        stop = settings.posts if limit is None else min(settings.posts, start + max(limit, 0))
        collected_at = datetime.now(UTC)
        newest_time = cursor.newest_time
        for first in range(start, stop, settings.batch_size):
            last = min(first + settings.batch_size, stop)
            posts = generate_posts(first, last, settings, hashtag, collected_at)
            batch_newest = pc.max(posts["created_at"]).as_py().astimezone(UTC)
            newest_time = batch_newest if newest_time is None else max(newest_time, batch_newest)
            yield Batch(
                posts,
                cursor.advanced(
                    newest_id=str(last - 1),
                    newest_time=newest_time,
                    resume=str(last) if last < settings.posts else None,
                ),
            )


def _start_index(cursor: Cursor) -> int:
    where = cursor.resume if cursor.resume is not None else cursor.newest_id
    if where is None:
        return 0
    if not (where.isascii() and where.isdigit()):
        raise SourceError(
            f"sample: the saved cursor {cursor} is not from the sample source (expected a post "
            "index). Remove the sample entry from the lake's _state/cursors.json to start over."
        )
    return int(where) if cursor.resume is not None else int(where) + 1


def generate_posts(
    start: int, stop: int, settings: SampleSettings, hashtag: str, collected_at: datetime
) -> pa.Table:
    """Posts with indices ``[start, stop)`` of the sample, in `POST_SCHEMA`.

    Args:
        start: first index (0-based).
        stop: one past the last index; at most ``settings.posts``.
        settings: the sample's settings.
        hashtag: the hashtag followed, without '#'; the ``hashtag`` column holds it in lower case.
        collected_at: the ``collected_at`` of every row (naive means UTC).

    Example:
        >>> t = generate_posts(0, 3, SampleSettings(), "dataengineering", datetime.now(UTC))
        >>> t.column("post_id").to_pylist()
        ['sample:0', 'sample:1', 'sample:2']
    """
    if not 0 <= start <= stop <= settings.posts:
        raise ValueError(
            f"indices [{start}, {stop}) are outside the sample's 0..{settings.posts} posts"
        )
    tag = hashtag.removeprefix("#")
    if not re.fullmatch(r"\w+", tag, re.ASCII):
        raise ValueError(f"hashtag {hashtag!r}: use letters, digits and underscores only")
    bank = _text_bank(tag)
    people = _authors()
    plan = _plan(settings)
    seed = settings.seed

    idx = np.arange(start, stop, dtype=np.int64)
    src = _delivered(idx, seed)  # a duplicate row shows the post before it again
    repost = _kinds(src, seed)[1]
    rows = np.flatnonzero(repost)
    content = src.copy()  # whose text a row shows: its own, or the reposted post's
    content[rows] = _earlier_original(src[rows], seed, _S_REPOST_TARGET, plan.lookback)

    created, day = _times(src, plan, seed)
    author = _author(src, seed)
    content_day, content_author = day.copy(), author.copy()
    content_day[rows] = _times(content[rows], plan, seed)[1]
    content_author[rows] = _author(content[rows], seed)
    parts = _compose(content, content_day, content_author, plan, bank, seed)

    rt_author = np.where(repost, content_author, -1)
    mentions = np.stack([rt_author, parts.reply_author, parts.cc_author], axis=1)
    has_mention = mentions >= 0
    mention_ids = mentions[has_mention]  # row-major: RT, reply, cc, as in the text

    text = pc.binary_join_element_wise(
        people.rt_prefix.take(rt_author + 1),
        people.reply_prefix.take(parts.reply_author + 1),
        bank.openers.take(parts.opener),
        parts.bodies.take(parts.body),
        people.cc.take(parts.cc_author + 1),
        bank.links.take(parts.link),
        bank.tails.take(parts.tail),
        "",
    )
    native_id = pa.array(src).cast(pa.string())
    handle = people.handle.take(author)
    in_reply_to = pa.array(parts.reply_to, mask=repost | (parts.reply_to < 0)).cast(pa.string())
    has_link = parts.link > 0
    n = len(idx)

    columns = {
        "post_id": pc.binary_join_element_wise("sample:", native_id, ""),
        "source": pa.repeat(pa.scalar("sample"), n),
        "native_id": native_id,
        "hashtag": pa.repeat(pa.scalar(tag.lower()), n),
        "url": pc.binary_join_element_wise("https://sample.invalid/@", handle, "/", native_id, ""),
        "author_handle": handle,
        "author_name": people.name.take(author),
        "created_at": pa.array(created, UTC_TIMESTAMP),
        "collected_at": pa.array(np.full(n, _micros(collected_at)), UTC_TIMESTAMP),
        "text": text,
        "lang": bank.langs.take(parts.lang),
        "like_count": pa.array(np.where(repost, 0, parts.likes)),
        "repost_count": pa.array(parts.reposts),
        "reply_count": pa.array(parts.replies),
        "quote_count": pa.array(parts.quotes),
        "is_repost": pa.array(repost),
        "in_reply_to": in_reply_to,
        "hashtags": bank.tail_tags.take(parts.tail),
        "mentions": pa.ListArray.from_arrays(
            _offsets(has_mention.sum(axis=1)), people.handle.take(mention_ids)
        ),
        "links": pa.ListArray.from_arrays(
            _offsets(has_link), bank.link_urls.take(parts.link[has_link])
        ),
        "client": _CLIENT_NAMES.take(_client(src, author, seed)),
    }
    return pa.Table.from_arrays(list(columns.values()), schema=POST_SCHEMA)


# --- per-index randomness -------------------------------------------------------------------

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MASK64 = 2**64 - 1

# One stream per independent choice; a stream is a splitmix64 sequence keyed by (seed, stream).
# fmt: off
(
    _S_KIND, _S_REPLY, _S_LANG, _S_AUTHOR, _S_REPOST_TARGET, _S_REPLY_TARGET, _S_JITTER, _S_THEME,
    _S_SENTIMENT, _S_BODY, _S_CC, _S_LINK, _S_TAIL, _S_CLIENT, _S_LIKES, _S_COUNTS, _S_LONG,
    _S_DAY, _S_PEOPLE,
) = range(19)
# fmt: on


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place."""
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


@functools.cache
def _stream_key(seed: int, stream: int) -> np.uint64:
    z = (seed * 0x632BE59BD9B4E019 + stream * 0xD1B54A32D192ED03 + 1) & _MASK64
    return _mix(np.array([z], dtype=np.uint64))[0]


def _hash(idx: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """64 random bits per index; the same index always gets the same bits."""
    z = idx.astype(np.uint64)
    z *= _GAMMA
    z += _stream_key(seed, stream)
    return _mix(z)


def _unit(bits: np.ndarray) -> np.ndarray:
    """A uniform float in [0, 1) from the low 32 bits."""
    # via int64: numpy converts int64 to float faster than uint64
    return (bits & np.uint64(0xFFFFFFFF)).view(np.int64).astype(np.float64) * 2.0**-32


def _pick(bits: np.ndarray) -> np.ndarray:
    """A uniform int in [0, 2**31) from the high bits, independent of `_unit`."""
    return (bits >> np.uint64(33)).view(np.int64)


class _Categorical:
    """Draws category ``k`` with probability ``weights[k]``: ``searchsorted(cdf, u, "right")``.

    A lookup table gives each draw's category to within one or two, and a comparison or two
    makes it exact: five times faster than numpy's searchsorted on unsorted keys.
    """

    _CELLS = 1 << 16

    def __init__(self, weights: np.ndarray) -> None:
        cdf = np.cumsum(weights) / np.sum(weights)
        cdf[-1] = 1.0  # no u < 1 falls past the last category
        self.cdf = cdf
        self.table = np.searchsorted(cdf, np.arange(self._CELLS) / self._CELLS, "right")

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """Categories of uniform draws `u` in [0, 1)."""
        k = self.table[(u * self._CELLS).astype(np.int64)]
        while (ahead := u >= self.cdf[k]).any():
            k += ahead
        return k


# --- what kind of post an index is ------------------------------------------------------------

_P_DUPLICATE = 0.02
_P_REPOST = 0.12
_P_EMPTY = 0.006  # of original posts, so ~0.5% of rows
_P_LONG = 0.011
_P_REPLY = 0.175  # of original posts, so ~15% of rows
_P_OTHER_LANG = 0.08
_MIN_GAP = 5  # a reply or repost refers to a post at least this many indices earlier


def _kinds(idx: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    """(duplicate, repost, empty, long) flags of each index."""
    bits = _hash(idx, seed, _S_KIND)
    kind, form = _unit(bits), _pick(bits) * 2.0**-31
    duplicate = (kind < _P_DUPLICATE) & (idx >= 1)
    repost = (kind >= _P_DUPLICATE) & (kind < _P_DUPLICATE + _P_REPOST) & (idx >= _MIN_GAP)
    original = ~duplicate & ~repost & (idx >= 1)  # post 0 is always a plain one
    empty = original & (form < _P_EMPTY)
    long = original & (form >= _P_EMPTY) & (form < _P_EMPTY + _P_LONG)
    return duplicate, repost, empty, long


def _delivered(idx: np.ndarray, seed: int) -> np.ndarray:
    """The post each row shows: a duplicate row shows the row before it (chains resolve)."""
    src = idx.copy()
    todo = np.flatnonzero(_kinds(src, seed)[0])
    while todo.size:
        src[todo] -= 1
        todo = todo[_kinds(src[todo], seed)[0]]
    return src


def _earlier_original(idx: np.ndarray, seed: int, stream: int, lookback: int) -> np.ndarray:
    """A recent earlier post with text of its own (not a duplicate, repost or empty post)."""
    room = np.minimum(idx - _MIN_GAP + 1, lookback)
    target = idx - _MIN_GAP - _pick(_hash(idx, seed, stream)) % room
    todo = np.arange(target.size)
    while todo.size:
        duplicate, repost, empty, _ = _kinds(target[todo], seed)
        todo = todo[duplicate | repost | empty]
        target[todo] -= 1
    return target


# --- time: a volume curve over hourly bins ---------------------------------------------------

_WEEKDAY_VOLUME = np.array([1.0, 1.05, 1.05, 1.0, 0.85, 0.5, 0.45])  # Monday first
_OUTAGE_SHARE = np.array([0.55, 0.45, 0.35, 0.28, 0.2, 0.15, 0.1])  # of English posts, by day
_OUTAGE_VOLUME = np.array([1.8, 1.5, 1.3, 1.2, 1.1, 1.05, 1.05])
_CONFERENCE_SHARE = 0.35
_CONFERENCE_VOLUME = 1.9
_MAX_JITTER_S = 1800.0


@dataclass(frozen=True)
class _Plan:
    posts: int
    start_us: int
    span_s: float
    hours: _Categorical  # the share of posts in each hour of the window
    outage: np.ndarray  # per day: share of English posts about the outage
    conference: np.ndarray  # per day: share of English posts about the conference
    lookback: int  # how many posts back a reply or repost may reach


@functools.lru_cache(maxsize=16)
def _plan(settings: SampleSettings) -> _Plan:
    days = settings.days
    first, _ = settings.window()
    day = np.arange(days)
    weekday = (first.date().weekday() + day) % 7
    outage, conference = np.zeros(days), np.zeros(days)
    volume = _WEEKDAY_VOLUME[weekday] * (1 + 0.25 * day / days)
    volume *= 0.85 + 0.3 * _unit(_hash(day, settings.seed, _S_DAY))
    if days >= 14:
        start = _event_start(round(0.3 * days), 0, len(_OUTAGE_SHARE), weekday, days)
        outage_end = start + len(_OUTAGE_SHARE)
        outage[start:outage_end] = _OUTAGE_SHARE
        volume[start:outage_end] *= _OUTAGE_VOLUME
        start = _event_start(max(round(0.68 * days), outage_end), 1, 4, weekday, days)
        if start >= outage_end:  # a short window may have no room left for the conference
            conference[start : start + 4] = _CONFERENCE_SHARE
            volume[start : start + 4] *= _CONFERENCE_VOLUME
    hour = np.arange(24)
    hourly = 0.35 + np.exp(-(((hour - 15) / 4.5) ** 2))  # Europe's afternoon, America's morning
    return _Plan(
        posts=settings.posts,
        start_us=_micros(first),
        span_s=days * 86400.0,
        hours=_Categorical(np.outer(volume, hourly).ravel()),
        outage=outage,
        conference=conference,
        lookback=max(50, settings.posts // (days * 4)),  # about six hours of posts
    )


def _event_start(near: int, weekday: int, length: int, weekdays: np.ndarray, days: int) -> int:
    """The first `weekday` at or after day `near`, moved back if the event would end too late."""
    start = near + (weekday - weekdays[min(near, days - 1)]) % 7
    return int(min(start, days - length))


def _times(idx: np.ndarray, plan: _Plan, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(created_at in µs since the epoch, day of the window) of each index."""
    share = (idx + 0.5) / plan.posts
    hour = plan.hours(share)
    end = plan.hours.cdf[hour]
    p = end - np.where(hour > 0, plan.hours.cdf[hour - 1], 0.0)
    seconds = (hour + 1 - (end - share) / p) * 3600.0
    gap = 3600.0 / (plan.posts * p)  # mean seconds between posts in this hour
    jitter = np.minimum(1.5 * gap, _MAX_JITTER_S) * (2 * _unit(_hash(idx, seed, _S_JITTER)) - 1)
    seconds = np.clip(seconds + jitter, 0.0, plan.span_s - 1e-6)
    return plan.start_us + (seconds * 1e6).astype(np.int64), (seconds // 86400).astype(np.int64)


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


# --- authors ---------------------------------------------------------------------------------

_LANGS = ("en", "de", "es", "fr", "pt", "ja")

# The most prolific accounts come first: Zipf rank 0 posts most.
_REGULARS = (
    ("pipeline_weekly", "Pipeline Weekly 📬"),
    ("dataeng_jobs", "Data Eng Jobs"),
    ("sql_tips_daily", "SQL Tips Daily"),
    ("lakehouse_news", "Lakehouse News"),
    ("oncall_diaries", "On-call Diaries 🚨"),
)
# fmt: off
_FIRST_NAMES = (
    "Maria", "James", "Priya", "Chen", "Fatima", "Lucas", "Olivia", "Ahmed", "Sofia", "Daniel",
    "Aisha", "Mateo", "Emma", "Ravi", "Hannah", "Kwame", "Yuna", "Noah", "Leila", "Ethan",
    "Grace", "Omar", "Chloe", "Arjun", "Zoe", "Ivan", "Mia", "Tomas", "Nadia", "Samuel",
    "Elena", "Kenji", "Amara", "Liam", "Sara", "Diego", "Ava", "Mohammed", "Lily", "Felix",
    "Nina", "Oscar", "Ines", "Victor", "Ruth", "Jonas", "Maya", "Pablo", "Alice", "Tariq",
)
_LAST_NAMES = (
    "Smith", "Patel", "Garcia", "Nguyen", "Kim", "Okafor", "Rossi", "Kowalski", "Silva", "Cohen",
    "Brown", "Singh", "Murphy", "Haddad", "Larsen", "Novak", "Mensah", "Fischer", "Lopez", "Wong",
    "Taylor", "Ivanova", "Dubois", "Costa", "Ahmed", "Berg", "Reyes", "Moreau", "Clarke", "Sato",
    "Walker", "Khan", "Romero", "Jansen", "Ali", "Evans", "Popescu", "Yilmaz", "Hughes", "Baker",
)
_LANG_NAMES = {
    "de": (("Lukas", "Anna", "Jonas", "Lea", "Felix", "Sophie", "Paul", "Marie"),
           ("Müller", "Schmidt", "Weber", "Wagner", "Becker", "Hoffmann", "Schäfer", "Koch")),
    "es": (("Lucía", "Mateo", "Sofía", "Diego", "Valeria", "Javier", "Carmen", "Andrés"),
           ("García", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Ruiz", "Díaz")),
    "fr": (("Camille", "Louis", "Léa", "Hugo", "Chloé", "Jules", "Manon", "Théo"),
           ("Martin", "Bernard", "Dubois", "Durand", "Lefèvre", "Moreau", "Laurent", "Girard")),
    "pt": (("João", "Ana", "Pedro", "Beatriz", "Rafael", "Mariana", "Tiago", "Inês"),
           ("Silva", "Santos", "Oliveira", "Souza", "Costa", "Pereira", "Almeida", "Ferreira")),
}
_JA_GIVEN = (
    ("yuki", "由紀"), ("haruto", "陽翔"), ("aoi", "葵"), ("ren", "蓮"), ("sakura", "さくら"),
    ("kenta", "健太"), ("mei", "芽衣"), ("sota", "蒼太"),
)
_JA_FAMILY = (
    ("tanaka", "田中"), ("suzuki", "鈴木"), ("sato", "佐藤"), ("takahashi", "高橋"),
    ("watanabe", "渡辺"), ("ito", "伊藤"), ("yamamoto", "山本"), ("nakamura", "中村"),
)
_NAME_SUFFIXES = ("", "", "", "", " 🦆", " | Data Engineer", " 📊", " (she/her)", " ☁️",
                  " | analytics eng")
_EN_AUTHORS = 600
_LANG_AUTHORS = 30
_ZIPF_SHIFT = 2.7  # Zipf-Mandelbrot: the top account writes ~6% of English posts, not ~15%

_CLIENTS = ("Twitter Web App", "Twitter for iPhone", "Twitter for Android", "TweetDeck",
            "Buffer", "Hootsuite")
# fmt: on
_CLIENT_NAMES = pa.array(_CLIENTS)
_CLIENT = _Categorical(np.array([0.36, 0.25, 0.2, 0.08, 0.06, 0.05]))
_P_FAVOURITE_CLIENT = 0.75


@dataclass(frozen=True)
class _People:
    handle: pa.Array
    name: pa.Array
    # "" first, then one entry per author: take(author + 1), with author -1 for none
    reply_prefix: pa.Array  # "@handle "
    rt_prefix: pa.Array  # "RT @handle: "
    cc: pa.Array  # " cc @handle"
    pool_start: np.ndarray  # first author of each language's pool
    rank_en: _Categorical  # Zipf-like
    rank_lang: _Categorical
    popularity: np.ndarray  # engagement multiplier by author
    favourite_client: np.ndarray


def _ascii(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()


@functools.cache
def _authors() -> _People:
    """Every author, deterministic: English pool first, then one pool per other language."""
    bits = _pick(_hash(np.arange(_EN_AUTHORS + 5 * _LANG_AUTHORS), 0, _S_PEOPLE)).tolist()
    people: list[tuple[str, str]] = list(_REGULARS)
    for k in range(len(_REGULARS), _EN_AUTHORS):
        b = bits[k]
        first, last = _FIRST_NAMES[b % 50], _LAST_NAMES[(b >> 6) % 40]
        f, l_ = _ascii(first), _ascii(last)
        handle = (
            f"{f}{l_}",
            f"{f}_{l_[0]}",
            f"{f[0]}{l_}",
            f"{f}_data",
            f"{l_}{f}{k % 97}",
            f"{f}codes",
            f"data{f}",
            f"{f}_{l_}_de",
        )[(b >> 12) % 8]
        people.append((handle, f"{first} {last}{_NAME_SUFFIXES[(b >> 16) % 10]}"))
    for lang in _LANGS[1:]:
        for _ in range(_LANG_AUTHORS):
            b = bits[len(people)]
            if lang == "ja":
                (gr, gk), (fr, fk) = _JA_GIVEN[b % 8], _JA_FAMILY[(b >> 4) % 8]
                people.append((f"{gr}_{fr}", f"{fk} {gk}"))
            else:
                firsts, lasts = _LANG_NAMES[lang]
                first, last = firsts[b % 8], lasts[(b >> 4) % 8]
                people.append((f"{_ascii(first)}_{_ascii(last)}", f"{first} {last}"))
    seen: set[str] = set()
    handles = []
    for k, (handle, _) in enumerate(people):
        handle = handle if handle not in seen else f"{handle}{k}"
        seen.add(handle)
        handles.append(handle)

    rank = np.concatenate([np.arange(_EN_AUTHORS)] + [np.arange(_LANG_AUTHORS)] * 5)
    return _People(
        handle=pa.array(handles),
        name=pa.array([name for _, name in people]),
        reply_prefix=pa.array([""] + [f"@{h} " for h in handles]),
        rt_prefix=pa.array([""] + [f"RT @{h}: " for h in handles]),
        cc=pa.array([""] + [f" cc @{h}" for h in handles]),
        pool_start=np.array([0] + [_EN_AUTHORS + i * _LANG_AUTHORS for i in range(5)]),
        rank_en=_Categorical(1.0 / (np.arange(_EN_AUTHORS) + _ZIPF_SHIFT)),
        rank_lang=_Categorical(1.0 / (np.arange(_LANG_AUTHORS) + _ZIPF_SHIFT)),
        popularity=1 + 12.0 / (rank + 1) ** 0.7,
        favourite_client=_CLIENT((np.array(bits) >> 24) / 2.0**7),
    )


def _lang(idx: np.ndarray, seed: int) -> np.ndarray:
    """Index into `_LANGS`: the language an index writes in (and its author's pool)."""
    bits = _hash(idx, seed, _S_LANG)
    return np.where(_unit(bits) < _P_OTHER_LANG, 1 + _pick(bits) % 5, 0)


def _author(idx: np.ndarray, seed: int) -> np.ndarray:
    people = _authors()
    lang = _lang(idx, seed)
    u = _unit(_hash(idx, seed, _S_AUTHOR))
    return np.where(lang == 0, people.rank_en(u), people.pool_start[lang] + people.rank_lang(u))


def _client(idx: np.ndarray, author: np.ndarray, seed: int) -> np.ndarray:
    u = _unit(_hash(idx, seed, _S_CLIENT))
    other = _CLIENT(np.maximum(u - _P_FAVOURITE_CLIENT, 0) / (1 - _P_FAVOURITE_CLIENT))
    return np.where(u < _P_FAVOURITE_CLIENT, _authors().favourite_client[author], other)


# --- text parts ------------------------------------------------------------------------------

# fmt: off
_TOOLS = ("dbt", "Apache Airflow", "Snowflake", "Databricks", "Apache Spark", "Apache Kafka",
          "BigQuery", "DuckDB", "Prefect", "Dagster", "Fivetran", "Airbyte", "Apache Iceberg",
          "Delta Lake", "PostgreSQL")
_CLOUDS = ("AWS", "Google Cloud", "Azure")
_COMPANIES = ("Snowflake", "Databricks", "Fivetran", "Microsoft", "Google", "Confluent",
              "dbt Labs", "Airbyte")
# fmt: on
_SLOTS = {"{tool}": _TOOLS, "{cloud}": _CLOUDS, "{company}": _COMPANIES}
_EVENT = "Lakehouse Summit"

# Post bodies by theme: three blocks, negative, neutral and positive (the order of
# flows.schema.SENTIMENT_LABELS), one template a line. {tool}, {cloud} and {company} are expanded
# over every value; {n} becomes a number per post. No '#', '@' or links here: those come only from
# their own parts, so that the list columns match the text. The first 12 themes are the topics of
# English posts, then the two events, then one theme per other language.
_THEMES: dict[str, tuple[str, str, str]] = {
    "science_&_technology": (
        """
        Spent {n} hours debugging a silent schema change that broke our {tool} jobs. Frustrating.
        The {tool} upgrade failed again and took half our pipelines down with it. Terrible day.
        Why is {tool} so slow on small files? {n} minutes for a job that should take seconds, awful.
        Another night of alerts because {tool} ran out of memory on {cloud}. I hate this.
        The {tool} docs for this feature are outdated and confusing, wasted the whole afternoon.
        Our {tool} bill on {cloud} doubled this month and nobody knows why. Not happy.
        Flaky tests in the {tool} project again, {n} failures and all of them random. So annoying.
        """,
        """
        Comparing {tool} and Dagster for orchestration next sprint, collecting notes on retries.
        We run {tool} on {cloud} with {n} worker nodes; storage is Parquet on object storage.
        Question for the folks using {tool}: do you partition by ingestion date or event date?
        Reading the {tool} changelog for the next release, {n} items mention the query planner.
        Our stack: Apache Kafka for ingestion, {tool} for transforms, BigQuery as the warehouse.
        Benchmarking {tool} against Apache Spark on a {n} GB dataset this week, results on Friday.
        Migrating {n} tables from PostgreSQL to {tool}, mostly a matter of data types and naming.
        """,
        """
        Moved our nightly batch to {tool} and the pipeline finishes {n} minutes faster. Impressed.
        Incremental models in {tool} are a game changer for our team, love the clean lineage.
        Finally got {tool} running on {cloud} with zero downtime, great docs and a smooth upgrade.
        The new {tool} release is fantastic: faster builds, better error messages, happy engineers.
        Replaced {n} fragile cron scripts with {tool} today. Best decision this quarter.
        Pairing {tool} with DuckDB for local tests is amazing, the suite runs in {n} seconds.
        Schema evolution in Apache Iceberg just saved us a painful backfill, brilliant design.
        """,
    ),
    "business_&_entrepreneurs": (
        """
        {company} raised prices again, {n}% more for the same compute. Disappointing.
        Vendor lock-in with {company} keeps getting worse, the way out takes {n} months. Painful.
        Layoffs at {company} hit the data platform team hard today. Sad news for good engineers.
        Budget freeze means no new {tool} licenses this year, frustrating after all the planning.
        """,
        """
        {company} is reportedly in talks to buy a data integration startup, details next week.
        Pricing comparison: {tool} credits versus on-demand compute on {cloud}, numbers to follow.
        {company} reports earnings on Thursday; analysts expect {n}% growth in data products.
        Hiring a senior data engineer, remote in Europe, the stack is {tool} on {cloud}.
        """,
        """
        {company} just announced strong growth in data cloud revenue, great news for everyone.
        Our startup closed a seed round to build tooling on top of {tool}. Thrilled and grateful!
        Cut our warehouse spend by {n}% after a cost review with {company}. Huge win for the budget.
        Congrats to the {company} team on the launch, customers are already loving it.
        """,
    ),
    "learning_&_educational": (
        """
        Followed the official {tool} tutorial and step {n} is broken. Beginners deserve better.
        The {cloud} certification exam was confusing and badly worded, really disappointed.
        So many outdated blog posts about {tool}, hard to learn when half the examples fail.
        """,
        """
        Study plan: {tool} basics on Monday, window functions on Wednesday, a project on Friday.
        Lecture notes on change data capture with Apache Kafka are up, chapter {n} covers schemas.
        Tip: read the query plan before tuning anything in {tool}.
        New tutorial series on a small lakehouse with Delta Lake and Apache Spark, part {n}.
        """,
        """
        The free course on {tool} fundamentals is excellent, finished module {n} and loved it.
        Wrote a beginner guide to {tool} and {n} people already said it helped them. Thank you all!
        Great workshop on data modeling today, finally understand slowly changing dimensions.
        Best explanation of partitioning and clustering in {tool} I have read, highly recommend.
        """,
    ),
    "news_&_social_concern": (
        """
        Another massive data breach exposed {n} million records. Security is still an afterthought.
        Worrying report on how much energy data centers use, and it keeps growing. Not sustainable.
        A privacy scandal at a big tech company again. Terrible handling of user data.
        """,
        """
        Regulators published new guidance on data retention in the cloud, {n} pages, summary below.
        Report: {n}% of companies now keep analytics data in more than one cloud.
        New EU data rules start next month; teams on {cloud} need to review where data is stored.
        """,
        """
        Good to see open data rules that make transit data free to use. Great step for transparency.
        {company} pledged to run its data centers on clean energy by 2030, welcome news.
        """,
    ),
    "diaries_&_daily_life": (
        """
        Woke up to {n} failed jobs and cold coffee. What a start to the week.
        Tired of being on call every other week, weekends keep getting ruined.
        Missed dinner again because a backfill would not finish. This job is exhausting sometimes.
        """,
        """
        Working from the café today, same pipelines, different coffee.
        Morning routine: check the overnight runs, read the on-call notes, then standup.
        Day {n} of the migration project. Moving tables, updating docs, writing tests.
        """,
        """
        Monday win: coffee, a quiet morning, and every pipeline green. Love days like this.
        Afternoon off after shipping the {tool} migration, a walk by the river. Feeling great.
        Day {n} of learning data engineering in public and I am having so much fun.
        """,
    ),
    "youth_&_student_life": (
        """
        Exam on distributed systems tomorrow and I still do not get consensus algorithms. Stressed.
        Applied to {n} internships and got zero replies. Feeling discouraged.
        """,
        """
        Final year project: sensor data through Apache Kafka into {tool}. Any tips for students?
        Group assignment due Friday, still deciding between PostgreSQL and DuckDB.
        """,
        """
        Got my first data engineering internship! So excited to work with {tool} this summer.
        Our uni project with {tool} got an A, the team worked so hard. Proud of us!
        """,
    ),
    "gaming": (
        """
        Game servers lagging all evening, {n}0 ms ping. Ruined the raid night.
        """,
        """
        Streaming game telemetry into {tool} for a side project, about {n} events per match.
        """,
        """
        Built a tiny dashboard of my game stats with DuckDB, way too much fun for a Saturday.
        Finally beat the boss after {n} tries. Great way to forget about broken pipelines!
        """,
    ),
    "music": (
        """
        Neighbours playing loud music while I debug {tool} at midnight. Hate it.
        """,
        """
        What do you listen to while writing SQL? Jazz playlist here.
        """,
        """
        Lo-fi playlist plus a long {tool} refactor is the best combination. Loving this album.
        The concert tonight was amazing, needed that after a long release week.
        """,
    ),
    "sports": (
        """
        Terrible refereeing in tonight's match, still angry. At least the pipelines are green.
        """,
        """
        Watching the match tonight, sprint planning can wait until tomorrow.
        """,
        """
        Our data team won the company football tournament! Great match, so proud.
        """,
    ),
    "fitness_&_health": (
        """
        Back pain from a week of sitting at the desk debugging. Not good.
        """,
        """
        Reminder to stand up and stretch between queries.
        """,
        """
        Morning run done, {n} minutes before standup. Feeling amazing.
        """,
    ),
    "food_&_dining": (
        """
        Ate a sad desk salad during the incident call again. Awful.
        """,
        """
        Pizza Friday while we wait for the backfill.
        """,
        """
        Team lunch to celebrate the {tool} launch, best ramen in town!
        """,
    ),
    "travel_&_adventure": (
        """
        Flight delayed again and the airport wifi cannot even load a dashboard. Exhausting.
        """,
        """
        Flying to Berlin tomorrow for a client workshop on {tool}.
        """,
        """
        Landed in Lisbon for a week of remote work and hiking. Beautiful city, great coffee.
        """,
    ),
    "outage": (
        """
        {cloud} is down again and every pipeline we own is failing. This outage is a disaster.
        Third hour of the {cloud} outage. Dashboards empty, stakeholders angry, we can only wait.
        Huge {cloud} outage today: {tool} jobs stuck, alerts everywhere, terrible day for data.
        The {cloud} status page says all green while nothing works. Frustrating and embarrassing.
        Lost {n} hours of data because of the {cloud} outage. Backfills all weekend, awful.
        Still recovering from the {cloud} outage, {n} failed jobs to rerun. Exhausted.
        """,
        """
        {cloud} published the incident report for the outage: a network configuration change.
        Status: {cloud} services recovering in most regions, our {tool} jobs are queued.
        Post-incident review after the {cloud} outage: a second region for critical pipelines.
        """,
        """
        Kudos to our on-call team for keeping things running during the {cloud} outage. Great work!
        Glad we tested failover last month, the {cloud} outage barely touched us. Happy about that.
        """,
    ),
    "conference": (
        """
        The {event} wifi is terrible and the demo gods were not kind today.
        Sold out sessions at {event} and no recordings. Disappointing for remote folks.
        """,
        """
        Heading to {event} tomorrow, who else is going? Happy to chat about {tool}.
        Second day at {event}: sessions on streaming, table formats and data contracts.
        The {event} schedule is out, {n} talks about {tool} this year.
        """,
        """
        Amazing keynote at {event} this morning, so many great ideas about {tool}.
        Loved my first day at {event}! Met people I have followed here for years.
        Slides from my {event} talk on {tool} are up. Thanks for the fantastic questions!
        {company} just announced a new open source project at {event}, exciting times.
        Best conference of the year: the {event} talks on {tool} and Apache Iceberg were brilliant.
        """,
    ),
    "de": (
        """
        Schon wieder ist der Job in {tool} abgestürzt. Sehr ärgerlich.
        Der Ausfall bei {cloud} hat unsere Pipelines lahmgelegt. Furchtbar.
        """,
        """
        Wir migrieren gerade {n} Tabellen nach {tool}.
        Hat jemand Erfahrung mit {tool} auf {cloud}?
        """,
        """
        Endlich läuft unsere Pipeline mit {tool} stabil. Großartige Arbeit vom Team!
        Super Vortrag heute über {tool}, hat mir sehr gefallen.
        Mit {tool} haben wir die Kosten um {n} Prozent gesenkt. Toll!
        """,
    ),
    "es": (
        """
        Otra vez falló el job de {tool}. Qué frustración.
        La caída de {cloud} nos dejó sin datos toda la mañana. Terrible.
        """,
        """
        Estamos evaluando {tool} y Apache Spark para el nuevo proyecto.
        Migramos {n} tablas a {tool} esta semana.
        """,
        """
        ¡Me encanta cómo {tool} simplifica nuestros pipelines! Excelente trabajo.
        Gran charla sobre {tool} hoy, aprendí muchísimo.
        """,
    ),
    "fr": (
        """
        Encore une panne de {tool} ce matin, c'est vraiment pénible.
        La panne de {cloud} a tout bloqué, horrible journée.
        """,
        """
        Nous testons {tool} sur {cloud} cette semaine.
        {n} tables migrées vers {tool} depuis lundi.
        """,
        """
        Super retour d'expérience sur {tool} aujourd'hui, vraiment génial !
        Notre pipeline {tool} tourne enfin sans erreur, trop content.
        """,
    ),
    "pt": (
        """
        De novo o job do {tool} falhou. Que raiva.
        A queda da {cloud} parou todos os nossos pipelines. Péssimo.
        """,
        """
        Estamos migrando {n} tabelas para o {tool}.
        Alguém usa {tool} com {cloud} em produção?
        """,
        """
        Adorei a nova versão do {tool}, muito mais rápida!
        Ótima palestra sobre {tool} hoje, parabéns ao time.
        """,
    ),
    "ja": (
        """
        また{tool}のジョブが失敗した…本当につらい。
        {cloud}の障害でパイプラインが全部止まった。最悪です。
        """,
        """
        今週は{tool}への移行作業をしています。
        {cloud}で{tool}を使っている方、構成を教えてください。
        """,
        """
        {tool}の新バージョン、最高です！処理が{n}分も速くなりました。
        {tool}の勉強会、とても楽しかった！
        """,
    ),
}
_THEME_NAMES = tuple(_THEMES)
# fmt: off
_TOPIC_WEIGHTS = np.array([0.34, 0.14, 0.13, 0.08, 0.11, 0.04, 0.03, 0.025, 0.025, 0.025,
                           0.025, 0.025])  # the first 12 themes, the topics of English posts
_TOPIC = _Categorical(_TOPIC_WEIGHTS)
_OUTAGE_THEME, _CONFERENCE_THEME = _THEME_NAMES.index("outage"), _THEME_NAMES.index("conference")
_LANG_THEME = np.array([-1] + [_THEME_NAMES.index(lang) for lang in _LANGS[1:]])
# (negative, neutral) sentiment probabilities by theme; positive is the rest
_SENTIMENT = {"news_&_social_concern": (0.4, 0.45), "learning_&_educational": (0.12, 0.45),
              "music": (0.1, 0.3), "outage": (0.68, 0.24), "conference": (0.08, 0.25)}
# fmt: on
_SENTIMENT_CDF = np.array([np.cumsum(_SENTIMENT.get(theme, (0.22, 0.4))) for theme in _THEME_NAMES])

# fmt: off
_OPENERS = (
    ("Ugh. ", "Not again... ", "😤 ", "Rant: ", "Seriously? ", "Bad news: ", "😩 ", "Sigh. "),
    ("PSA: ", "Quick note: ", "FYI ", "Thread 🧵 ", "Update: ", "Note to self: ", "TIL ",
     "Context: "),
    ("Love this! ", "Big win today: ", "🎉 ", "Great news: ", "So happy: ", "🔥 ",
     "Good morning! ", "Yes! ", "🙌 "),
)
# fmt: on
_P_OPENER = 0.45

# Extra hashtags (besides the followed one) by theme; English topics also draw on the generic ones.
# fmt: off
_GENERIC_TAGS = (
    "data", "bigdata", "analytics", "dataops", "sql", "python", "etl", "moderndatastack"
)
_THEME_TAGS = {
    "business_&_entrepreneurs": ("startups", "saas", "funding"),
    "learning_&_educational": ("learning", "100daysofcode", "tutorial"),
    "news_&_social_concern": ("privacy", "datasecurity", "news"),
    "diaries_&_daily_life": ("mondaymotivation", "wfh", "devlife"),
    "youth_&_student_life": ("students", "internship"),
    "gaming": ("gaming",), "music": ("music", "lofi"), "sports": ("football",),
    "fitness_&_health": ("running", "health"), "food_&_dining": ("foodie", "lunch"),
    "travel_&_adventure": ("travel", "remotework"),
    "outage": ("outage", "incident", "sre", "cloud"),
    "conference": ("lakehousesummit", "conference", "keynote"),
    "de": ("daten", "bigdata"), "es": ("datos", "ingenieriadedatos"), "fr": ("donnees", "data"),
    "pt": ("dados", "engenhariadedados"), "ja": ("datajp", "data"),
}
# fmt: on
_TAIL_EMOJI = ("", "", "", "", "", "", " 🚀", " 📊", " 💡", " 📈")

_LINKS = (
    "https://docs.getdbt.com/docs/build/incremental-models",
    "https://airflow.apache.org/docs/apache-airflow/stable/",
    "https://duckdb.org/docs/stable/",
    "https://iceberg.apache.org/spec/",
    "https://docs.delta.io/latest/",
    "https://kafka.apache.org/documentation/",
    "https://spark.apache.org/docs/latest/",
    "https://www.postgresql.org/docs/current/",
    "https://docs.prefect.io/v3/get-started",
    "https://docs.dagster.io/",
    "https://github.com/duckdb/duckdb",
    "https://github.com/apache/airflow/releases",
    "https://github.com/dbt-labs/dbt-core",
    "https://cloud.google.com/bigquery/docs/partitioned-tables",
    "https://blog.sample.invalid/data-contracts-in-practice",
    "https://blog.sample.invalid/cost-of-a-modern-data-stack",
    "https://news.sample.invalid/cloud-outage-postmortem",
    "https://jobs.sample.invalid/senior-data-engineer",
)
_P_LINK = 0.18
_P_CC = 0.08
_NUMBERS = range(2, 40)  # what {n} becomes
_LONG_CHARS = 1000


@dataclass(frozen=True)
class _Bank:
    """Text parts for one hashtag; index 0 of each part array is "" (no such part)."""

    openers: pa.Array
    opener_start: np.ndarray  # by sentiment
    opener_count: np.ndarray
    bodies: pa.Array  # every body template with every number it can take
    template_start: np.ndarray  # by theme * 3 + sentiment: the group's first template
    template_count: np.ndarray
    template_first: np.ndarray  # by template: its first body in `bodies`
    template_variants: np.ndarray  # by template: how many numbers it takes (1 if none)
    long_pool: np.ndarray  # English topic body templates for long posts, by sentiment:
    long_start: np.ndarray  # where each sentiment's starts in `long_pool`
    long_size: np.ndarray
    long_parts: int  # bodies in a long post, enough for _LONG_CHARS
    tails: pa.Array
    tail_tags: pa.Array  # list<string>, lower case, in text order
    tail_start: np.ndarray  # by theme
    tail_count: np.ndarray
    links: pa.Array  # " https://..."
    link_urls: pa.Array  # the URL alone, by the same index
    langs: pa.Array


def _expand(template: str) -> list[str]:
    slots = [slot for slot in _SLOTS if slot in template]
    texts = []
    for values in itertools.product(*(_SLOTS[slot] for slot in slots)):
        text = template.replace("{event}", _EVENT)
        for slot, value in zip(slots, values, strict=True):
            text = text.replace(slot, value)
        texts.append(text)
    return texts


def _groups(groups: list[list[str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Flatten groups behind a leading "": (items, start of each group, size of each group)."""
    sizes = np.array([len(group) for group in groups])
    starts = 1 + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return [""] + [item for group in groups for item in group], starts, sizes


@functools.lru_cache(maxsize=8)
def _text_bank(tag: str) -> _Bank:
    openers, opener_start, opener_count = _groups([list(group) for group in _OPENERS])
    templates, template_start, template_count = _groups(
        [
            [text for line in block.splitlines() if line.strip() for text in _expand(line.strip())]
            for theme in _THEME_NAMES
            for block in _THEMES[theme]
        ]
    )
    # Numbers are rendered here, once, so that a post's body is one `take`.
    variants = [
        [t.replace("{n}", str(n)) for n in _NUMBERS] if "{n}" in t else [t] for t in templates
    ]
    template_variants = np.array([len(v) for v in variants])
    topics = len(_TOPIC_WEIGHTS)
    long_pools = [  # the longer bodies: fewer of them make a long post, so it repeats less
        np.array(
            [
                b
                for g in range(s, topics * 3, 3)
                for b in range(template_start[g], template_start[g] + template_count[g])
                if len(templates[b]) >= 80
            ]
        )
        for s in range(3)
    ]
    long_size = np.array([pool.size for pool in long_pools])
    shortest = min(len(text) for pool in long_pools for b in pool for text in variants[b])

    tails: list[list[str]] = []
    tag_lists: list[list[str]] = [[]]  # "" first, as in every part array
    for theme in _THEME_NAMES:
        extra = [t for t in _THEME_TAGS.get(theme, ()) if t != tag.lower()]
        if _THEME_NAMES.index(theme) < topics:
            extra += [t for t in _GENERIC_TAGS if t != tag.lower()]
        combos = [()] + [(t,) for t in extra] + list(itertools.combinations(extra[:6], 2))
        orders = [(tag, *combo) for combo in combos] + [(*combo, tag) for combo in combos[1:]]
        tails.append([])
        for tags, emoji in itertools.product(orders, _TAIL_EMOJI):
            tails[-1].append(" " + " ".join("#" + t for t in tags) + emoji)
            tag_lists.append([t.lower() for t in tags])
    tail_texts, tail_start, tail_count = _groups(tails)

    return _Bank(
        openers=pa.array(openers),
        opener_start=opener_start,
        opener_count=opener_count,
        bodies=pa.array([text for v in variants for text in v]),
        template_start=template_start,
        template_count=template_count,
        template_first=np.concatenate([[0], np.cumsum(template_variants)[:-1]]),
        template_variants=template_variants,
        long_pool=np.concatenate(long_pools),
        long_start=np.concatenate([[0], np.cumsum(long_size)[:-1]]),
        long_size=long_size,
        long_parts=-(-(_LONG_CHARS + 1) // (shortest + 1)),
        tails=pa.array(tail_texts),
        tail_tags=pa.array(tag_lists, pa.list_(pa.string())),
        tail_start=tail_start,
        tail_count=tail_count,
        links=pa.array([""] + [" " + link for link in _LINKS]),
        link_urls=pa.array([""] + list(_LINKS)),
        langs=pa.array(_LANGS),
    )


# --- composing a post's own text --------------------------------------------------------------


@dataclass(frozen=True)
class _Parts:
    """Per row, indices into the bank (0 = none) and authors (-1 = none) of a post's own text."""

    lang: np.ndarray
    reply_to: np.ndarray  # index of the post replied to, -1 if none
    reply_author: np.ndarray
    cc_author: np.ndarray
    opener: np.ndarray
    bodies: pa.Array  # the bank's bodies, then the long posts' bodies
    body: np.ndarray  # index into `bodies`
    link: np.ndarray
    tail: np.ndarray
    likes: np.ndarray
    reposts: np.ndarray
    replies: np.ndarray
    quotes: np.ndarray


def _compose(
    idx: np.ndarray, day: np.ndarray, author: np.ndarray, plan: _Plan, bank: _Bank, seed: int
) -> _Parts:
    """The parts of the own text of original posts `idx`, written on `day` by `author`."""
    _, _, empty, long = _kinds(idx, seed)
    full = ~empty
    lang = np.where(empty, 0, _lang(idx, seed))
    english = lang == 0
    long &= english

    bits = _hash(idx, seed, _S_THEME)
    event = _unit(bits)
    theme = _TOPIC(_pick(bits) * 2.0**-31)
    theme[event < plan.outage[day]] = _OUTAGE_THEME
    theme[event >= 1 - plan.conference[day]] = _CONFERENCE_THEME
    theme = np.where(english, theme, _LANG_THEME[lang])
    bits = _hash(idx, seed, _S_SENTIMENT)
    sentiment = (_unit(bits)[:, None] >= _SENTIMENT_CDF[theme]).sum(1)
    opener = bank.opener_start[sentiment] + _pick(bits) % bank.opener_count[sentiment]

    group = theme * 3 + sentiment
    bits = _hash(idx, seed, _S_BODY)
    template = bank.template_start[group] + _pick(bits) % bank.template_count[group]
    body = _render(template, bits, bank)
    body[empty] = 0
    bits = _hash(idx, seed, _S_TAIL)
    tail = bank.tail_start[theme] + _pick(bits) % bank.tail_count[theme]
    tail[empty] = 0
    opener[~(full & english) | (_unit(bits) >= _P_OPENER)] = 0
    bits = _hash(idx, seed, _S_LINK)
    link = np.where(full & (_unit(bits) < _P_LINK), 1 + _pick(bits) % len(_LINKS), 0)

    people = _authors()
    bits = _hash(idx, seed, _S_CC)
    cc = full & english & ~long & (_unit(bits) < _P_CC)
    cc_author = np.where(cc, people.rank_en(_pick(bits) * 2.0**-31), -1)

    reply = full & (idx >= _MIN_GAP) & (_unit(_hash(idx, seed, _S_REPLY)) < _P_REPLY)
    reply_to = np.full(idx.size, -1, dtype=np.int64)
    reply_to[reply] = _earlier_original(idx[reply], seed, _S_REPLY_TARGET, plan.lookback)
    reply_author = np.full(idx.size, -1, dtype=np.int64)
    reply_author[reply] = _author(reply_to[reply], seed)

    heavy = (1.0 - _unit(_hash(idx, seed, _S_LIKES))) ** (-1 / 1.4) - 1  # Pareto: a few go viral
    likes = (2.5 * people.popularity[author] * heavy).astype(np.int64)
    bits = _hash(idx, seed, _S_COUNTS)
    u, v = _unit(bits), _pick(bits) * 2.0**-31
    reposts = (likes * 0.3 * u * u).astype(np.int64)
    replies = (likes * 0.2 * v + (theme == _OUTAGE_THEME) * 3 * v).astype(np.int64)

    body[long] = len(bank.bodies) + np.arange(np.count_nonzero(long))
    long_bodies = _long_bodies(idx[long], sentiment[long], bank, seed)
    return _Parts(
        lang=lang,
        reply_to=reply_to,
        reply_author=reply_author,
        cc_author=cc_author,
        opener=opener,
        body=body,
        bodies=pa.concat_arrays([bank.bodies, long_bodies]),
        link=link,
        tail=tail,
        likes=likes,
        reposts=reposts,
        replies=replies,
        quotes=(reposts * 0.3 * v).astype(np.int64),
    )


def _render(template: np.ndarray, bits: np.ndarray, bank: _Bank) -> np.ndarray:
    """Index in `bank.bodies` of each body template with a number drawn from `_unit(bits)`."""
    variant = (_unit(bits) * bank.template_variants[template]).astype(np.int64)
    return bank.template_first[template] + variant


def _long_bodies(idx: np.ndarray, sentiment: np.ndarray, bank: _Bank, seed: int) -> pa.Array:
    """Rants and threads: many English bodies of the same sentiment, one after another."""
    parts = np.arange(1, bank.long_parts + 1, dtype=np.uint64) * _GAMMA  # wraps, as it should
    bits = _mix(_hash(idx, seed, _S_LONG)[:, None] + parts)  # a row of bits per post
    sentiment = sentiment[:, None]
    template = bank.long_pool[bank.long_start[sentiment] + _pick(bits) % bank.long_size[sentiment]]
    bodies = bank.bodies.take(_render(template, bits, bank).ravel())
    offsets = np.arange(idx.size + 1, dtype=np.int32) * bank.long_parts
    return pc.binary_join(pa.ListArray.from_arrays(offsets, bodies), " ")


def _offsets(counts: np.ndarray) -> pa.Array:
    return pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
