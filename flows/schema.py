"""The two record shapes every stage agrees on: a post, and the NLP result for a post.

Sources map their payloads onto ``POST_SCHEMA``; nothing downstream knows where a post came from
except the ``source`` column. ``NLP_SCHEMA`` is what a backend returns per text, keyed in the
warehouse by ``(post_id, model_id)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")

POST_SCHEMA = pa.schema(
    [
        pa.field("post_id", pa.string(), nullable=False),  # "<source>:<native_id>", globally unique
        pa.field("source", pa.string(), nullable=False),
        pa.field("native_id", pa.string(), nullable=False),
        pa.field("hashtag", pa.string(), nullable=False),  # lower case, without '#'
        pa.field("url", pa.string()),
        pa.field("author_handle", pa.string()),
        pa.field("author_name", pa.string()),
        pa.field("created_at", UTC_TIMESTAMP, nullable=False),
        pa.field("collected_at", UTC_TIMESTAMP, nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("lang", pa.string()),
        pa.field("like_count", pa.int64()),
        pa.field("repost_count", pa.int64()),
        pa.field("reply_count", pa.int64()),
        pa.field("quote_count", pa.int64()),
        pa.field("is_repost", pa.bool_()),
        pa.field("in_reply_to", pa.string()),
        pa.field("hashtags", pa.list_(pa.string())),
        pa.field("mentions", pa.list_(pa.string())),
        pa.field("links", pa.list_(pa.string())),
        pa.field("client", pa.string()),  # the posting app (the original project's `source`)
        # the post this one quotes, as its source names it (an X post id, a Bluesky at:// URI, a
        # Mastodon status URI or URL); added after the first lakes: files without it read as null
        pa.field("quoted_post", pa.string()),
    ]
)

SENTIMENT_LABELS = ("negative", "neutral", "positive")

# The 19 labels of cardiffnlp/twitter-roberta-base-dec2021-tweet-topic-multi-all, in its id order.
TOPIC_LABELS = (
    "arts_&_culture",
    "business_&_entrepreneurs",
    "celebrity_&_pop_culture",
    "diaries_&_daily_life",
    "family",
    "fashion_&_style",
    "film_tv_&_video",
    "fitness_&_health",
    "food_&_dining",
    "gaming",
    "learning_&_educational",
    "music",
    "news_&_social_concern",
    "other_hobbies",
    "relationships",
    "science_&_technology",
    "sports",
    "travel_&_adventure",
    "youth_&_student_life",
)

ENTITY_TYPE = pa.struct([pa.field("text", pa.string()), pa.field("type", pa.string())])

# What a backend produces for one text (the classify command writes these beside `text`).
NLP_RESULT_SCHEMA = pa.schema(
    [
        pa.field("sentiment", pa.string(), nullable=False),
        pa.field("sentiment_score", pa.float64(), nullable=False),
        pa.field("topic", pa.string(), nullable=False),
        pa.field("topic_score", pa.float64(), nullable=False),
        pa.field("topics", pa.list_(pa.string())),
        pa.field("entities", pa.list_(ENTITY_TYPE)),
        pa.field("model_id", pa.string(), nullable=False),
    ]
)

# A row of the warehouse table `post_nlp`.
NLP_SCHEMA = pa.schema(
    [pa.field("post_id", pa.string(), nullable=False)]
    + list(NLP_RESULT_SCHEMA)
    + [pa.field("analysed_at", UTC_TIMESTAMP, nullable=False)]
)

# stopped: on purpose (budget, rate limit), resumable; running: a stream's record while it runs,
# rewritten at each analyze with its counts so far
RUN_STATUSES = ("ok", "stopped", "failed", "running")

# A span of time a source could not see (a stream down, a refresh that skipped).
GAP_TYPE = pa.struct([pa.field("from_time", UTC_TIMESTAMP), pa.field("to_time", UTC_TIMESTAMP)])

# A row of the warehouse table `collection_runs`: what one run of one source got, waited for,
# missed and paid (`flows.lake.runs` keeps them in the lake).
COLLECTION_RUN_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("hashtag", pa.string(), nullable=False),
        pa.field("started_at", UTC_TIMESTAMP, nullable=False),
        pa.field("finished_at", UTC_TIMESTAMP, nullable=False),
        pa.field("status", pa.string(), nullable=False),  # one of RUN_STATUSES
        pa.field("reason", pa.string()),  # why a run stopped or failed
        pa.field("requests", pa.int64(), nullable=False),  # HTTP requests sent, retries included
        pa.field("posts_new", pa.int64(), nullable=False),
        pa.field("posts_duplicate", pa.int64(), nullable=False),
        pa.field("retries", pa.int64(), nullable=False),
        pa.field("rate_limit_wait_s", pa.float64(), nullable=False),
        pa.field("reconnects", pa.int64(), nullable=False),  # streams
        # streams: every event received, matching or not; null for the other sources (and in the
        # records written before streams)
        pa.field("events", pa.int64()),
        pa.field("gaps", pa.list_(GAP_TYPE)),
        pa.field("lag_s", pa.float64()),  # newest new post: created → landed in the lake
        pa.field("cost_usd", pa.float64(), nullable=False),
    ]
)


# A post's counters as one lookup read them (`flows.lake.facts`): the warehouse table
# `post_metrics`, keyed by (post_id, observed_at); snapshots, never overwrites.
POST_METRICS_SCHEMA = pa.schema(
    [
        pa.field("post_id", pa.string(), nullable=False),
        pa.field("observed_at", UTC_TIMESTAMP, nullable=False),
        pa.field("like_count", pa.int64()),
        pa.field("repost_count", pa.int64()),
        pa.field("reply_count", pa.int64()),
        pa.field("quote_count", pa.int64()),
    ]
)

# How a deletion was learnt: a lookup answered 404/410 for the post, a batch lookup left it out,
# the source shows it removed (Reddit's removed_by_category), or a stream's delete event.
DELETION_HOWS = ("lookup-gone", "missing-from-batch", "removed", "stream")

# A post gone from its source (`flows.lake.facts`): the warehouse table `post_deletions`, keyed
# by post_id; every view leaves these posts out.
POST_DELETION_SCHEMA = pa.schema(
    [
        pa.field("post_id", pa.string(), nullable=False),
        pa.field("observed_at", UTC_TIMESTAMP, nullable=False),  # when we learnt it
        pa.field("deleted_at", UTC_TIMESTAMP),  # when the source says it happened, if it says
        pa.field("how", pa.string(), nullable=False),  # one of DELETION_HOWS
    ]
)

def posts_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Build a POST_SCHEMA table from dict rows; missing optional fields become null.

    Raises:
        ValueError: a row lacks a required field; the message names the field and the post.
    """
    rows = list(rows)
    for row in rows:
        for field in POST_SCHEMA:
            if not field.nullable and row.get(field.name) in (None, ""):
                if field.name == "text" and row.get("text") == "":
                    continue  # an empty post is still a post
                raise ValueError(
                    f"post {row.get('post_id') or row.get('native_id')!r} has no {field.name!r}: "
                    "every source must fill it (see flows/schema.py)"
                )
    try:
        return pa.Table.from_pylist(rows, schema=POST_SCHEMA)
    except UnicodeEncodeError:
        # a lone surrogate (half an emoji, from a JSON export cut mid-character) is no UTF-8:
        # it becomes U+FFFD rather than stopping the whole batch
        return pa.Table.from_pylist([_utf8(row) for row in rows], schema=POST_SCHEMA)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _utf8(value: Any) -> Any:
    """`value` (a row, a list or a string) with anything UTF-8 cannot hold replaced."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)  # the only characters UTF-8 cannot encode
    if isinstance(value, Mapping):
        return {key: _utf8(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_utf8(item) for item in value]
    return value


def empty_posts() -> pa.Table:
    return POST_SCHEMA.empty_table()


# A post's sentence embedding (`flows.nlp.conversations`), computed once at analysis: the warehouse
# table `post_embeddings`, keyed by (post_id, model_id); int8 components of the unit vector
# (x 127), 384 bytes a post.
EMBEDDING_SCHEMA = pa.schema(
    [
        pa.field("post_id", pa.string(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("embedding", pa.binary(), nullable=False),
        pa.field("embedded_at", UTC_TIMESTAMP, nullable=False),
    ]
)

# A conversation of a hashtag in a window of days (`flows.stages.conversations`): the warehouse
# table `conversations`, keyed by (hashtag, window_start, conversation_id, computed_at): each
# computation adds its rows, and view emerging_conversations reads the latest.
CONVERSATION_SCHEMA = pa.schema(
    [
        pa.field("hashtag", pa.string(), nullable=False),
        pa.field("window_start", UTC_TIMESTAMP, nullable=False),
        pa.field("window_end", UTC_TIMESTAMP, nullable=False),
        pa.field("conversation_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("previous_size", pa.int64(), nullable=False),  # the matched cluster's, or 0
        pa.field("growth", pa.int64(), nullable=False),
        pa.field("negative_share", pa.float64()),
        pa.field("positive_share", pa.float64()),
        pa.field("example_post_ids", pa.list_(pa.string())),
        pa.field("example_urls", pa.list_(pa.string())),
        pa.field("computed_at", UTC_TIMESTAMP, nullable=False),
        # the posts of the window when it was computed (`flows.stages.conversations`: a window
        # is computed again once it holds a tenth more); null in rows written before
        pa.field("window_posts", pa.int64()),
    ]
)
