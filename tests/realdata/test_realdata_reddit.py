"""A subreddit's new posts shaped like praw's recordings (`reddit_new_listing.json`), through the
`reddit` source into the lake: markdown is not hashtags, a removed body is not the text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fake_apis import serving
from fake_networks import FakeReddit

from flows.sources.reddit import RedditSettings


@pytest.fixture
def posts(monkeypatch, recorded, collect_into_lake) -> dict:
    monkeypatch.setenv("REDDIT_CLIENT_ID", "app-id")
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", "app-secret-value")
    links = recorded("reddit_new_listing")
    api = FakeReddit(links)
    with serving(api):
        settings = RedditSettings(
            subreddits=("dataengineering",),
            search=False,
            base_url=api.url,
            token_url=f"{api.url}/api/v1/access_token",
            user_agent="python:hashtag-pulse-tests:v1 (by /u/pulse_tester)",
        )
        landed = collect_into_lake("reddit", settings)
    assert len(landed) == len(links)
    return landed


def test_markdown_headings_numbers_and_anchors_are_not_hashtags(posts):
    post = posts["t3_1h2k3m4"]
    assert post["hashtags"] == ["dbt", "dataengineering"]
    assert post["links"] == [
        "http://i.imgur.example/VuP6gJM.png",
        "http://i.imgur.example/p8pJWTu.jpg",
        "https://docs.example.com/dbt/guide",
    ]
    assert post["text"].startswith("8 weeks migrating to #dbt: what broke\n\nSharing notes")
    assert post["created_at"] == datetime.fromtimestamp(1795600000, UTC)
    assert (post["like_count"], post["reply_count"], post["author_handle"]) == (
        899,
        155,
        "pipe_wrangler",
    )


def test_a_removed_or_deleted_body_is_not_the_text(posts):
    removed = posts["t3_1h2k2zz"]
    assert removed["text"] == "I need help with my pipeline, reddit."
    assert removed["author_handle"] == "etl_newbie"
    deleted = posts["t3_1h2k2aa"]
    assert deleted["text"] == "Is Spark overkill for 2 GB a day?"
    assert deleted["author_handle"] is None


def test_a_link_post_is_its_link(posts):
    post = posts["t3_1h2k1bb"]
    assert (post["text"], post["links"]) == (
        "A field guide to idempotent loads",
        ["https://blog.example.org/idempotent-loads"],
    )
