"""The digest of the demo's sample: each figure equals the same figure counted from the posts
themselves; the page is written as Markdown and HTML by the CLI; the weekly schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flows.cli import main
from flows.lake.lake import Lake
from flows.sources.sample.source import SampleSettings, generate_posts
from flows.stages.digest import build_digest, due_digest, mark_published, to_html, to_markdown
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse
from test_warehouse_duckdb import nlp_table, result

SENTIMENTS = ("negative", "neutral", "positive")
ANALYSED_AT = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's posts (the sample's defaults), each with a sentiment fixed by its index."""
    posts = generate_posts(0, SampleSettings().posts, SampleSettings(), "dataengineering",
                           datetime(2026, 11, 24))
    # the sample delivers some posts twice, as networks do: the warehouse keeps one
    seen: dict[str, int] = {}
    for index, post_id in enumerate(posts.column("post_id").to_pylist()):
        seen.setdefault(post_id, index)
    posts = posts.take(sorted(seen.values()))
    sentiment = [SENTIMENTS[int(i) % 3] for i in posts.column("native_id").to_pylist()]
    results = nlp_table([
        result(post_id, "rule-1", label, 0.5, "news_&_social_concern", [], [], ANALYSED_AT)
        for post_id, label in zip(posts.column("post_id").to_pylist(), sentiment)
    ])
    path = tmp_path_factory.mktemp("demo") / "w.duckdb"
    with DuckDBWarehouse(path) as warehouse:
        warehouse.load_posts(posts)
        warehouse.load_nlp(results)
    return path, posts.append_column("sentiment", pa.array(sentiment))


def test_the_digest_of_the_demo_counts_what_the_posts_say(demo):
    path, posts = demo
    with DuckDBWarehouse(path) as warehouse:
        digest = build_digest(warehouse, "dataengineering", days=7)
    assert (digest.start, digest.end) == (datetime(2026, 11, 17, tzinfo=UTC),
                                          datetime(2026, 11, 24, tzinfo=UTC))
    created = posts.column("created_at")
    now = posts.filter(pc.greater_equal(created, pa.scalar(digest.start, created.type)))
    before = posts.filter(pc.and_(
        pc.less(created, pa.scalar(digest.start, created.type)),
        pc.greater_equal(created, pa.scalar(digest.start - timedelta(days=7), created.type)),
    ))
    assert (digest.now.posts, digest.before.posts) == (now.num_rows, before.num_rows)
    assert digest.by_source == {"sample": (now.num_rows, before.num_rows)}
    negative = pc.sum(pc.equal(now.column("sentiment"), "negative")).as_py()
    assert digest.now.negative_share == pytest.approx(negative / now.num_rows)

    own = now.filter(pc.invert(now.column("is_repost"))).to_pylist()
    def engagement(p):
        return sum(p[c] or 0 for c in ("like_count", "repost_count", "reply_count", "quote_count"))
    top = sorted(own, key=lambda p: (-engagement(p), p["post_id"]))[:5]
    assert [p["post_id"] for p in digest.top_posts] == [p["post_id"] for p in top]

    first_post: dict[str, datetime] = {}
    for p in posts.to_pylist():
        handle = p["author_handle"]
        first_post[handle] = min(p["created_at"], first_post.get(handle, p["created_at"]))
    newcomers = {a for a, t in first_post.items() if t >= digest.start}
    assert {v["author_handle"] for v in digest.new_voices} <= newcomers
    assert len(digest.new_voices) == min(5, len(newcomers))

    # the sample's conference week falls in this period: it shows as signals, each inside it
    assert digest.signals and all(
        digest.start <= s["window_start"] < digest.end for s in digest.signals
    )
    assert [s["score"] for s in digest.signals] == sorted(
        (s["score"] for s in digest.signals), reverse=True
    )
    assert to_html(digest).count("<li>") == to_markdown(digest).count("\n- ")


def test_the_cli_writes_the_digest_as_markdown_or_html(demo, tmp_path, monkeypatch, capsys):
    path, _ = demo
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PULSE_PIPELINE_WAREHOUSE", f"duckdb:///{path}")
    with DuckDBWarehouse(path) as warehouse:
        want = to_markdown(build_digest(warehouse, "dataengineering", days=3))
    assert main(["digest", "--days", "3", "--out", "week.md"]) == 0
    assert (tmp_path / "week.md").read_text() == want
    assert main(["digest", "--days", "3", "--out", "week.html"]) == 0
    assert (tmp_path / "week.html").read_text().startswith("<!doctype html>")
    assert main(["digest", "--out", "week.pdf"]) == 2
    assert "name a .md or .html file" in capsys.readouterr().err


def test_the_digest_is_due_once_a_week(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    monday = datetime(2026, 11, 23, 6, tzinfo=UTC)
    assert due_digest(lake, monday)
    mark_published(lake, monday)
    assert not due_digest(lake, monday + timedelta(days=6, hours=23))
    assert due_digest(lake, monday + timedelta(days=7))
