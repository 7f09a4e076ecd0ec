"""Bluesky search answers shaped like bskyr's recordings (`bluesky_search_posts.json`), through the
`bluesky` source into the lake: link cards are links, quotes are marked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fake_apis import serving
from fake_networks import FakeBluesky

from flows.sources.bluesky import BlueskySettings

A = "at://did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/app.bsky.feed.post/"
B = "at://did:plc:bbbbbbbbbbbbbbbbbbbbbbbb/app.bsky.feed.post/"
C = "at://did:plc:cccccccccccccccccccccccc/app.bsky.feed.post/"
QUOTED = "at://did:plc:qqqqqqqqqqqqqqqqqqqqqqqq/app.bsky.feed.post/3lquotedpost2"


@pytest.fixture
def posts(monkeypatch, recorded, collect_into_lake) -> dict:
    monkeypatch.setenv("BLUESKY_HANDLE", "me.bsky.social")
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "app-pass-word-1234")
    views = recorded("bluesky_search_posts")
    api = FakeBluesky(views)
    with serving(api):
        landed = collect_into_lake("bluesky", BlueskySettings(base_url=f"{api.url}/xrpc"))
    assert len(landed) == len(views)
    return landed


def test_a_link_shown_only_as_a_card_is_a_link(posts):
    post = posts[A + "3lcardonly0001"]
    assert post["links"] == [
        "https://blog.example.org/p/backfills-without-tears?r=92vnq&utm_medium=ios"
    ]
    assert post["text"] == "Wrote up what our late-data backfills taught us #dataengineering"
    assert post["created_at"] == datetime(2026, 11, 24, 17, 10, 9, 561858, tzinfo=UTC)
    assert (post["like_count"], post["repost_count"], post["quoted_post"]) == (12, 3, None)
    assert post["url"] == "https://bsky.app/profile/ana.bsky.social/post/3lcardonly0001"


def test_a_card_for_a_linked_url_counts_once(posts):
    assert posts[B + "3lfacetcard002"]["links"] == [
        "https://papers.example.org/system/files/wp/w33801.pdf"
    ]


def test_a_quote_is_marked_with_the_quoted_post(posts):
    post = posts[C + "3lquoterec0003"]
    assert post["quoted_post"] == QUOTED
    assert (post["links"], post["is_repost"], post["quote_count"]) == ([], False, 1)
    assert (post["author_handle"], post["author_name"]) == ("cy.bsky.social", "Cy 🌊")
    assert post["hashtags"] == ["dataengineering"]


def test_a_quote_with_a_card_or_images_is_a_quote_and_its_card_a_link(posts):
    card = posts[B + "3lrecmedia0004"]
    assert card["quoted_post"] == A + "3lcardonly0001"
    assert card["links"] == ["https://docs.example.com/loader/"]
    assert card["mentions"] == ["ana.bsky.social"]
    images = posts[C + "3limgquote0005"]
    assert (images["quoted_post"], images["links"]) == (QUOTED, [])


def test_an_embedded_feed_is_no_quote(posts):
    assert posts[A + "3lfeedembed006"]["quoted_post"] is None
