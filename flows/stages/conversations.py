"""Emerging conversations, computed at the end of analyze into the table ``conversations``.

The window is the `WINDOW_DAYS` whole UTC days up to the hashtag's newest post, matched against
the window before it. The embeddings are read from ``post_embeddings``, where analyze stores
those the lite backend computes while classifying; the posts of both windows that have none
(classified by another backend, or with no content) are embedded here once by the `Encoder`, which
loads its model only then, and stored, so a post is never embedded twice. Reposts are left out:
they repeat a text.

Clustering costs time with the square of a window's posts, and a window changes little from one
analyze to the next (a stream analyzes every minute): a window is computed again only once it
holds `RECOMPUTE_GROWTH` more posts than at its last computation, or when a new day moves it.
A window of more than `MAX_POSTS` posts is clustered on a fixed sample of that many (the same
posts every time, by a hash of their ids), its sizes scaled to the whole window.
"""

from __future__ import annotations

import logging
import zlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from flows.nlp.conversations import (
    DIMENSIONS,
    EMBEDDING_MODEL_ID,
    Cluster,
    Encoder,
    cluster,
    match,
)
from flows.schema import CONVERSATION_SCHEMA, EMBEDDING_SCHEMA
from flows.warehouse.base import Warehouse

log = logging.getLogger(__name__)

WINDOW_DAYS = 7
EXAMPLES = 3
RECOMPUTE_GROWTH = 0.1  # a window is computed again once it holds this share more posts
MAX_POSTS = 10_000  # posts clustered per window, at most (bench.signals: seconds on two cores)
# the posts of a window that conversations consider
_IN_WINDOW = """hashtag = ? AND created_at >= ? AND created_at < ? AND NOT is_repost
    AND text <> ''"""


def period_end(warehouse: Warehouse, hashtag: str) -> datetime:
    """Midnight (UTC) after the hashtag's newest post; now, when it has none."""
    newest = warehouse.query(
        "SELECT MAX(created_at) AS newest FROM posts WHERE hashtag = ?", [hashtag]
    ).column("newest")[0].as_py()
    newest = newest or datetime.now(UTC)
    return datetime.combine(newest.date() + timedelta(days=1), datetime.min.time(), UTC)


def window_posts(
    warehouse: Warehouse, hashtag: str, start: datetime, end: datetime, encoder: Encoder
) -> tuple[pa.Table, np.ndarray, int]:
    """The window's posts (not reposts, not empty; a sample of `MAX_POSTS` of a larger window)
    and their int8 embeddings, in post order, and how many posts the window holds; the
    embeddings missing from ``post_embeddings`` are computed and stored."""
    posts = warehouse.query(
        f"""SELECT e.post_id, e.text, e.url, e.sentiment, e.engagement, v.embedding
        FROM (SELECT * FROM posts_enriched WHERE {_IN_WINDOW}) AS e
        LEFT JOIN post_embeddings AS v ON v.post_id = e.post_id AND v.model_id = ?
        ORDER BY e.created_at, e.post_id""",
        [hashtag, start, end, EMBEDDING_MODEL_ID],
    )
    total = posts.num_rows
    if total > MAX_POSTS:  # the same sample each time: no post embedded in vain
        ids = posts.column("post_id").to_pylist()
        keep = np.argsort([zlib.crc32(i.encode()) for i in ids], kind="stable")[:MAX_POSTS]
        posts = posts.take(np.sort(keep))
    stored = posts.column("embedding").to_pylist()
    missing = [i for i, vector in enumerate(stored) if vector is None]
    if missing:
        log.info("embedding %d posts of #%s for conversations", len(missing), hashtag)
        texts = posts.column("text").to_pylist()
        vectors = encoder.embed([texts[i] for i in missing])
        rows = pa.table(
            {
                "post_id": pa.array([posts.column("post_id")[i].as_py() for i in missing]),
                "model_id": pa.array([EMBEDDING_MODEL_ID] * len(missing)),
                "embedding": pa.array([v.tobytes() for v in vectors], pa.binary()),
                "embedded_at": pa.array([datetime.now(UTC)] * len(missing)),
            }
        )
        warehouse.load_embeddings(rows.cast(EMBEDDING_SCHEMA))
        for i, vector in zip(missing, vectors):
            stored[i] = vector.tobytes()
    vectors = np.frombuffer(b"".join(stored), np.int8).reshape(len(stored), DIMENSIONS)
    return posts.drop_columns(["embedding"]), vectors, total


def _share(posts: pa.Table, members: np.ndarray, label: str) -> float | None:
    sentiments = [posts.column("sentiment")[int(i)].as_py() for i in members]
    analysed = [s for s in sentiments if s is not None]
    return sum(s == label for s in analysed) / len(analysed) if analysed else None


def window_size(warehouse: Warehouse, hashtag: str, start: datetime, end: datetime) -> int:
    """How many posts of `hashtag` conversations consider between `start` and `end`."""
    sql = f"SELECT COUNT(*) AS n FROM posts_enriched WHERE {_IN_WINDOW}"
    return warehouse.query(sql, [hashtag, start, end]).column("n")[0].as_py()


def conversation_rows(
    hashtag: str,
    start: datetime,
    end: datetime,
    posts: pa.Table,
    vectors: np.ndarray,
    current: list[Cluster],
    previous: list[Cluster],
    sizes: tuple[int, int] | None = None,
) -> pa.Table:
    """The ``conversations`` rows of one window's clusters, each with its match before.

    `sizes`: the posts of the window and of the window before, when the clusters are of a
    sample of them (`MAX_POSTS`): the clusters' sizes are scaled to them.
    """
    x = vectors.astype(np.float32)
    now = datetime.now(UTC)
    total, total_before = sizes or (posts.num_rows, posts.num_rows)

    def scaled(members: int, of: int) -> int:
        """A cluster's size in a window of `of` posts, of which `MAX_POSTS` were clustered."""
        return round(members * of / MAX_POSTS) if of > MAX_POSTS else members

    rows = []
    for rank, (found, before) in enumerate(zip(current, match(current, previous))):
        nearest = found.members[np.argsort(-(x[found.members] @ found.centroid), kind="stable")]
        examples = [int(i) for i in nearest[:EXAMPLES]]
        size = scaled(len(found.members), total)
        previous_size = 0 if before is None else scaled(len(previous[before].members), total_before)
        rows.append(
            {
                "hashtag": hashtag,
                "window_start": start,
                "window_end": end,
                "conversation_id": f"{start:%Y%m%d}-{rank}",
                "label": found.label,
                "size": size,
                "previous_size": previous_size,
                "growth": size - previous_size,
                "negative_share": _share(posts, found.members, "negative"),
                "positive_share": _share(posts, found.members, "positive"),
                "example_post_ids": [posts.column("post_id")[i].as_py() for i in examples],
                "example_urls": [posts.column("url")[i].as_py() or "" for i in examples],
                "computed_at": now,
                "window_posts": total,
            }
        )
    if not rows:  # none found: the computation is kept all the same, so it is not made again
        rows.append(
            {
                "hashtag": hashtag, "window_start": start, "window_end": end,
                "conversation_id": f"{start:%Y%m%d}-none", "label": "", "size": 0,
                "previous_size": 0, "growth": 0, "computed_at": now, "window_posts": total,
            }
        )
    return pa.Table.from_pylist(rows, schema=CONVERSATION_SCHEMA)


def _last_computation(warehouse: Warehouse, hashtag: str, end: datetime) -> tuple[int | None, int]:
    """The window's posts at the latest computation of the window ending at `end` (None: not
    computed, or before that was kept), and the conversations it found."""
    found = warehouse.query(
        """SELECT MAX(window_posts) AS posts,
            CAST(SUM(CASE WHEN size > 0 THEN 1 ELSE 0 END) AS BIGINT) AS conversations
        FROM conversations
        WHERE hashtag = ? AND window_end = ? AND computed_at = (
            SELECT MAX(computed_at) FROM conversations WHERE hashtag = ? AND window_end = ?)""",
        [hashtag, end, hashtag, end],
    ).to_pylist()[0]
    return found["posts"], found["conversations"] or 0


def update_conversations(warehouse: Warehouse, hashtag: str, encoder: Encoder) -> int:
    """Compute the conversations of the latest window into ``conversations``, unless they stand
    (`RECOMPUTE_GROWTH`); how many the window has."""
    end = period_end(warehouse, hashtag)
    start, before = end - timedelta(days=WINDOW_DAYS), end - timedelta(days=2 * WINDOW_DAYS)
    counted, found = _last_computation(warehouse, hashtag, end)
    total = window_size(warehouse, hashtag, start, end)
    if counted is not None and total < counted * (1 + RECOMPUTE_GROWTH):
        return found
    clusters, totals = [], []
    for a, b in ((before, start), (start, end)):
        posts, vectors, total = window_posts(warehouse, hashtag, a, b, encoder)
        clusters.append(cluster(vectors, posts.column("text").to_pylist(), [hashtag]))
        totals.append(total)
    rows = conversation_rows(
        hashtag, start, end, posts, vectors, clusters[1], clusters[0], (totals[1], totals[0])
    )
    warehouse.load_conversations(rows)
    return len(clusters[1])
