"""A Mastodon hashtag timeline shaped like Mastodon.py's and rtoot's recordings
(`mastodon_tag_timeline.json`), through the `mastodon` source into the lake: each status as
Mastodon's own interface shows it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fake_apis import serving
from fake_networks import FakeMastodon

from flows.sources.mastodon import MastodonSettings


@pytest.fixture
def posts(recorded, collect_into_lake) -> dict:
    statuses = recorded("mastodon_tag_timeline")
    api = FakeMastodon(statuses)
    with serving(api):
        landed = collect_into_lake("mastodon", MastodonSettings(instances=(api.url,)))
    assert len(landed) == len(statuses)
    return landed


def test_a_quote_hides_the_re_line_and_names_the_quoted_post(posts):
    post = posts["https://mastodon.example/users/mira/statuses/115610000000000200"]
    assert post["text"] == "Could not agree more & it saves the on-call. #DataEngineering"
    assert post["links"] == []
    assert post["quoted_post"] == (
        "https://mastodon.example/users/tomas/statuses/115600000000000100"
    )
    assert (post["author_handle"], post["author_name"]) == (
        "mira@mastodon.example",
        "Mira Pipelines",
    )
    assert post["created_at"] == datetime(2026, 11, 24, 13, 53, 10, 704000, tzinfo=UTC)
    counts = ("like_count", "repost_count", "reply_count", "quote_count")
    assert [post[c] for c in counts] == [4, 1, 0, 0]
    assert (post["hashtags"], post["is_repost"], post["client"]) == (
        ["dataengineering"],
        False,
        "Web",
    )


def test_a_bridged_quote_keeps_its_own_link_and_names_the_re_link(posts):
    post = posts[
        "https://bsky.brid.gy/convert/ap/at://did:plc:bridgedauthor000000000001"
        "/app.bsky.feed.post/3lxyzquote2a"
    ]
    assert post["text"] == (
        "the thread I meant, on lineage in #dataengineering bsky.app/profile/lin.e..."
    )
    assert post["links"] == ["https://bsky.app/profile/lin.example.com/post/3lxyzother1"]
    # a shallow quote names a local id only: the RE: link is the quoted post
    assert post["quoted_post"] == (
        "https://bsky.app/profile/did:plc:bridgedauthor000000000002/post/3lxyzquoted"
    )
    assert post["in_reply_to"] == "115608000000000299"
    assert post["author_handle"] == "lin.example.com@bsky.brid.gy"
    assert post["author_name"] == "lin.example.com"  # no display name: the username


def test_a_poll_keeps_its_options_after_the_text(posts):
    post = posts["https://mastodon.example/users/mira/statuses/115608500000000400"]
    assert post["text"] == (
        "Which orchestrator runs your #dataengineering jobs? :gear:\n\n"
        "Airflow\nDagster\nPrefect\ncron & hope"
    )
    assert post["client"] == "Mastodon for iOS"
    assert (post["reply_count"], post["like_count"], post["quoted_post"]) == (2, 6, None)


def test_a_remote_status_reads_as_on_its_home_instance(posts):
    post = posts["https://fosstodon.example/users/kai/statuses/115606999000000001"]
    assert post["text"] == (
        "Fun thing that @noor and I found for those running #DataEngineering on object storage\n"
        "(and other stacks)\n\nThe fix is in https://github.com/example-org/s3-loader/pull/438"
    )
    assert post["links"] == ["https://github.com/example-org/s3-loader/pull/438"]
    assert post["mentions"] == ["noor@genomic.example"]
    assert post["url"] == "https://fosstodon.example/@kai/115606999000000001"
    assert (post["author_handle"], post["client"], post["repost_count"]) == (
        "kai@fosstodon.example",
        None,  # only the author's own instance tells the posting app
        2,
    )
