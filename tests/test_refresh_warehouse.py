"""Deletions and counter snapshots as facts in the lake, loaded by analyze into `post_deletions`
and `post_metrics`, and what every view shows from them: deleted posts gone, the newest counts
with the time they were read, and the posts rising fastest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from flows.config import Config, PipelineConfig
from flows.lake.facts import DELETIONS, METRICS, FactLog
from flows.lake.lake import Lake
from flows.schema import POST_DELETION_SCHEMA, POST_METRICS_SCHEMA, posts_table
from flows.stages.analyze import analyze
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse
from flows.warehouse.views import VIEW_NAMES
from test_warehouse_duckdb import post

NOW = datetime.now(UTC).replace(microsecond=0)
HOUR = timedelta(hours=1)


def recent_posts() -> pa.Table:
    """Posts of the last hours, read at collection with a few likes each; a Reddit crosspost
    flagged as a repost as earlier versions wrote it."""
    rows = [
        post("bluesky", f"b{n}", NOW - (n + 3) * HOUR, f"ann{n % 2}", like_count=n,
             collected_at=NOW - (n + 3) * HOUR + timedelta(minutes=5))
        for n in range(4)
    ]
    rows.append(
        post("reddit", "t3_cross", NOW - 5 * HOUR, "rita", like_count=40, reply_count=2,
             is_repost=True, collected_at=NOW - 5 * HOUR + timedelta(minutes=5))
    )
    rows.append(
        post("mastodon", "boost", NOW - 4 * HOUR, "bob", like_count=500, is_repost=True,
             collected_at=NOW - 4 * HOUR + timedelta(minutes=5))
    )
    return posts_table(rows)


def snapshot(post_id: str, at: datetime, likes: int, replies: int = 0) -> dict:
    return {"post_id": post_id, "observed_at": at, "like_count": likes, "repost_count": 0,
            "reply_count": replies, "quote_count": 0}


# b0 gains 60 likes in the last hour; b1 gained 100 between its first reading and one 2 h ago,
# then nothing; b2 is read once more; b3 is deleted.
METRIC_ROWS = [
    snapshot("bluesky:b0", NOW - 2 * HOUR, 10),
    snapshot("bluesky:b0", NOW - HOUR, 20),
    snapshot("bluesky:b0", NOW, 80),
    snapshot("bluesky:b1", NOW - 2 * HOUR, 101),
    snapshot("bluesky:b1", NOW, 101),
    snapshot("bluesky:b2", NOW - HOUR, 32, replies=4),
    snapshot("reddit:t3_cross", NOW - HOUR, 90, replies=10),
]
DELETION_ROWS = [
    {"post_id": "bluesky:b3", "observed_at": NOW, "deleted_at": None, "how": "missing-from-batch"}
]


def midnight() -> datetime:
    return NOW.replace(hour=0, minute=0, second=0)


def metrics_table(rows=METRIC_ROWS) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=POST_METRICS_SCHEMA)


def deletions_table(rows=DELETION_ROWS) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=POST_DELETION_SCHEMA)


def test_facts_land_as_new_files_listed_once_and_a_retry_goes_on_after_them(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    metrics = FactLog(lake, METRICS)
    first = metrics.write("bluesky", "run-1", metrics_table())
    days = {row["observed_at"].date().isoformat() for row in METRIC_ROWS}
    assert [p.split("/")[2] for p in first] == [f"date={d}" for d in sorted(days)]
    # a retried task with the same run id adds files after its first try's, never over them
    again = FactLog(lake, METRICS).write("bluesky", "run-1", metrics_table(METRIC_ROWS[:1]))
    assert not set(again) & set(first) and again[0].endswith(f"run-1-{len(first):05d}.parquet")
    today = [row for row in METRIC_ROWS + METRIC_ROWS[:1] if row["observed_at"] >= midnight()]
    assert metrics.read(metrics.since(NOW.date())).num_rows == len(today)
    assert metrics.pending("w") == sorted(first + again)
    metrics.mark_loaded(first, "w")
    assert metrics.pending("w") == again and metrics.pending("w", everything=True)
    assert FactLog(lake, DELETIONS).entries() == {}  # the kinds keep apart


@pytest.fixture
def loaded(tmp_path):
    """A lake with the recent posts and their facts, analysed into DuckDB."""
    lake = Lake(str(tmp_path / "lake"))
    with lake.writer("collect-1") as writer:
        writer.write(recent_posts())
    FactLog(lake, METRICS).write("bluesky", "refresh-1", metrics_table(METRIC_ROWS[:-1]))
    FactLog(lake, METRICS).write("reddit", "refresh-1", metrics_table(METRIC_ROWS[-1:]))
    FactLog(lake, DELETIONS).write("bluesky", "refresh-1", deletions_table())
    config = Config(
        pipeline=PipelineConfig(lake=lake.url, warehouse=f"duckdb:///{tmp_path / 'w.duckdb'}")
    )
    report = analyze(config)
    return config, lake, report


def test_analyze_merges_the_facts_once(loaded):
    config, lake, report = loaded
    assert (report.snapshots_loaded, report.deletions_loaded) == (len(METRIC_ROWS), 1)
    again = analyze(config)
    assert (again.snapshots_loaded, again.deletions_loaded) == (0, 0)
    counts = again.totals
    assert (counts["post_metrics"], counts["post_deletions"], counts["posts"]) == (7, 1, 6)
    # a warehouse emptied of its snapshots (recreated) gets every fact file again
    with DuckDBWarehouse(config.warehouse.removeprefix("duckdb:///")) as warehouse:
        assert warehouse.load_metrics(metrics_table()) == 0  # MERGE: the same snapshots again
        assert warehouse.load_deletions(deletions_table()) == 0


def test_every_view_leaves_the_deleted_post_out_and_shows_the_newest_counts(loaded):
    config, _, _ = loaded
    with DuckDBWarehouse(config.warehouse.removeprefix("duckdb:///")) as warehouse:
        for view in VIEW_NAMES:
            if "post_id" in warehouse.query(f"SELECT * FROM {view} LIMIT 0").column_names:
                ids = warehouse.query(f"SELECT post_id FROM {view}")["post_id"].to_pylist()
                assert "bluesky:b3" not in ids, view
        assert warehouse.query("SELECT SUM(posts) AS n FROM daily_sentiment").to_pylist() == [
            {"n": 5}
        ]
        rows = {
            row["post_id"]: row
            for row in warehouse.query(
                "SELECT post_id, like_count, reply_count, engagement, counts_at, is_repost"
                " FROM top_posts"
            ).to_pylist()
        }
        assert (rows["bluesky:b0"]["like_count"], rows["bluesky:b0"]["counts_at"]) == (80, NOW)
        assert (rows["bluesky:b2"]["engagement"], rows["bluesky:b2"]["counts_at"]) == (
            36,
            NOW - HOUR,
        )
        # no snapshot: the counts and time of the collection
        boost = rows["mastodon:boost"]
        assert (boost["like_count"], boost["counts_at"]) == (
            500,
            NOW - 4 * HOUR + timedelta(minutes=5),
        )
        # a Reddit crosspost counts as a post of its own, with its own newest score
        cross = rows["reddit:t3_cross"]
        assert (cross["is_repost"], cross["engagement"]) == (False, 100)
        authors = warehouse.query(
            "SELECT author_handle, CAST(SUM(engagement) AS BIGINT) AS e FROM top_authors"
            " GROUP BY author_handle"
        ).to_pylist()
        assert {"author_handle": "rita", "e": 100} in authors
        assert {"author_handle": "bob", "e": 0} in authors  # a boost's counts are not bob's


def test_rising_posts_rank_by_engagement_gained_per_hour_between_the_two_newest_readings(loaded):
    config, _, _ = loaded
    with DuckDBWarehouse(config.warehouse.removeprefix("duckdb:///")) as warehouse:
        rising = warehouse.query(
            "SELECT post_id, gained, gain_per_hour, before_at FROM rising_posts"
            " ORDER BY gain_per_hour DESC"
        ).to_pylist()
    by_id = {row["post_id"]: row for row in rising}
    # b0: 20 → 80 in the last hour; b1: nothing since its reading two hours ago
    assert rising[0]["post_id"] == "bluesky:b0"
    assert by_id["bluesky:b0"]["gain_per_hour"] == pytest.approx(60.0)
    assert by_id["bluesky:b1"]["gain_per_hour"] == pytest.approx(0.0)
    # b2: read once after its collection (2 likes), which counts as the reading before
    b2_collected = NOW - 5 * HOUR + timedelta(minutes=5)
    assert by_id["bluesky:b2"]["before_at"] == b2_collected
    assert by_id["bluesky:b2"]["gained"] == 36 - 2
    hours = (NOW - HOUR - b2_collected).total_seconds() / 3600
    assert by_id["bluesky:b2"]["gain_per_hour"] == pytest.approx(34 / hours)
    # read once (the boost), or deleted (b3): no rise
    assert "mastodon:boost" not in by_id and "bluesky:b3" not in by_id


def test_the_dashboard_lists_rising_posts_and_top_posts_by_their_current_counts(loaded):
    from dashboard import queries

    config, _, _ = loaded
    with DuckDBWarehouse(config.warehouse.removeprefix("duckdb:///")) as warehouse:
        rising = warehouse.query(*queries.rising_posts(queries.Filters(), 10)).to_pylist()
        top = warehouse.query(*queries.top_posts(queries.Filters(), 10)).to_pylist()
        # a date filter of older days leaves "now" alone
        old_days = queries.Filters(end=NOW.date() - timedelta(days=30))
        assert warehouse.query(*queries.rising_posts(old_days, 10)).to_pylist() == rising
    # gaining posts only, fastest first: b0 (60 an hour), the crosspost, b2
    assert [row["gain_per_hour"] for row in rising] == sorted(
        (row["gain_per_hour"] for row in rising), reverse=True
    )
    assert rising[0]["author_handle"] == "ann0" and rising[0]["gained"] == 60
    assert all(row["gained"] > 0 for row in rising) and len(rising) == 3
    # top posts by current counts, reposts out: b1 (101 likes), then the crosspost (100)
    assert [(row["engagement"], row["counts_at"]) for row in top[:2]] == [
        (101, NOW),
        (100, NOW - HOUR),
    ]
