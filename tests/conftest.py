"""Shared test helpers: hand-made posts in the post schema, and a backend that needs no model."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from flows.schema import NLP_RESULT_SCHEMA, posts_table

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


class EchoBackend:
    """Answers from the text itself, so a row that lands beside the wrong text shows."""

    model_id = "echo-v1"
    device = "cpu"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def classify(self, texts: Sequence[str]) -> pa.Table:
        self.calls.append(list(texts))
        rows = [
            {
                "sentiment": "positive" if "good" in text else "neutral",
                "sentiment_score": float(len(text)),
                "topic": "science_&_technology",
                "topic_score": 0.5,
                "topics": ["science_&_technology"],
                "entities": [{"text": text, "type": "product"}],
                "model_id": self.model_id,
            }
            for text in texts
        ]
        return pa.Table.from_pylist(rows, schema=NLP_RESULT_SCHEMA)
