"""The local dashboard, served by Streamlit and read in a real browser (Debian's chromium).

The browser tests build a small warehouse, start ``streamlit run`` the way `run_dashboard` does,
and compare what the page shows with what SQL on the same warehouse says.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pytest
from servers import answers, free_port, running

from dashboard import WAREHOUSE_ENV, dashboard_command, dashboard_env, queries
from dashboard.health import month_start
from flows.lake.runs import CollectionRun
from flows.schema import COLLECTION_RUN_SCHEMA, NLP_SCHEMA, posts_table
from flows.warehouse.open import open_warehouse

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# CI installs chromium (.ci/run): there a missing browser is a failure, not a skip.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install chromium)",
)

FIRST_DAY = date(2026, 11, 2)
DAYS = 14
# (name, type, lean): how the community feels about it, from -1 (sour) to +1 (sweet).
ENTITIES = [
    ("dbt", "product", 0.1),
    ("DuckDB", "product", 0.8),
    ("Apache Airflow", "product", -0.6),
    ("Snowflake", "organization", -0.9),
    ("BigQuery", "product", 0.0),
    ("Apache Kafka", "product", -0.3),
    ("Databricks", "organization", 0.2),
    ("Prefect", "product", 0.5),
    ("Apache Iceberg", "product", 0.4),
    ("Joe Reis", "person", 0.6),
    ("PyData Berlin", "event", 0.9),
]
TEXTS = {
    "positive": [
        "Moved our nightly batch to {a}: 12 minutes instead of 2 hours. {b} next!",
        "Great talk on {a} today, finally understand how it fits with {b}",
        "Shipped our first data contract with {a}. Fewer broken dashboards already",
    ],
    "negative": [
        "Spent the whole day debugging {a} again. Schema drift from {b} broke every model",
        "{a} costs doubled this month and nobody can explain why",
        "Another on-call night because {a} silently dropped late events",
    ],
    "neutral": [
        "Anyone comparing {a} and {b} for a small analytics team? Notes welcome",
        "Reading the {a} docs on incremental models, thread below",
        "Poll: do you run {a} in production or only {b}?",
    ],
}
TOPICS = {
    "science_&_technology": 50,
    "business_&_entrepreneurs": 16,
    "learning_&_educational": 14,
    "diaries_&_daily_life": 10,
    "news_&_social_concern": 6,
    "gaming": 4,
}
AUTHORS = ["ana", "bo", "chen", "dara", "eli", "femi", "gus", "hana", "ivo", "jun", "kai", "lea"]


def dashboard_rows(n: int = 360, seed: int = 11) -> tuple[pa.Table, pa.Table]:
    """`n` posts over `DAYS` days from two sources, and NLP results for most of them."""
    rng = random.Random(seed)
    posts, results = [], []
    start = datetime.combine(FIRST_DAY, datetime.min.time(), UTC)
    for i in range(n):
        source = "mastodon" if rng.random() < 0.6 else "bluesky"
        author = rng.choice(AUTHORS)
        handle = f"{author}@fosstodon.org" if source == "mastodon" else f"{author}.bsky.social"
        # The first entities are the talk of the hashtag; the rest come up now and then.
        a, a_type, lean = rng.choice(ENTITIES[:3] * 3 + ENTITIES)
        b, b_type, _ = rng.choice([entity for entity in ENTITIES if entity[0] != a])
        sentiment = rng.choices(list(TEXTS), weights=[45 + 40 * lean, 25 - 20 * lean, 30])[0]
        text = rng.choice(TEXTS[sentiment]).format(a=a, b=b) + f" #dataengineering ({i})"
        created = start + timedelta(minutes=rng.randrange(DAYS * 24 * 60))
        likes = int(rng.paretovariate(1.3)) - 1
        topic = rng.choices(list(TOPICS), weights=list(TOPICS.values()))[0]
        posts.append(
            {
                "post_id": f"{source}:{i}",
                "source": source,
                "native_id": str(i),
                "hashtag": "dataengineering",
                "url": f"https://{source}.example/{author}/{i}",
                "author_handle": handle,
                "author_name": author.title(),
                "created_at": created,
                "collected_at": start + timedelta(days=DAYS, hours=2),
                "text": text,
                "lang": "en",
                "like_count": likes,
                "repost_count": likes // 3,
                "reply_count": rng.randrange(4),
                "quote_count": 0,
                "is_repost": i % 10 == 9,
                "hashtags": ["dataengineering"],
                "mentions": [],
                "links": [],
                "client": "web",
            }
        )
        if created.date() == FIRST_DAY + timedelta(days=DAYS - 1) and i % 3 == 0:
            continue  # some of the newest posts await the NLP step
        results.append(
            {
                "post_id": f"{source}:{i}",
                "sentiment": sentiment,
                "sentiment_score": 0.55 + rng.random() * 0.4,
                "topic": topic,
                "topic_score": 0.5 + rng.random() * 0.5,
                "topics": [topic] + (["learning_&_educational"] if i % 7 == 0 else []),
                "entities": [{"text": a, "type": a_type}, {"text": b, "type": b_type}],
                "model_id": "lite-test",
                "analysed_at": start + timedelta(days=DAYS, hours=3),
            }
        )
    return posts_table(posts), pa.Table.from_pylist(results, schema=NLP_SCHEMA)


def build_warehouse(path: Path, n: int = 360, seed: int = 11) -> str:
    """A DuckDB warehouse holding `dashboard_rows`; its URL."""
    posts, results = dashboard_rows(n, seed)
    url = f"duckdb:///{path}"
    with open_warehouse(url) as warehouse:
        warehouse.load_posts(posts)
        warehouse.load_nlp(results)
    return url


def sql(url: str, statement: str, params: list | None = None) -> list[dict]:
    with open_warehouse(url) as warehouse:
        return warehouse.query(statement, params).to_pylist()


@contextmanager
def dashboard(url: str, log: Path) -> Iterator[str]:
    """`run_dashboard` over `url` in a child process; yields the page's address.

    Stopping the child with SIGTERM must stop Streamlit too: the address is dead afterwards.
    """
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    launch = (
        f"import sys; from dashboard import run_dashboard; sys.exit(run_dashboard({url!r}, {port}))"
    )
    health = f"{address}/_stcore/health"
    with running([sys.executable, "-c", launch], dashboard_env(url), log, lambda: answers(health, "ok"), 60):
        yield address
    assert not answers(health, "ok"), "Streamlit outlived run_dashboard"


@contextmanager
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium.new_page(viewport={"width": 1440, "height": 900})
        finally:
            chromium.close()


def settled_text(page, quiet: float = 1.5, timeout: float = 45) -> str:
    """The page's text once Streamlit has stopped running and the text stopped changing."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        text = page.inner_text("body")
        if text != last or running:
            last, since = text, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return text
        time.sleep(0.25)
    raise AssertionError(f"the page never settled; it last read:\n{last}")


def metrics(page) -> dict[str, str]:
    """The headline cards as shown: label -> value."""
    label, value = '[data-testid="stMetricLabel"]', '[data-testid="stMetricValue"]'
    cards = page.locator('[data-testid="stMetric"]').all()
    return {card.locator(label).inner_text(): card.locator(value).inner_text() for card in cards}


def expected_metrics(url: str, where: str = "", params: list | None = None) -> dict[str, str]:
    (row,) = sql(
        url,
        "SELECT COUNT(*) AS posts, COUNT(DISTINCT author_handle) AS authors,"
        " COUNT(DISTINCT source) AS sources,"
        " COUNT(sentiment) AS analysed,"
        " SUM(CASE WHEN sentiment = 'positive' THEN 1 ELSE 0 END) AS positive,"
        " SUM(CASE WHEN sentiment = 'negative' THEN 1 ELSE 0 END) AS negative"
        f" FROM posts_enriched {where}",
        params,
    )
    return {
        "Posts": f"{row['posts']:,}",
        "Authors": f"{row['authors']:,}",
        # Shares of the analysed posts: those still waiting for NLP are in neither.
        "Positive": f"{row['positive'] / row['analysed']:.1%}",
        "Negative": f"{row['negative'] / row['analysed']:.1%}",
        "Sources": str(row["sources"]),
    }


def test_filters_reach_sql_as_parameters_only(tmp_path):
    url = build_warehouse(tmp_path / "w.duckdb", n=120)
    hostile = "mastodon' OR '1'='1"
    where, params = queries.Filters(
        start=FIRST_DAY + timedelta(days=2), sources=("bluesky", hostile), topics=("gaming",)
    ).where()
    assert hostile not in where and "bluesky" not in where and "gaming" not in where
    assert params == (FIRST_DAY + timedelta(days=2), "bluesky", hostile, "gaming")

    filters = queries.Filters(start=FIRST_DAY + timedelta(days=2), sources=("bluesky", hostile))
    (got,) = sql(url, *queries.headline(filters))
    (want,) = sql(
        url,
        "SELECT COUNT(*) AS posts FROM posts_enriched WHERE day >= ? AND source = 'bluesky'",
        [FIRST_DAY + timedelta(days=2)],
    )
    assert 0 < got["posts"] == want["posts"] < 120


def test_every_panel_query_runs_and_respects_the_filters(tmp_path):
    url = build_warehouse(tmp_path / "w.duckdb", n=200)
    everything, bluesky = queries.Filters(), queries.Filters(sources=("bluesky",))
    for name in ("sentiment_by_day", "topics_by_day"):
        build = getattr(queries, name)
        total = sum(row["posts"] for row in sql(url, *build(everything)))
        only = sum(row["posts"] for row in sql(url, *build(bluesky)))
        assert 0 < only < total
    # the topic filter means the same to the headline and to the topic trends: the posts whose
    # top topic it is (each carries it as a label too, and maybe others)
    gaming = queries.Filters(topics=("gaming",))
    trends = sql(url, *queries.topics_by_day(gaming))
    labels = {row["label"] for row in trends}
    in_trends = sum(row["posts"] for row in trends if row["label"] == "gaming")
    assert in_trends == sql(url, *queries.headline(gaming))[0]["analysed"] > 0
    assert labels <= {"gaming", "learning_&_educational"}
    posts = sql(url, *queries.top_posts(bluesky, 5))
    assert len(posts) == 5 and all(row["url"].startswith("https://bluesky.") for row in posts)
    engagement = [row["engagement"] for row in posts]
    assert engagement == sorted(engagement, reverse=True)
    assert len(sql(url, *queries.top_entities(everything, 4))) == 4
    authors = sql(url, *queries.top_authors(bluesky, 50))
    assert all(row["author_handle"].endswith(".bsky.social") for row in authors)
    assert {row["source"] for row in authors} == {"bluesky"}
    assert sum(row["posts"] for row in authors) == sql(url, *queries.headline(bluesky))[0]["posts"]


def test_one_handle_on_two_sources_is_two_authors(tmp_path):
    from test_warehouse_duckdb import post, utc

    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    with open_warehouse(url) as warehouse:
        same = [post("x", "1", utc(20, 9), "alice"), post("reddit", "2", utc(20, 9), "alice")]
        warehouse.load_posts(posts_table(same))
    authors = sql(url, *queries.top_authors(queries.Filters(), 10))
    assert sorted((row["author_handle"], row["source"], row["posts"]) for row in authors) == [
        ("alice", "reddit", 1),
        ("alice", "x", 1),
    ]


def test_launch_command_serves_headless_on_the_given_address():
    command = dashboard_command(port=8642, host="127.0.0.1")
    assert command[command.index("--server.port") + 1] == "8642"
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[command.index("--server.headless") + 1] == "true"
    assert command[command.index("--browser.gatherUsageStats") + 1] == "false"
    opened = dashboard_command(open_browser=True)
    assert opened[opened.index("--server.headless") + 1] == "false"
    assert dashboard_env("duckdb:///x.duckdb")[WAREHOUSE_ENV] == "duckdb:///x.duckdb"


@needs_chromium
def test_dashboard_shows_what_the_warehouse_holds(tmp_path):
    url = build_warehouse(tmp_path / "warehouse.duckdb")
    (top_entity,) = sql(
        url,
        "SELECT entity FROM top_entities GROUP BY entity ORDER BY SUM(posts) DESC, entity LIMIT 1",
    )
    (top_topic,) = sql(
        url,
        "SELECT label, SUM(posts) AS posts, (SUM(positive) - SUM(negative)) / SUM(posts) AS net"
        " FROM topic_trends GROUP BY label ORDER BY posts DESC LIMIT 1",
    )
    (top_author,) = sql(
        url,
        "SELECT author_handle FROM top_authors GROUP BY source, author_handle"
        " ORDER BY SUM(posts) DESC, SUM(engagement) DESC, author_handle LIMIT 1",
    )
    (top_post,) = sql(
        url,
        "SELECT text FROM top_posts WHERE NOT is_repost"
        " ORDER BY engagement DESC, created_at DESC, post_id LIMIT 1",
    )
    with dashboard(url, tmp_path / "streamlit.log") as address, browser() as page:
        page.goto(address)
        page.wait_for_selector('[data-testid="stMetric"]', timeout=45_000)
        text = settled_text(page)
        assert "#dataengineering" in text
        last = FIRST_DAY + timedelta(days=DAYS - 1)
        assert f"{FIRST_DAY.day} {FIRST_DAY:%b %Y} – {last.day} {last:%b %Y}" in text
        assert metrics(page) == expected_metrics(url)
        (waiting,) = sql(url, "SELECT COUNT(*) AS n FROM posts_enriched WHERE sentiment IS NULL")
        assert waiting["n"] > 0 and f"{waiting['n']:,} posts are not analysed yet" in text
        for section in (
            "Sentiment over time",
            "Topic trends",
            "Top entities",
            "Top authors",
            "Rising now",  # empty here: these posts are older than a day
            "Top posts",
        ):
            assert section in text
        # Vega charts: sentiment, one per topic (most posts first), entities; two data grids.
        charts = page.locator('[data-testid="stVegaLiteChart"]')
        tables = page.locator('[data-testid="stDataFrame"]')
        assert charts.count() == 1 + len(TOPICS) + 1 and tables.count() == 2
        assert top_topic["label"] == "science_&_technology"
        assert (
            charts.nth(1)
            .inner_text()
            .endswith(
                f"Science & technology\n{top_topic['posts']:,} posts"
                f" · net sentiment {top_topic['net']:+.2f}"
            )
        )
        assert top_entity["entity"] in charts.last.inner_text().splitlines()
        # A grid draws on a canvas; its accessible copy of the cells holds the text.
        assert top_author["author_handle"] in tables.nth(0).text_content()
        assert top_post["text"] in tables.nth(1).text_content()
        assert "Traceback" not in text

        # The page scrolls inside Streamlit's main block, not the window: grow the window to it.
        height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": 1440, "height": height})
        settled_text(page)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)

        sources = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').first
        sources.click()
        page.get_by_role("option", name="bluesky").click()
        page.keyboard.press("Escape")
        settled_text(page)
        bluesky = expected_metrics(url, "WHERE source = ?", ["bluesky"])
        assert metrics(page) == bluesky and bluesky["Posts"] != expected_metrics(url)["Posts"]
        # The filter is in the address: sharing it shows the same numbers.
        assert parse_qs(urlsplit(page.url).query) == {"source": ["bluesky"]}
        page.goto(page.url)
        page.wait_for_selector('[data-testid="stMetric"]', timeout=45_000)
        settled_text(page)
        assert metrics(page) == bluesky


@needs_chromium
def test_dashboard_without_posts_says_how_to_load_them_and_shows_them_once_loaded(tmp_path):
    path = tmp_path / "data" / "warehouse.duckdb"
    with dashboard(f"duckdb:///{path}", tmp_path / "streamlit.log") as address, browser() as page:
        page.goto(address)
        page.wait_for_selector('[data-testid="stAlert"]', timeout=45_000)
        text = settled_text(page)
        assert "There is no warehouse at" in text and "python -m flows demo" in text
        assert not path.exists()  # looking must not create it

        open_warehouse(f"duckdb:///{path}").close()  # tables and views, no posts
        page.reload()
        page.wait_for_selector('[data-testid="stAlert"]', timeout=45_000)
        text = settled_text(page)
        assert "holds no posts yet" in text and "python -m flows run" in text
        assert "Traceback" not in text and page.locator('[data-testid="stException"]').count() == 0

        # A flow loads while the page is open (the page holds no lock); a reload shows the posts.
        build_warehouse(path, n=40)
        page.reload()
        page.wait_for_selector('[data-testid="stMetric"]', timeout=45_000)
        settled_text(page)
        assert metrics(page)["Posts"] == "40"


def health_runs(posts: pa.Table, now: datetime) -> pa.Table:
    """A run per source and day of `posts` (landing that day's posts), bluesky's last one
    failed, a gap in mastodon's tenth day; and an X run `now`, stopped by its budget."""
    days = sorted({(row["source"], row["created_at"].date()) for row in posts.to_pylist()})
    counts = {key: 0 for key in days}
    for row in posts.to_pylist():
        counts[row["source"], row["created_at"].date()] += 1
    runs = []
    for source, day in days:
        start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=23)
        run = CollectionRun(
            f"run-{day}", source, "dataengineering", start, start + timedelta(minutes=3),
            requests=4, posts_new=counts[source, day], retries=1, rate_limit_wait_s=90.0,
            lag_s=600.0,
        )
        if source == "bluesky" and day == FIRST_DAY + timedelta(days=DAYS - 1):
            run.status, run.reason = "failed", "bluesky: 401 Unauthorized: check the app password"
        if source == "mastodon" and day == FIRST_DAY + timedelta(days=9):
            run.gaps = [(start - timedelta(hours=3), start - timedelta(hours=1))]
        runs.append(run)
    runs.append(
        CollectionRun(
            "run-now", "x", "dataengineering", now - timedelta(minutes=5), now, status="stopped",
            reason="x: stopped before the next request: [x] max_cost_per_run = 5.00 USD",
            requests=5, posts_new=330, cost_usd=4.95,
        )
    )
    return pa.Table.from_pylist([run.to_row() for run in runs], schema=COLLECTION_RUN_SCHEMA)


ALERT_TEXT = '[data-testid="stAlert"] [data-testid="stMarkdownContainer"]'  # without the icon


@needs_chromium
def test_dashboard_shows_collection_health_and_warns_of_failures_and_gaps(tmp_path):
    url = build_warehouse(tmp_path / "warehouse.duckdb")
    posts, _ = dashboard_rows()
    with open_warehouse(url) as warehouse:
        warehouse.load_runs(health_runs(posts, datetime.now(UTC)))
    last = FIRST_DAY + timedelta(days=DAYS - 1)
    shown = queries.Filters(start=FIRST_DAY, end=last)
    expected = {
        row["source"]: row
        for row in sql(url, *queries.collection_health(shown, month_start()))
    }
    assert expected["bluesky"]["posts"] == posts["source"].to_pylist().count("bluesky")
    with dashboard(url, tmp_path / "streamlit.log") as address, browser() as page:
        page.goto(address)
        page.wait_for_selector('[data-testid="stMetric"]', timeout=45_000)
        text = settled_text(page)
        warning = page.locator(ALERT_TEXT).first
        assert warning.inner_text() == (
            "Collection trouble in these days, so some posts may be missing: bluesky: 1 failed "
            "run; mastodon: 1 gap. See Collection health below."
        )
        assert warning.bounding_box()["y"] < 900  # on the first screen
        assert "Collection health" in text and "Traceback" not in text
        # the grid's accessible copy: one row per source, its cells' values
        grid = page.locator('[data-testid="stDataFrame"]').nth(2)
        cells = [
            [cell.text_content() for cell in row.locator("td").all()]
            for row in grid.locator("tbody tr").all()
        ]
        assert [row[0] for row in cells] == list(expected) == ["bluesky", "mastodon", "x"]
        for row, want in zip(cells, expected.values(), strict=True):
            waits = f"{want['rate_limit_wait_s'] / 60:g}"  # shown in minutes
            assert row[3:8] == [str(want["runs"]), str(want["posts"]), waits] + [
                str(want["gaps"]), str(want["failures"])
            ]
        assert cells[0][2] == "failed: bluesky: 401 Unauthorized: check the app password"
        assert cells[1][2] == "ok"  # its last run
        assert cells[2][2].startswith("stopped: x: stopped before the next request")
        assert cells[2][-1] == "4.95" and expected["x"]["cost_this_month"] == pytest.approx(4.95)
        height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": 1440, "height": height})
        settled_text(page)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "dashboard-health.png", full_page=True)

        # mastodon alone: its gap is the only trouble left
        page.goto(f"{address}/?source=mastodon")
        page.wait_for_selector('[data-testid="stMetric"]', timeout=45_000)
        settled_text(page)
        assert page.locator(ALERT_TEXT).first.inner_text() == (
            "Collection trouble in these days, so some posts may be missing: mastodon: 1 gap. "
            "See Collection health below."
        )


@needs_chromium
def test_an_empty_warehouse_shows_why_when_collection_failed(tmp_path):
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    now = datetime.now(UTC)
    refused = CollectionRun(
        "run-1", "x", "dataengineering", now - timedelta(minutes=1), now, status="failed",
        reason="x: 401 Unauthorized: copy the bearer token again", requests=1,
    )
    with open_warehouse(url) as warehouse:
        warehouse.load_runs(pa.Table.from_pylist([refused.to_row()], schema=COLLECTION_RUN_SCHEMA))
    with dashboard(url, tmp_path / "streamlit.log") as address, browser() as page:
        page.goto(address)
        page.wait_for_selector('[data-testid="stDataFrame"]', timeout=45_000)
        text = settled_text(page)
        assert "holds no posts yet" in text and "Collection health" in text
        assert page.locator(ALERT_TEXT).nth(1).inner_text() == (
            "Collection trouble in these days, so some posts may be missing: x: 1 failed run. "
            "See Collection health below."
        )
        grid = page.locator('[data-testid="stDataFrame"]')
        assert "failed: x: 401 Unauthorized" in grid.text_content()
