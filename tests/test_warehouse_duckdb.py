"""The DuckDB warehouse: idempotent MERGE loads, the views checked by hand, URLs, locking."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from flows.schema import CONVERSATION_SCHEMA, NLP_SCHEMA, posts_table
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse
from flows.warehouse.errors import WarehouseError, WarehouseLockedError
from flows.warehouse.open import open_warehouse
from flows.warehouse.tables import POST_NLP, TABLES, TableSpec, create_table_sql
from flows.warehouse.tables import POSTS as POSTS_TABLE
from flows.warehouse.views import VIEW_NAMES

SCIENCE, NEWS, GAMING = "science_&_technology", "news_&_social_concern", "gaming"
COLLECTED = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NO_ROWS = {table.name: 0 for table in TABLES}  # counts() of an empty warehouse


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def post(source: str, native_id: str, created_at: datetime, author: str, **extra: Any) -> dict:
    row = {
        "post_id": f"{source}:{native_id}",
        "source": source,
        "native_id": native_id,
        "hashtag": "dataengineering",
        "url": f"https://{source}.example/{author}/{native_id}",
        "author_handle": author,
        "author_name": author.title(),
        "created_at": created_at,
        "collected_at": COLLECTED,
        "text": f"post {native_id} about #dataengineering",
        "lang": "en",
        "like_count": 0,
        "repost_count": 0,
        "reply_count": 0,
        "quote_count": 0,
        "is_repost": False,
        "hashtags": ["dataengineering"],
        "mentions": [],
        "links": [],
        "client": "web",
    }
    return row | extra


def result(
    post_id: str,
    model_id: str,
    sentiment: str,
    score: float,
    topic: str,
    topics: list[str],
    entities: list[str],
    analysed_at: datetime,
) -> dict:
    return {
        "post_id": post_id,
        "sentiment": sentiment,
        "sentiment_score": score,
        "topic": topic,
        "topic_score": 0.8,
        "topics": topics,
        "entities": [{"text": e, "type": "product"} for e in entities],
        "model_id": model_id,
        "analysed_at": analysed_at,
    }


def nlp_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=NLP_SCHEMA)


# Five posts on two days. m:2 is created 23:30 UTC: its day is the 20th in every session zone.
POSTS = posts_table(
    [
        post("mastodon", "1", utc(20, 10), "alice", like_count=3, repost_count=1, quote_count=None),
        post("mastodon", "2", utc(20, 23, 30), "alice", like_count=5, reply_count=2),
        post("mastodon", "5", utc(20, 12), "carol", repost_count=4),
        post("bluesky", "abc", utc(21, 8), "bob", is_repost=True, like_count=1),
        post("bluesky", "def", utc(21, 9), "bob"),  # not analysed yet
    ]
)

# mastodon:1 has two results: the newer (tweetnlp, negative) is the one the views show.
RESULTS = nlp_table(
    [
        result(
            "mastodon:1",
            "lite-1",
            "positive",
            0.7,
            SCIENCE,
            [SCIENCE, NEWS],
            ["DuckDB", "Alice"],
            utc(22, 0),
        ),
        result(
            "mastodon:1", "tweetnlp-1", "negative", 0.9, SCIENCE, [SCIENCE], ["DuckDB"], utc(23, 0)
        ),
        # no topic over the threshold: topic_trends counts it under its top topic
        result("mastodon:2", "lite-1", "positive", 0.8, NEWS, [], ["DuckDB", "DuckDB"], utc(22, 0)),
        result(
            "mastodon:5",
            "lite-1",
            "negative",
            0.6,
            SCIENCE,
            [SCIENCE, NEWS],
            ["DuckDB", "Prefect"],
            utc(22, 0),
        ),
        result("bluesky:abc", "lite-1", "neutral", 0.5, SCIENCE, [SCIENCE, GAMING], [], utc(22, 0)),
    ]
)


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[DuckDBWarehouse]:
    with DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout=5) as w:
        yield w


@pytest.fixture
def loaded(warehouse: DuckDBWarehouse) -> DuckDBWarehouse:
    warehouse.load_posts(POSTS)
    warehouse.load_nlp(RESULTS)
    return warehouse


def rows(w: DuckDBWarehouse, sql: str, params: list | None = None) -> list[dict]:
    return w.query(sql, params).to_pylist()


def test_loads_are_idempotent(warehouse: DuckDBWarehouse) -> None:
    assert warehouse.load_posts(POSTS) == 5
    assert warehouse.load_nlp(RESULTS) == 5
    assert warehouse.load_posts(POSTS) == 0
    assert warehouse.load_nlp(RESULTS) == 0
    assert warehouse.counts() == {**NO_ROWS, "posts": 5, "post_nlp": 5}
    (distinct,) = rows(warehouse, "SELECT COUNT(DISTINCT post_id) AS n FROM posts")
    assert distinct["n"] == 5
    stored = warehouse.query("SELECT * FROM posts ORDER BY post_id")
    assert stored.to_pylist() == POSTS.sort_by("post_id").to_pylist()


def test_merge_refreshes_counters_from_newer_collections_only(warehouse: DuckDBWarehouse) -> None:
    warehouse.load_posts(POSTS)
    later = datetime(2026, 11, 23, tzinfo=UTC)
    newer = post(
        "mastodon",
        "1",
        utc(20, 10),
        "alice",
        like_count=10,
        repost_count=2,
        reply_count=1,
        quote_count=1,
        collected_at=later,
        text="edited text",
    )
    assert warehouse.load_posts(posts_table([newer])) == 0
    older = post("mastodon", "1", utc(20, 10), "alice", like_count=1)
    assert warehouse.load_posts(posts_table([older])) == 0
    (row,) = rows(warehouse, "SELECT * FROM posts WHERE post_id = ?", ["mastodon:1"])
    assert (row["like_count"], row["repost_count"], row["reply_count"], row["quote_count"]) == (
        10,
        2,
        1,
        1,
    )
    assert row["collected_at"] == later
    assert row["text"] == "post 1 about #dataengineering"  # only the counters move
    assert warehouse.counts()["posts"] == 5


def test_a_key_twice_in_one_batch_is_stored_once_newest_first(
    warehouse: DuckDBWarehouse,
) -> None:
    later = datetime(2026, 11, 23, tzinfo=UTC)
    batch = posts_table(
        [
            post("mastodon", "9", utc(20, 10), "dan", like_count=1),
            post("mastodon", "9", utc(20, 10), "dan", like_count=7, collected_at=later),
            post("mastodon", "9", utc(20, 10), "dan", like_count=1),
        ]
    )
    assert warehouse.load_posts(batch) == 1
    assert rows(warehouse, "SELECT like_count FROM posts") == [{"like_count": 7}]

    twice = nlp_table(
        [
            result("mastodon:9", "lite-1", "neutral", 0.5, NEWS, [], [], utc(22, 0)),
            result("mastodon:9", "lite-1", "positive", 0.9, NEWS, [NEWS], [], utc(23, 0)),
        ]
    )
    assert warehouse.load_nlp(twice) == 1
    assert rows(warehouse, "SELECT sentiment FROM post_nlp") == [{"sentiment": "positive"}]


def test_a_newer_result_of_the_same_model_replaces_the_old_one(loaded: DuckDBWarehouse) -> None:
    again = result(
        "bluesky:abc", "lite-1", "positive", 0.95, GAMING, [GAMING], ["Steam"], utc(24, 0)
    )
    assert loaded.load_nlp(nlp_table([again])) == 0
    (row,) = rows(loaded, "SELECT * FROM post_nlp WHERE post_id = 'bluesky:abc'")
    assert (row["sentiment"], row["topics"], row["entities"]) == (
        "positive",
        [GAMING],
        [{"text": "Steam", "type": "product"}],
    )
    assert loaded.counts() == {**NO_ROWS, "posts": 5, "post_nlp": 5}


def test_analysed_ids(loaded: DuckDBWarehouse) -> None:
    ids = ["mastodon:1", "mastodon:2", "bluesky:def", "nowhere:1"]
    assert loaded.analysed_ids(ids, "lite-1") == {"mastodon:1", "mastodon:2"}
    assert loaded.analysed_ids(ids, "tweetnlp-1") == {"mastodon:1"}
    assert loaded.analysed_ids(ids, "other-model") == set()
    assert loaded.analysed_ids([], "lite-1") == set()


def test_load_rejects_rows_missing_columns(warehouse: DuckDBWarehouse) -> None:
    with pytest.raises(WarehouseError, match="lack the columns .*analysed_at"):
        warehouse.load_nlp(RESULTS.drop_columns(["analysed_at"]))


EXPECTED_COLUMNS = {
    "posts_enriched": POSTS.column_names
    + [
        "sentiment",
        "sentiment_score",
        "topic",
        "topic_score",
        "topics",
        "entities",
        "model_id",
        "analysed_at",
        "day",
        "engagement",
        "counts_at",
    ],
    "daily_sentiment": [
        "day",
        "source",
        "hashtag",
        "topic",
        "sentiment",
        "posts",
        "avg_sentiment_score",
    ],
    "topic_trends": [
        "day",
        "source",
        "hashtag",
        "topic",
        "label",
        "posts",
        "positive",
        "neutral",
        "negative",
        "net_sentiment",
    ],
    "top_entities": [
        "day",
        "source",
        "hashtag",
        "topic",
        "entity",
        "entity_type",
        "posts",
        "net_sentiment",
    ],
    "top_authors": [
        "day",
        "source",
        "hashtag",
        "topic",
        "author_handle",
        "author_name",
        "posts",
        "likes",
        "reposts",
        "engagement",
    ],
    "top_posts": [
        "post_id",
        "day",
        "created_at",
        "source",
        "hashtag",
        "topic",
        "sentiment",
        "author_handle",
        "text",
        "url",
        "like_count",
        "repost_count",
        "reply_count",
        "quote_count",
        "engagement",
        "is_repost",
        "counts_at",
    ],
    "rising_posts": [
        "post_id",
        "day",
        "created_at",
        "source",
        "hashtag",
        "topic",
        "sentiment",
        "author_handle",
        "text",
        "url",
        "is_repost",
        "engagement",
        "counts_at",
        "engagement_before",
        "before_at",
        "gained",
        "gain_per_hour",
    ],
    "source_health": [
        "day",
        "source",
        "hashtag",
        "runs",
        "failures",
        "stops",
        "requests",
        "posts",
        "duplicates",
        "retries",
        "rate_limit_wait_s",
        "reconnects",
        "events",
        "gaps",
        "max_lag_s",
        "cost_usd",
        "last_finished_at",
        "last_status",
        "last_reason",
    ],
    "signals": [
        "signal_id",
        "kind",
        "grain",
        "hashtag",
        "source",
        "subject",
        "window_start",
        "window_end",
        "value",
        "baseline",
        "score",
        "example_post_ids",
        "example_urls",
    ],
    "emerging_conversations": CONVERSATION_SCHEMA.names,
}


@pytest.mark.parametrize("view", VIEW_NAMES)
def test_view_columns(loaded: DuckDBWarehouse, view: str) -> None:
    assert loaded.query(f"SELECT * FROM {view}").column_names == EXPECTED_COLUMNS[view]


def test_posts_enriched_shows_each_post_once_with_its_newest_result(
    loaded: DuckDBWarehouse,
) -> None:
    enriched = {r["post_id"]: r for r in rows(loaded, "SELECT * FROM posts_enriched")}
    assert len(enriched) == 5
    first = enriched["mastodon:1"]
    assert (first["model_id"], first["sentiment"], first["engagement"]) == (
        "tweetnlp-1",
        "negative",
        4,
    )  # 3 likes + 1 repost, a null quote count as 0
    pending = enriched["bluesky:def"]
    assert pending["sentiment"] is None and pending["model_id"] is None
    assert pending["day"] == date(2026, 11, 21)
    assert enriched["mastodon:2"]["day"] == date(2026, 11, 20)


def test_equal_analysis_times_go_to_the_greatest_model_id(loaded: DuckDBWarehouse) -> None:
    tie = result("bluesky:abc", "z-model", "negative", 0.6, GAMING, [GAMING], [], utc(22, 0))
    loaded.load_nlp(nlp_table([tie]))
    (row,) = rows(loaded, "SELECT model_id FROM posts_enriched WHERE post_id = 'bluesky:abc'")
    assert row["model_id"] == "z-model"


def test_day_is_the_utc_date_in_any_session_time_zone(loaded: DuckDBWarehouse) -> None:
    with duckdb.connect(str(loaded.path), read_only=True) as con:
        con.execute("SET TimeZone = 'Asia/Tokyo'")  # 23:30 UTC is the next day in Tokyo
        (day,) = con.execute(
            "SELECT day FROM posts_enriched WHERE post_id = 'mastodon:2'"
        ).fetchone()
    assert day == date(2026, 11, 20)


def test_daily_sentiment(loaded: DuckDBWarehouse) -> None:
    got = rows(loaded, "SELECT * FROM daily_sentiment ORDER BY day, source, topic, sentiment")
    d20, d21 = date(2026, 11, 20), date(2026, 11, 21)
    tag = "dataengineering"
    assert got == [
        {
            "day": d20,
            "source": "mastodon",
            "hashtag": tag,
            "topic": NEWS,
            "sentiment": "positive",
            "posts": 1,
            "avg_sentiment_score": 0.8,
        },
        {
            "day": d20,
            "source": "mastodon",
            "hashtag": tag,
            "topic": SCIENCE,
            "sentiment": "negative",
            "posts": 2,
            "avg_sentiment_score": pytest.approx(0.75),
        },
        {
            "day": d21,
            "source": "bluesky",
            "hashtag": tag,
            "topic": SCIENCE,
            "sentiment": "neutral",
            "posts": 1,
            "avg_sentiment_score": 0.5,
        },
        {
            "day": d21,
            "source": "bluesky",
            "hashtag": tag,
            "topic": None,
            "sentiment": None,
            "posts": 1,
            "avg_sentiment_score": None,
        },
    ]


def test_topic_trends_unnests_the_labels(loaded: DuckDBWarehouse) -> None:
    counts = "posts, positive, neutral, negative, net_sentiment"
    got = {
        (r["day"].day, r["topic"], r["label"]): tuple(r[c] for c in counts.split(", "))
        for r in rows(loaded, "SELECT * FROM topic_trends")
    }
    # `topic` is the post's top topic, as in every view; `label` each label it carries
    assert got == {
        (20, SCIENCE, SCIENCE): (2, 0, 0, 2, -1.0),  # mastodon:1 (newest result), mastodon:5
        (20, SCIENCE, NEWS): (1, 0, 0, 1, -1.0),  # mastodon:5's second label
        (20, NEWS, NEWS): (1, 1, 0, 0, 1.0),  # mastodon:2: no label, its top topic
        (21, SCIENCE, SCIENCE): (1, 0, 1, 0, 0.0),
        (21, SCIENCE, GAMING): (1, 0, 1, 0, 0.0),
    }
    # filtered by top topic, the labels of those posts only, as the headline counts them
    (news,) = rows(loaded, "SELECT SUM(posts) AS n FROM topic_trends WHERE topic = ?", [NEWS])
    (posts,) = rows(loaded, "SELECT COUNT(*) AS n FROM posts_enriched WHERE topic = ?", [NEWS])
    assert news == posts == {"n": 1}


def test_an_empty_post_adds_nothing_to_topic_trends(warehouse: DuckDBWarehouse) -> None:
    empty = post("mastodon", "7", utc(20, 9), "dave", text="")
    warehouse.load_posts(posts_table([empty]))
    # a backend gives an empty text no labels and a top topic of score 0
    nothing = result("mastodon:7", "lite-1", "neutral", 1.0, SCIENCE, [], [], utc(22, 0))
    warehouse.load_nlp(nlp_table([nothing | {"topic_score": 0.0}]))
    assert rows(warehouse, "SELECT * FROM topic_trends") == []
    assert rows(warehouse, "SELECT SUM(posts) AS n FROM daily_sentiment") == [{"n": 1}]


def test_top_entities_counts_posts_not_mentions(loaded: DuckDBWarehouse) -> None:
    got = {
        (r["topic"], r["entity"]): (r["posts"], r["net_sentiment"], r["entity_type"])
        for r in rows(loaded, "SELECT * FROM top_entities")
    }
    # "Alice" only appears in mastodon:1's older result, which the views do not show.
    assert got == {
        (SCIENCE, "DuckDB"): (2, -1.0, "product"),
        (SCIENCE, "Prefect"): (1, -1.0, "product"),
        (NEWS, "DuckDB"): (1, 1.0, "product"),  # named twice in mastodon:2
    }


def test_a_name_typed_two_ways_in_one_post_counts_that_post_once(
    warehouse: DuckDBWarehouse,
) -> None:
    warehouse.load_posts(POSTS)
    paris = result("mastodon:1", "ner-1", "neutral", 0.5, SCIENCE, [SCIENCE], [], utc(22, 0))
    paris["entities"] = [
        {"text": "Paris", "type": "location"},
        {"text": "Paris", "type": "organization"},
        {"text": "Paris", "type": "location"},
    ]
    other = result("mastodon:2", "ner-1", "neutral", 0.5, SCIENCE, [SCIENCE], [], utc(22, 0))
    other["entities"] = [{"text": "Paris", "type": "location"}]
    warehouse.load_nlp(nlp_table([paris, other]))
    got = rows(warehouse, "SELECT entity, SUM(posts) AS posts FROM top_entities GROUP BY entity")
    assert got == [{"entity": "Paris", "posts": 2}]


def test_top_authors_re_aggregate_over_the_dimensions(loaded: DuckDBWarehouse) -> None:
    got = rows(
        loaded,
        "SELECT author_handle, SUM(posts) AS posts, SUM(likes) AS likes,"
        " SUM(reposts) AS reposts, SUM(engagement) AS engagement"
        " FROM top_authors GROUP BY author_handle ORDER BY author_handle",
    )
    assert got == [
        {"author_handle": "alice", "posts": 2, "likes": 8, "reposts": 1, "engagement": 11},
        # bob's bluesky:abc is a repost: its like is the reposted post's author's
        {"author_handle": "bob", "posts": 2, "likes": 0, "reposts": 0, "engagement": 0},
        {"author_handle": "carol", "posts": 1, "likes": 0, "reposts": 4, "engagement": 4},
    ]
    (alice,) = rows(
        loaded, "SELECT * FROM top_authors WHERE author_handle = 'alice' AND topic = ?", [NEWS]
    )
    assert (alice["author_name"], alice["posts"], alice["engagement"]) == ("Alice", 1, 7)


def test_top_posts_keep_reposts_flagged(loaded: DuckDBWarehouse) -> None:
    got = rows(
        loaded,
        "SELECT post_id, engagement, is_repost FROM top_posts ORDER BY engagement DESC, post_id",
    )
    assert got == [
        {"post_id": "mastodon:2", "engagement": 7, "is_repost": False},
        {"post_id": "mastodon:1", "engagement": 4, "is_repost": False},
        {"post_id": "mastodon:5", "engagement": 4, "is_repost": False},
        {"post_id": "bluesky:abc", "engagement": 1, "is_repost": True},
        {"post_id": "bluesky:def", "engagement": 0, "is_repost": False},
    ]


def test_opening_replaces_stale_views(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    DuckDBWarehouse(path).close()
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE OR REPLACE VIEW top_posts AS SELECT 1 AS stale")
    with open_warehouse(f"duckdb:///{path}") as w:
        assert w.query("SELECT * FROM top_posts").column_names == EXPECTED_COLUMNS["top_posts"]


def older(spec: TableSpec, *dropped: str) -> TableSpec:
    """`spec` as an earlier version of the pipeline had it: without the columns `dropped`."""
    kept = [field for field in spec.schema if field.name not in dropped]
    return replace(spec, schema=pa.schema(kept))


def test_opening_adds_the_columns_added_since_a_table_was_made(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    old_posts, old_nlp = older(POSTS_TABLE, "lang", "client"), older(POST_NLP, "entities")
    with duckdb.connect(str(path)) as con:
        for spec, table in ((old_posts, POSTS), (old_nlp, RESULTS)):
            con.execute(create_table_sql(spec))
            con.register("old_rows", table.select(spec.schema.names))
            con.execute(f"INSERT INTO {spec.name} SELECT * FROM old_rows")
    with open_warehouse(f"duckdb:///{path}") as w:
        # the rows already there are kept, with NULL in the new columns
        assert w.counts() == {**NO_ROWS, "posts": 5, "post_nlp": 5}
        stored = rows(w, "SELECT post_id, lang, client FROM posts ORDER BY post_id")
        assert {(r["lang"], r["client"]) for r in stored} == {(None, None)}
        # a load of today's rows merges into them, and the views read every column
        newer = posts_table([post("mastodon", "9", utc(21, 10), "dave", client="ios")])
        assert w.load_posts(pa.concat_tables([POSTS, newer])) == 1
        assert w.load_nlp(RESULTS) == 0
        (new,) = rows(w, "SELECT lang, client FROM posts_enriched WHERE post_id = 'mastodon:9'")
        assert new == {"lang": "en", "client": "ios"}
        assert w.query("SELECT * FROM top_entities").num_rows == 0  # old results: no entities
    with duckdb.connect(str(path)) as con:
        names = [row[0] for row in con.execute("DESCRIBE posts").fetchall()]
    assert sorted(names) == sorted(POSTS_TABLE.schema.names)  # each added once
    with open_warehouse(f"duckdb:///{path}") as w:  # opening again changes nothing
        assert w.counts() == {**NO_ROWS, "posts": 6, "post_nlp": 5}


def test_a_missing_not_null_column_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(create_table_sql(older(POST_NLP, "sentiment_score", "topics")))
    message = r"post_nlp in duckdb:///.*old\.duckdb lacks the NOT NULL columns sentiment_score "
    with pytest.raises(WarehouseError, match=message + r".*declare them nullable"):
        open_warehouse(f"duckdb:///{path}")
    with duckdb.connect(str(path)) as con:  # and nothing was changed
        names = [row[0] for row in con.execute("DESCRIBE post_nlp").fetchall()]
    assert "topics" not in names


def test_relative_url_is_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_warehouse("duckdb:///data/nested/w.duckdb") as w:
        assert w.path == tmp_path / "data" / "nested" / "w.duckdb"
        assert w.path.is_file()
        assert w.url == f"duckdb:///{tmp_path}/data/nested/w.duckdb"


def test_absolute_url(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "w.duckdb"
    with open_warehouse(f"duckdb:///{target}") as w:  # four slashes: three, then "/tmp..."
        assert w.path == target and w.url == f"duckdb:///{target}"
        assert w.counts() == NO_ROWS


@pytest.mark.parametrize("url", ["bigquery://my-project", "bigquery://my-project/", "bigquery:///pulse", "bigquery://p/d/x"])
def test_a_bigquery_url_needs_a_project_and_a_dataset(url: str) -> None:
    with pytest.raises(WarehouseError, match="needs a project and a dataset"):
        open_warehouse(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://db/pulse", "is not supported"),
        ("data/w.duckdb", "is not supported"),
        ("duckdb://", "has no file path"),
        ("duckdb:///", "has no file path"),
        ("duckdb://host/w.duckdb", "has no file path"),
        ("duckdb:///:memory:", "in-memory"),
    ],
)
def test_bad_urls_say_what_to_write(url: str, message: str) -> None:
    with pytest.raises(WarehouseError, match=message) as info:
        open_warehouse(url)
    assert url in str(info.value)


def test_query_is_read_only(loaded: DuckDBWarehouse) -> None:
    assert loaded.query("SELECT COUNT(*) AS n FROM top_posts").to_pylist() == [{"n": 5}]
    with pytest.raises(WarehouseError, match="read-only"):
        loaded.query("DELETE FROM posts")
    with pytest.raises(WarehouseError, match="no_such_view"):
        loaded.query("SELECT * FROM no_such_view")
    assert loaded.counts()["posts"] == 5


def test_a_closed_warehouse_refuses_work(tmp_path: Path) -> None:
    with DuckDBWarehouse(tmp_path / "w.duckdb") as w:
        pass
    with pytest.raises(WarehouseError, match="closed"):
        w.counts()


@contextmanager
def held(path: Path, *, read_only: bool, seconds: float) -> Iterator[subprocess.Popen]:
    """Another process that holds `path` open for `seconds`, as the dashboard or a flow would."""
    code = (
        "import duckdb, sys, time\n"
        f"con = duckdb.connect({str(path)!r}, read_only={read_only})\n"
        "print('ready', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_write_that_meets_a_writer_fails_clearly(tmp_path: Path) -> None:
    w = DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout=0.5)
    with held(w.path, read_only=False, seconds=30):
        started = time.monotonic()
        with pytest.raises(WarehouseLockedError, match="held by another process"):
            w.load_posts(POSTS)
        assert 0.5 <= time.monotonic() - started < 5
    assert w.load_posts(POSTS) == 5  # the lock went with the process


def test_readers_share_and_a_writer_waits_for_them(tmp_path: Path) -> None:
    w = DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout=20)
    w.load_posts(POSTS)
    with held(w.path, read_only=True, seconds=1.5):
        assert w.counts()["posts"] == 5  # a second reader is welcome
        started = time.monotonic()
        assert w.load_nlp(RESULTS) == 5  # retried until the reader was gone
        assert time.monotonic() - started > 0.5
