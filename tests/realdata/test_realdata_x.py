"""X API v2 recent search, replayed from a page shaped like twarc-csv's recordings
(`x_search_recent.json`), through the `x` source into the lake: each post as X shows it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fake_apis import serving
from fake_networks import FakeX

from flows.sources.x import XSettings


@pytest.fixture
def posts(monkeypatch, recorded, collect_into_lake) -> dict:
    monkeypatch.setenv("X_BEARER_TOKEN", "test-bearer-token")
    page = recorded("x_search_recent")
    api = FakeX(
        page["data"], users=page["includes"]["users"], referenced=page["includes"]["tweets"]
    )
    with serving(api):
        landed = collect_into_lake("x", XSettings(base_url=f"{api.url}/2", retweets=True))
    [search] = [r for r in api.requests if r.path.endswith("/recent")]
    # with retweets, their originals are asked for: the retweets' own texts are cut
    assert search.query["expansions"] == "author_id,referenced_tweets.id"
    assert len(landed) == len(page["data"])
    return landed


def test_a_retweet_shows_the_full_original_unescaped_under_the_retweeter(posts):
    post = posts["1993000000000000801"]
    assert post["text"] == (
        "<NEW POST>\n#DataEngineering - #dbt tips\n@pipeline_pat\n\n"
        "#SQL #ELT #Analytics #DataOps https://t.co/Qw1x2y3z4A"
    )
    # the original's tags, #DataOps included (cut from the retweet's own text)
    assert post["hashtags"] == ["dataengineering", "dbt", "sql", "elt", "analytics", "dataops"]
    assert post["mentions"] == ["pipeline_pat"]
    assert post["links"] == []  # pic.twitter.com …/photo/1 is the post's photo
    assert (post["author_handle"], post["author_name"]) == ("rosa_rt", "Rosa Retweets")
    assert post["url"] == "https://x.com/rosa_rt/status/1993000000000000801"
    assert post["created_at"] == datetime(2026, 11, 24, 16, 37, tzinfo=UTC)  # when retweeted
    counts = ("like_count", "repost_count", "reply_count", "quote_count")
    assert [post[c] for c in counts] == [480, 120, 14, 9]  # the original's, as X shows them
    assert post["is_repost"] is True and post["quoted_post"] is None
    assert (post["lang"], post["client"]) == ("en", "Twitter for iPhone")


def test_languages_x_could_not_tell_are_null_and_legacy_codes_are_iso(posts):
    assert posts["1993000000000000702"]["lang"] is None  # 'und'
    indonesian = posts["1993000000000000603"]
    assert indonesian["lang"] == "id"  # X's legacy 'in'
    assert indonesian["text"] == (
        "Belajar #DataEngineering hari ini: partisi & indeks itu penting, jangan lupa"
    )


def test_a_quote_that_replies_is_marked_and_its_quoted_post_is_no_link(posts):
    post = posts["1993000000000000504"]
    assert post["quoted_post"] == "1992950000000000300"
    assert post["in_reply_to"] == "1992950000000000301"
    assert post["links"] == []  # the quoted post's status URL is the quote, shown as a card
    assert post["mentions"] == ["pipeline_pat"]
    assert post["hashtags"] == ["dataengineering"]
    assert post["is_repost"] is False


def test_a_video_is_not_a_link_and_a_real_link_is_expanded(posts):
    post = posts["1993000000000000405"]
    assert post["links"] == ["https://blog.example.org/backfills/?utm_source=x"]
    assert post["text"].startswith("Watch the backfill catch up in real time 🐍 #DataEngineering")
    counts = ("like_count", "repost_count", "reply_count", "quote_count")
    assert [post[c] for c in counts] == [93, 13, 3, 7]
    assert (post["author_handle"], post["author_name"]) == ("vera_video", "Vera Video")
