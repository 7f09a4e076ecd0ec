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
  positive; and a launch on the last two days: a burst (six times the posts, 15:00-17:00 UTC of
  the first), then a new conversation about it (~40% of English posts).
- Reposts (~12%, ``RT @handle: <original text>``), exact duplicates (~2%, the previous row
  delivered again), replies (~15%, ``@handle ...``), other languages (~8%), very long texts
  (~1%, 1,000+ characters) and empty texts (~0.5%). The ``hashtags``, ``mentions`` and ``links``
  columns always agree with the text.

This module holds the settings, the incremental API and the assembly of a range of posts; the
parts come from ``rng`` (the per-index random bits), ``kinds`` (duplicates, reposts, empty and
long posts), ``timeline`` (when), ``people`` (who, with ``people.toml``) and ``texts`` (what, with
``texts.toml``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flows.cursors import SampleCursor
from flows.schema import POST_SCHEMA, UTC_TIMESTAMP
from flows.sources.base import Batch
from flows.sources.sample.kinds import delivered, earlier_original, kinds
from flows.sources.sample.people import CLIENT_NAMES, author_of, authors, client_of
from flows.sources.sample.rng import S_REPOST_TARGET
from flows.sources.sample.texts import compose, text_bank
from flows.sources.sample.timeline import micros, posting_plan, times


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

    ``SampleCursor.next_index`` is the first post not yet delivered, so a run stopped by its
    limit or killed after a batch goes on with the next post, with no gap and no overlap.
    """

    name = "sample"

    def __init__(self, settings: SampleSettings) -> None:
        self.settings = settings

    def fetch(self, hashtag: str, cursor: SampleCursor, limit: int | None) -> Iterator[Batch]:
        """Yield the posts after `cursor`, `batch_size` at a time, at most `limit` in all."""
        settings = self.settings
        start = cursor.next_index
        stop = settings.posts if limit is None else min(settings.posts, start + max(limit, 0))
        collected_at = datetime.now(UTC)
        newest_time = cursor.newest_time
        for first in range(start, stop, settings.batch_size):
            last = min(first + settings.batch_size, stop)
            posts = generate_posts(first, last, settings, hashtag, collected_at)
            batch_newest = pc.max(posts["created_at"]).as_py().astimezone(UTC)
            newest_time = batch_newest if newest_time is None else max(newest_time, batch_newest)
            yield Batch(posts, SampleCursor(next_index=last, newest_time=newest_time))


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
    if not re.fullmatch(r"\w+", tag):  # any script, as [twitter_config] hashtag allows
        raise ValueError(f"hashtag {hashtag!r}: use letters, digits and underscores only")
    bank = text_bank(tag)
    people = authors()
    plan = posting_plan(settings.posts, settings.days, settings.seed, settings.window()[0])
    seed = settings.seed

    idx = np.arange(start, stop, dtype=np.int64)
    src = delivered(idx, seed)  # a duplicate row shows the post before it again
    repost = kinds(src, seed)[1]
    rows = np.flatnonzero(repost)
    content = src.copy()  # whose text a row shows: its own, or the reposted post's
    content[rows] = earlier_original(src[rows], seed, S_REPOST_TARGET, plan.lookback)

    created, day = times(src, plan, seed)
    author = author_of(src, seed)
    content_day, content_author = day.copy(), author.copy()
    content_day[rows] = times(content[rows], plan, seed)[1]
    content_author[rows] = author_of(content[rows], seed)
    parts = compose(content, content_day, content_author, plan, bank, seed)

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
        "collected_at": pa.array(np.full(n, micros(collected_at)), UTC_TIMESTAMP),
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
        "client": CLIENT_NAMES.take(client_of(src, author, seed)),
        "quoted_post": pa.nulls(n, pa.string()),  # the sample does not quote
    }
    return pa.Table.from_arrays(list(columns.values()), schema=POST_SCHEMA)


def _offsets(counts: np.ndarray) -> pa.Array:
    return pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
