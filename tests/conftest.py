"""Shared test helpers: hand-made posts in the post schema."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from flows.schema import posts_table

T0 = datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc)


def make_post(i: int, source: str = "x", day: int = 0, text: str | None = None, **extra) -> dict:
    row = {
        "post_id": f"{source}:{i}",
        "source": source,
        "native_id": str(i),
        "hashtag": "dataengineering",
        "url": f"https://example.invalid/{i}",
        "author_handle": f"user{i % 7}",
        "author_name": f"User {i % 7}",
        "created_at": T0 + timedelta(days=day, minutes=i),
        "collected_at": T0 + timedelta(days=60),
        "text": text if text is not None else f"post number {i} about #dataengineering",
        "lang": "en",
        "like_count": i,
        "repost_count": 0,
        "reply_count": 0,
        "quote_count": 0,
        "is_repost": False,
        "in_reply_to": None,
        "hashtags": ["dataengineering"],
        "mentions": [],
        "links": [],
        "client": "test",
    }
    row.update(extra)
    return row


def make_posts(ids, **kwargs) -> pa.Table:
    return posts_table(make_post(i, **kwargs) for i in ids)


@pytest.fixture
def posts():
    return make_posts
