"""The sample source: deterministic, chunk-independent, realistic enough, and a proper cursor."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from flows.config import parse_section
from flows.settings import ConfigError
from flows.schema import POST_SCHEMA
from flows.cursors import SampleCursor
from flows.sources.sample.source import SampleSettings, SampleSource, generate_posts

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
N = 20_000
CLIENTS = {
    "Twitter Web App",
    "Twitter for iPhone",
    "Twitter for Android",
    "TweetDeck",
    "Buffer",
    "Hootsuite",
}
NEGATIVE = re.compile(
    r"terrible|awful|hate|frustrat|disaster|annoying|painful|ugh\b", re.IGNORECASE
)
EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")


@pytest.fixture(scope="module")
def settings() -> SampleSettings:
    return SampleSettings(posts=N)


@pytest.fixture(scope="module")
def rows(settings) -> list[dict]:
    return generate_posts(0, N, settings, "dataengineering", NOW).to_pylist()


def test_rows_are_in_the_post_schema_with_the_fixed_columns(settings):
    table = generate_posts(10, 70, settings, "DataEngineering", NOW)
    assert table.schema.equals(POST_SCHEMA)
    assert table.num_rows == 60
    for row in table.to_pylist():
        assert row["source"] == "sample"
        assert row["post_id"] == f"sample:{row['native_id']}"
        assert row["url"] == f"https://sample.invalid/@{row['author_handle']}/{row['native_id']}"
        assert row["hashtag"] == "dataengineering"  # lower case, without '#'
        assert row["collected_at"] == NOW
        assert row["client"] in CLIENTS
        assert row["author_handle"] and row["author_name"]
        assert min(row[f"{k}_count"] for k in ("like", "repost", "reply", "quote")) >= 0
        if row["text"]:
            assert "#DataEngineering" in row["text"]  # as followed; the list is lower case
            assert "dataengineering" in row["hashtags"]
    # native_id is the index, except on a duplicate row, which repeats the row before it
    ids = [int(i) for i in table.column("native_id").to_pylist()]
    assert all(i == 10 + k or (k and ids[k - 1] == i) for k, i in enumerate(ids))
    assert ids != sorted(set(ids))  # this range has a duplicate row


def test_generation_is_deterministic_and_independent_of_chunking(settings):
    whole = generate_posts(0, 100, settings, "dataengineering", NOW)
    parts = [generate_posts(a, b, settings, "dataengineering", NOW) for a, b in ((0, 40), (40, 99))]
    parts.append(generate_posts(99, 100, settings, "dataengineering", NOW))
    assert pa.concat_tables(parts).equals(whole)
    assert generate_posts(0, 100, settings, "dataengineering", NOW).equals(whole)
    other_seed = generate_posts(0, 100, SampleSettings(posts=N, seed=8), "dataengineering", NOW)
    assert other_seed.column("text") != whole.column("text")


def test_far_indices_cost_no_more_than_near_ones():
    huge = SampleSettings(posts=10**12)
    first = 10**11
    whole = generate_posts(first, first + 300, huge, "dataengineering", NOW)
    parts = [
        generate_posts(first, first + 137, huge, "dataengineering", NOW),
        generate_posts(first + 137, first + 300, huge, "dataengineering", NOW),
    ]
    assert pa.concat_tables(parts).equals(whole)
    assert whole.column("post_id")[0].as_py() == f"sample:{first}"


def test_an_empty_range_is_an_empty_table(settings):
    table = generate_posts(7, 7, settings, "dataengineering", NOW)
    assert table.num_rows == 0 and table.schema.equals(POST_SCHEMA)


def test_the_mix_of_post_kinds_is_realistic(rows):
    def share(predicate) -> float:
        return sum(map(predicate, rows)) / len(rows)

    assert 0.10 < share(lambda r: r["is_repost"]) < 0.14
    assert 0.12 < share(lambda r: r["in_reply_to"] is not None) < 0.18
    assert 0.06 < share(lambda r: r["lang"] != "en") < 0.10
    assert {r["lang"] for r in rows} == {"en", "de", "es", "fr", "pt", "ja"}
    assert 0.005 < share(lambda r: len(r["text"]) >= 1000) < 0.02
    assert 0.002 < share(lambda r: r["text"] == "") < 0.01
    assert 0.2 < share(lambda r: bool(EMOJI.search(r["text"]))) < 0.7
    assert share(lambda r: bool(r["links"])) > 0.1
    assert len({r["text"] for r in rows}) > 0.8 * len(rows)  # many distinct texts
    assert {r["client"] for r in rows} == CLIENTS


def test_duplicates_are_the_previous_row_delivered_again(rows):
    duplicates = [k for k in range(1, len(rows)) if rows[k]["post_id"] == rows[k - 1]["post_id"]]
    assert 0.01 < len(duplicates) / len(rows) < 0.03
    assert all(rows[k] == rows[k - 1] for k in duplicates)  # every field
    # every other row is post k itself (a run of duplicates repeats the same post)
    assert all(int(rows[k]["native_id"]) == k for k in set(range(len(rows))) - set(duplicates))
    counts = Counter(r["post_id"] for r in rows)
    assert sum(counts.values()) - len(counts) == len(duplicates)  # no other repeated ids


def test_reposts_copy_an_earlier_post(rows):
    reposts = [r for r in rows if r["is_repost"]]
    assert reposts
    for row in reposts:
        handle, text = re.fullmatch(r"RT @(\w+): (.*)", row["text"], re.DOTALL).groups()
        original = _original(rows, row, handle, text)
        assert row["lang"] == original["lang"]
        assert row["hashtags"] == original["hashtags"]
        assert row["mentions"] == [handle] + original["mentions"]
        assert row["repost_count"] == original["repost_count"] and row["like_count"] == 0
        assert row["in_reply_to"] is None


def _original(rows: list[dict], repost: dict, handle: str, text: str) -> dict:
    """The latest earlier post by `handle` with `text` (the rows are posts 0, 1, ...)."""
    for row in reversed(rows[: int(repost["native_id"])]):
        if row["text"] == text and row["author_handle"] == handle and not row["is_repost"]:
            return row
    raise AssertionError(f"no original for {repost['post_id']}")


def test_replies_answer_an_earlier_post_by_its_author(rows):
    by_id = {r["native_id"]: r for r in rows}
    replies = [r for r in rows if r["in_reply_to"] is not None]
    assert replies
    for row in replies:
        target = by_id[row["in_reply_to"]]
        assert int(target["native_id"]) < int(row["native_id"])
        assert not target["is_repost"] and target["text"]
        assert row["text"].startswith(f"@{target['author_handle']} ")
        assert row["mentions"][0] == target["author_handle"]


def test_hashtags_mentions_and_links_agree_with_the_text(rows):
    for row in rows:
        text = row["text"]
        assert row["hashtags"] == [t.lower() for t in re.findall(r"#(\w+)", text)], text
        assert row["mentions"] == re.findall(r"(?<!\w)@(\w+)", text), text
        assert row["links"] == re.findall(r"https://\S+", text), text


def test_posts_spread_over_the_window_in_index_order(rows, settings):
    first, end = settings.window()
    assert first == datetime(2026, 10, 13, tzinfo=UTC) and end == datetime(2026, 11, 24, tzinfo=UTC)
    times = [r["created_at"] for r in rows]
    assert all(first <= t < end for t in times)
    assert len({t.date() for t in times}) == settings.days
    steps = [b - a for a, b in itertools.pairwise(times)]
    backwards = [s for s in steps if s < timedelta(0)]
    assert 0 < len(backwards) < 0.35 * len(steps)  # jitter, not disorder
    assert min(steps) > -timedelta(hours=1)
    assert sorted(times)[len(times) // 2] - first > timedelta(days=15)  # not bunched at the start


def test_the_timeline_tells_a_story(rows):
    per_day = Counter(r["created_at"].date() for r in rows)
    weekday = [n for d, n in per_day.items() if d.weekday() < 5]
    weekend = [n for d, n in per_day.items() if d.weekday() >= 5]
    assert sum(weekday) / len(weekday) > 1.5 * sum(weekend) / len(weekend)

    def daily_share(pattern: re.Pattern) -> dict:
        hits = Counter(r["created_at"].date() for r in rows if pattern.search(r["text"]))
        return {d: hits[d] / n for d, n in per_day.items()}

    outage = daily_share(re.compile("outage"))
    outage_start = max(outage, key=outage.get)
    assert outage[outage_start] > 0.3 and outage_start.weekday() == 0
    assert sorted(outage.values())[len(outage) // 2] < 0.05  # most days have no outage
    negative = daily_share(NEGATIVE)
    week = [outage_start + timedelta(days=k) for k in range(3)]
    usual = sorted(negative.values())[len(negative) // 2]
    assert min(negative[d] for d in week) > 2 * usual

    summit = daily_share(re.compile("Lakehouse Summit"))
    days = sorted(d for d, s in summit.items() if s > 0.2)
    assert len(days) == 4 and days[-1] - days[0] == timedelta(days=3)
    assert min(per_day[d] for d in days) > max(sorted(weekday)[len(weekday) // 2], 1)


def test_authors_are_many_with_a_few_prolific(rows):
    authors = Counter(r["author_handle"] for r in rows)
    assert len(authors) > 300
    top = authors.most_common(5)
    assert top[0][1] / len(rows) > 0.03
    assert sorted(authors.values())[len(authors) // 2] < top[0][1] / 20
    names = {r["author_handle"]: r["author_name"] for r in rows}
    assert len(set(names.values())) > 200


def test_engagement_is_heavy_tailed(rows):
    likes = sorted(r["like_count"] for r in rows if not r["is_repost"])
    assert likes[-1] > 50 * max(likes[len(likes) // 2], 1)
    assert likes[len(likes) // 2] < 20


# --- the source: batches and the cursor ------------------------------------------------------


def fetch_all(source: SampleSource, cursor: SampleCursor, limit: int | None = None) -> list:
    return list(source.fetch("dataengineering", cursor, limit))


def indices(batches: list) -> list[int]:
    # the index of a row is its position in the sample; duplicates repeat an earlier native_id
    return [i for b in batches for i in range(*_range(b))]


def _range(batch) -> tuple[int, int]:
    last = batch.cursor.next_index
    return last - batch.posts.num_rows, last


def test_an_unlimited_fetch_delivers_the_whole_sample_in_batches():
    settings = SampleSettings(posts=2500, batch_size=1000)
    batches = fetch_all(SampleSource(settings), SampleCursor())
    assert [b.posts.num_rows for b in batches] == [1000, 1000, 500]
    assert [b.cursor.next_index for b in batches] == [1000, 2000, 2500]
    got = pa.concat_tables(b.posts for b in batches)
    want = generate_posts(0, 2500, settings, "dataengineering", NOW)
    assert got.drop_columns(["collected_at"]).equals(want.drop_columns(["collected_at"]))
    newest_time = batches[-1].cursor.newest_time
    assert newest_time == max(got.column("created_at").to_pylist())
    assert newest_time.utcoffset() == timedelta(0)
    assert fetch_all(SampleSource(settings), batches[-1].cursor) == []  # nothing new


def test_two_limited_fetches_equal_one_unlimited_fetch():
    settings = SampleSettings(posts=2500, batch_size=400)
    source = SampleSource(settings)
    first = fetch_all(source, SampleCursor(), limit=1100)
    assert sum(b.posts.num_rows for b in first) == 1100
    assert first[-1].cursor.next_index == 1100  # stopped by the limit: resume here
    second = fetch_all(source, first[-1].cursor, limit=None)
    assert second[-1].cursor.next_index == 2500
    assert indices(first + second) == list(range(2500))  # no gap, no overlap
    whole = fetch_all(source, SampleCursor())
    texts = [t for b in first + second for t in b.posts.column("text").to_pylist()]
    assert texts == [t for b in whole for t in b.posts.column("text").to_pylist()]
    assert second[-1].cursor.newest_time == whole[-1].cursor.newest_time


def test_a_killed_run_resumes_after_its_last_landed_batch():
    settings = SampleSettings(posts=1000, batch_size=150)
    source = SampleSource(settings)
    landed = []
    for batch in source.fetch("dataengineering", SampleCursor(), None):
        landed.append(batch)
        if len(landed) == 3:
            break  # the run dies here: batch 3's cursor was saved
    rest = fetch_all(source, SampleCursor.from_json(landed[-1].cursor.to_json()))
    assert _range(rest[0]) == (450, 600)
    assert indices(landed + rest) == list(range(1000))


def test_a_fetch_starts_at_the_next_index_and_limit_zero_fetches_nothing():
    source = SampleSource(SampleSettings(posts=300, batch_size=100))
    batches = fetch_all(source, SampleCursor(next_index=150))
    assert _range(batches[0]) == (150, 250) and _range(batches[-1]) == (250, 300)
    assert fetch_all(source, SampleCursor(), limit=0) == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"posts": "0"}, r"\[sample\] posts: must be at least 1"),
        ({"days": "0"}, r"\[sample\] days: must be between 1 and 3650"),
        ({"seed": "-1"}, r"\[sample\] seed: must be a whole number"),
        ({"batch_size": "0"}, r"\[sample\] batch_size: must be at least 1"),
        ({"end_date": "23/11/2026"}, r"\[sample\] end_date: expected a date like 2026-11-23"),
    ],
)
def test_bad_settings_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        parse_section(SampleSettings, values, "sample", "test.conf")


def test_settings_defaults_and_a_valid_section():
    assert SampleSettings() == SampleSettings(5000, 42, 7, "2026-11-23", 10_000)
    values = {"posts": "123", "end_date": "2025-01-31"}
    parsed = parse_section(SampleSettings, values, "sample", "test.conf")
    assert parsed.posts == 123 and parsed.window()[1] == datetime(2025, 2, 1, tzinfo=UTC)


def test_generate_posts_refuses_bad_arguments(settings):
    with pytest.raises(ValueError, match="outside the sample"):
        generate_posts(0, N + 1, settings, "dataengineering", NOW)
    with pytest.raises(ValueError, match="letters, digits and underscores"):
        generate_posts(0, 1, settings, "data engineering", NOW)
