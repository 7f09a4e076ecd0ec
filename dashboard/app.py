"""The hashtag pulse page: what a community says under its hashtag, day by day.

Run it with ``python -m flows dashboard`` (see `dashboard.run_dashboard`), which names the
warehouse in the environment variable ``PULSE_DASHBOARD_WAREHOUSE``. The page reads the warehouse
views (and, for its live indicator, the run records) through parameterized queries, and keeps no
connection between queries, so that a flow can load new posts while the page is open; results are
cached for `CACHE_TTL` seconds. While a stream runs, the page refreshes itself when the warehouse
changes (`dashboard.live`).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import WAREHOUSE_ENV, health, live, queries
from dashboard.queries import Filters, Query
from flows.schema import SENTIMENT_LABELS
from flows.settings import ConfigError, parse_warehouse_url
from flows.warehouse.base import Warehouse
from flows.warehouse.errors import WarehouseError
from flows.warehouse.open import open_warehouse

CACHE_TTL = 30  # seconds: new loads show up within this, and a busy page stays cheap
NOT_ANALYSED = "not analysed"
SENTIMENT_COLORS = {
    "negative": "#d1495b",
    "neutral": "#a3a9b1",
    "positive": "#2a9d5c",
    NOT_ANALYSED: "#e4e7eb",
}
SENTIMENT_ORDER = [*SENTIMENT_LABELS, NOT_ANALYSED]
CHART_HEIGHT = 320
TOPIC_COLUMNS = 3  # small multiples per row in the topic trends
# when a post's counters were read: its collection, or the newest refresh
COUNTS_AT = st.column_config.DatetimeColumn(
    "Counts at",
    help="When these counts were read: the newest refresh, or the post's collection",
    format="D MMM, HH:mm",
    timezone="UTC",
    width=95,
)


@st.cache_resource(show_spinner=False)
def warehouse(url: str) -> Warehouse:
    """The warehouse at `url`, opened (tables and views made) once per server.

    It holds no connection: each query opens a read-only one and closes it, so a flow can write
    between two queries.
    """
    return open_warehouse(url)


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def fetch(url: str, query: Query) -> pd.DataFrame:
    """The rows of `query` on the warehouse at `url`."""
    sql, params = query
    return warehouse(url).query(sql, list(params)).to_pandas()


def missing_file(url: str) -> Path | None:
    """The DuckDB file `url` names, if it does not exist (opening it would create it)."""
    try:
        where = parse_warehouse_url(url)
    except ConfigError:
        return None  # opening it says what is wrong
    path = Path(where.path)
    return path if where.scheme == "duckdb" and not path.exists() else None


def topic_name(label: str) -> str:
    """``science_&_technology`` -> ``Science & technology``."""
    words = label.replace("_&_", " & ").replace("_", " ")
    return words[:1].upper() + words[1:]


def day_text(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def show_empty(url: str, reason: str) -> None:
    st.title("Hashtag pulse")
    st.info(
        f"**{reason}**\n\n"
        "Run `python -m flows demo` to load sample posts (no account needed), or "
        "`python -m flows run` to collect posts from the sources in `configuration.conf`, "
        "then reload this page.\n\n"
        f"Warehouse: `{url}`",
        icon=":material/inbox:",
    )


def sidebar(url: str, overview: pd.Series) -> tuple[Filters, int, int]:
    """The filters, the number of topics to chart, and the rows per top list."""
    choices = fetch(url, queries.facets())
    with st.sidebar:
        st.header("Filters")
        first, last = overview["first_day"], overview["last_day"]
        picked = st.date_input(
            "Dates",
            value=(first, last),
            min_value=first,
            max_value=last,
            format="YYYY-MM-DD",
            key="dates",
            bind="query-params",
        )
        # While a range is being picked, the widget holds one date: treat it as a single day.
        start, end = (picked[0], picked[-1]) if picked else (first, last)
        chosen = {}
        # The URL carries the displayed names (`?topic=Gaming`), so they must not change.
        for facet, label, name in (
            ("source", "Sources", str),
            ("hashtag", "Hashtags", lambda value: f"#{value}"),
            ("topic", "Topics", topic_name),
        ):
            chosen[facet] = st.multiselect(
                label,
                list(choices[choices["facet"] == facet]["value"]),
                format_func=name,
                placeholder=f"All {label.lower()}",
                key=facet,
                bind="query-params",
            )
        st.header("Display")
        topics_shown = st.slider("Topics in the trends", 3, 12, 6, step=TOPIC_COLUMNS)
        rows_shown = st.select_slider("Rows in the top lists", [10, 15, 25, 50], value=15)
        st.divider()
        st.button("Reload data", icon=":material/refresh:", on_click=fetch.clear)
        st.caption(f"Warehouse: `{url}`  \nResults are cached for {CACHE_TTL} s.")
    filters = Filters(
        start=start,
        end=end,
        sources=tuple(chosen["source"]),
        hashtags=tuple(chosen["hashtag"]),
        topics=tuple(chosen["topic"]),
    )
    return filters, topics_shown, rows_shown


def header(summary: pd.Series, hashtags: list[str]) -> None:
    st.title(" ".join(f"#{tag}" for tag in hashtags) + " pulse")
    span = f"{day_text(summary['first_day'])} – {day_text(summary['last_day'])}"
    freshness = []
    if pd.notna(summary["last_collected"]):
        freshness.append(f"collected up to {summary['last_collected']:%d %b %Y %H:%M} UTC")
    if pd.notna(summary["last_analysed"]):
        freshness.append(f"analysed up to {summary['last_analysed']:%d %b %Y %H:%M} UTC")
    st.markdown(f"**{span}**" + "".join(f" · {part}" for part in freshness))


def headline(summary: pd.Series) -> None:
    analysed = int(summary["analysed"])
    cards = st.columns(5)
    cards[0].metric("Posts", f"{int(summary['posts']):,}", border=True)
    cards[1].metric("Authors", f"{int(summary['authors']):,}", border=True)
    for card, label in zip(cards[2:4], ("positive", "negative"), strict=True):
        share = f"{summary[label] / analysed:.1%}" if analysed else "–"
        card.metric(
            label.title(),
            share,
            border=True,
            help=f"Share of the {analysed:,} analysed posts classified {label}",
        )
    cards[4].metric("Sources", f"{int(summary['sources']):,}", border=True)
    waiting = int(summary["posts"]) - analysed
    if waiting:
        st.caption(
            f"{waiting:,} posts are not analysed yet: `python -m flows run` classifies them."
        )


def fill_days(frame: pd.DataFrame, days: pd.DatetimeIndex, by: str, keys: list) -> pd.DataFrame:
    """`frame` (one row per day and `by`) with zero rows for the pairs it lacks, so that a quiet
    day shows as zero instead of vanishing from the axis or being bridged by a line."""
    frame = frame.assign(day=pd.to_datetime(frame["day"]))
    full = pd.MultiIndex.from_product([days, keys], names=["day", by])
    return frame.set_index(["day", by]).reindex(full, fill_value=0).reset_index()


def sentiment_color(labels: list[str], legend: bool = True) -> alt.Color:
    return alt.Color(
        "sentiment:N",
        scale=alt.Scale(domain=labels, range=[SENTIMENT_COLORS[label] for label in labels]),
        legend=alt.Legend(title=None, orient="top") if legend else None,
    )


def sentiment_chart(frame: pd.DataFrame, days: pd.DatetimeIndex) -> None:
    st.subheader("Sentiment over time")
    share = (
        st.segmented_control(
            "Scale",
            ["Posts", "Share"],
            default="Posts",
            key="sentiment_scale",
            label_visibility="collapsed",
        )
        == "Share"
    )
    frame = frame.assign(sentiment=frame["sentiment"].fillna(NOT_ANALYSED))
    present = [label for label in SENTIMENT_ORDER if label in set(frame["sentiment"])]
    frame = fill_days(frame, days, "sentiment", present)
    frame["rank"] = frame["sentiment"].map(SENTIMENT_ORDER.index)
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            # Ordinal days: one band per day, its label centred under the bar.
            x=alt.X(
                "yearmonthdate(day):O",
                title=None,
                axis=alt.Axis(format="%d %b", labelAngle=0, labelOverlap=True),
            ),
            y=alt.Y(
                "posts:Q",
                stack="normalize" if share else "zero",
                title="share of posts" if share else "posts",
                axis=alt.Axis(format="%") if share else alt.Axis(format=",d", tickMinStep=1),
            ),
            color=sentiment_color(present),
            order=alt.Order("rank:Q"),
            tooltip=[
                alt.Tooltip("yearmonthdate(day):T", title="day", format="%a %d %b %Y"),
                alt.Tooltip("sentiment:N"),
                alt.Tooltip("posts:Q", format=","),
            ],
        )
        .properties(height=CHART_HEIGHT)
    )
    st.altair_chart(chart, width="stretch")


def topic_charts(frame: pd.DataFrame, days: pd.DatetimeIndex, shown: int) -> None:
    st.subheader("Topic trends")
    totals = frame.groupby("label")[["posts", *SENTIMENT_LABELS]].sum()
    totals = totals.sort_values("posts", ascending=False).head(shown)
    if totals.empty:
        st.caption("No analysed posts here yet, so no topics.")
        return
    weekly = (
        st.segmented_control(
            "Grain",
            ["Daily", "Weekly"],
            default="Weekly" if len(days) > 31 else "Daily",
            key="topic_grain",
            label_visibility="collapsed",
        )
        == "Weekly"
    )
    top = list(totals.index)
    frame = fill_days(frame[frame["label"].isin(top)], days, "label", top)
    if weekly:
        # A week's posts per day it has in range, so that a partial week does not read as a dip.
        weeks = frame["day"].dt.to_period("W-SUN").dt.start_time
        frame = frame.assign(day=weeks).groupby(["day", "label"], as_index=False).sum()
        in_range = days.to_period("W-SUN").start_time.value_counts()
        frame[list(SENTIMENT_LABELS)] = frame[list(SENTIMENT_LABELS)].div(
            frame["day"].map(in_range), axis="index"
        )
    most = "most discussed topic" if len(top) == 1 else f"{len(top)} most discussed topics"
    st.caption(
        f"Posts per day{', averaged by week' if weekly else ''} on the {most}, coloured by "
        "sentiment; each chart has its own scale. A post can carry several topics."
    )
    series = frame.melt(
        ["day", "label"], list(SENTIMENT_LABELS), var_name="sentiment", value_name="count"
    )
    series["rank"] = series["sentiment"].map(SENTIMENT_ORDER.index)
    grid = st.columns(TOPIC_COLUMNS, gap="medium")
    # an area needs two days to show: fewer, and each day is a bar
    few_days = frame["day"].nunique() < 3
    for i, (label, row) in enumerate(totals.iterrows()):
        net = (row["positive"] - row["negative"]) / row["posts"]
        title = alt.Title(
            topic_name(label),
            subtitle=f"{int(row['posts']):,} posts · net sentiment {net:+.2f}",
            anchor="start",
        )
        chart = alt.Chart(series[series["label"] == label], title=title)
        chart = (
            (chart.mark_bar() if few_days else chart.mark_area(interpolate="monotone"))
            .encode(
                x=alt.X("day:T", title=None, axis=alt.Axis(format="%d %b", tickCount=4)),
                y=alt.Y("count:Q", title=None, stack="zero", axis=alt.Axis(tickCount=4)),
                color=sentiment_color(list(SENTIMENT_LABELS), legend=False),
                order=alt.Order("rank:Q"),
                tooltip=[
                    alt.Tooltip("day:T", title="week of" if weekly else "day", format="%d %b %Y"),
                    alt.Tooltip("sentiment:N"),
                    alt.Tooltip("count:Q", title="posts per day", format=",.1f" if weekly else ","),
                ],
            )
            .properties(height=210)
        )
        grid[i % TOPIC_COLUMNS].altair_chart(chart, width="stretch")


def entities_chart(frame: pd.DataFrame) -> None:
    st.subheader("Top entities")
    if frame.empty:
        st.caption("No entities in these posts.")
        return
    bars = alt.Chart(frame).encode(
        y=alt.Y("entity:N", sort="-x", title=None, axis=alt.Axis(labelLimit=200)),
        x=alt.X("posts:Q", title="posts mentioning it", axis=alt.Axis(tickMinStep=1)),
        tooltip=[
            alt.Tooltip("entity:N"),
            alt.Tooltip("entity_type:N", title="type"),
            alt.Tooltip("posts:Q", format=","),
            alt.Tooltip("net_sentiment:Q", title="net sentiment", format="+.2f"),
        ],
    )
    # Net sentiment is (positive - negative) / posts; half of that either way is already strong.
    color = alt.Color(
        "net_sentiment:Q",
        title="net sentiment",
        scale=alt.Scale(
            domain=[-0.5, 0, 0.5],
            range=[SENTIMENT_COLORS["negative"], "#dcdad3", SENTIMENT_COLORS["positive"]],
            clamp=True,
        ),
        legend=alt.Legend(orient="top", format="+.1f", gradientLength=180),
    )
    chart = bars.mark_bar(cornerRadiusEnd=3).encode(color=color) + bars.mark_text(
        align="left", dx=4, color="#555"
    ).encode(text=alt.Text("posts:Q", format=","))
    st.altair_chart(chart.properties(height=alt.Step(26)), width="stretch")


def table_height(rows: int, row_height: int = 35) -> int:
    """Pixels that show a data grid's header and all its `rows` without an inner scrollbar."""
    return 35 + rows * row_height + 3


def authors_table(frame: pd.DataFrame) -> None:
    st.subheader("Top authors")
    st.dataframe(
        frame,
        hide_index=True,
        height=table_height(len(frame)),
        column_config={
            "author_handle": st.column_config.TextColumn("Author", width=140),
            "source": st.column_config.TextColumn("Source", width=70),
            "author_name": st.column_config.TextColumn("Name", width=95),
            "posts": st.column_config.NumberColumn("Posts", format="localized", width=55),
            "likes": st.column_config.NumberColumn("Likes", format="localized", width=60),
            "engagement": st.column_config.NumberColumn(
                "Engagement",
                help="Likes, reposts, replies and quotes of the author's own posts",
                format="localized",
                width=90,
            ),
        },
    )


def post_grid(frame: pd.DataFrame, columns: dict) -> None:
    """A grid of posts, one a row, that shows them all without an inner scrollbar.

    Args:
        frame: the posts, with their ``counts_at`` and ``url`` columns.
        columns: how to show the other columns (Streamlit column configuration).
    """
    # A row over 4rem lets the grid wrap the post's text over three lines.
    row_height = 72
    st.dataframe(
        frame,
        hide_index=True,
        height=table_height(len(frame), row_height),
        row_height=row_height,
        column_config={
            **columns,
            "counts_at": COUNTS_AT,
            "url": st.column_config.LinkColumn("Link", display_text="Open ↗", width=65),
        },
    )


def posts_table(frame: pd.DataFrame) -> None:
    st.subheader("Top posts")
    post_grid(
        frame,
        {
            "created_at": st.column_config.DatetimeColumn(
                "Posted", format="D MMM YYYY, HH:mm", timezone="UTC", width=120
            ),
            "author_handle": st.column_config.TextColumn("Author", width=160),
            "text": st.column_config.TextColumn("Post", width=340),
            "sentiment": st.column_config.TextColumn("Sentiment", width=80),
            "engagement": st.column_config.NumberColumn(
                "Engagement",
                help="Likes, reposts, replies and quotes",
                format="localized",
                width=95,
            ),
            "like_count": st.column_config.NumberColumn("Likes", format="localized", width=60),
        },
    )


def rising_table(frame: pd.DataFrame) -> None:
    st.subheader("Rising now")
    if frame.empty:
        st.caption(
            "No post of the last 24 hours has gained engagement since it was last read: "
            "`python -m flows refresh`, then `analyze`, reads the counters again."
        )
        return
    post_grid(
        frame,
        {
            "created_at": st.column_config.DatetimeColumn(
                "Posted", format="D MMM, HH:mm", timezone="UTC", width=100
            ),
            "author_handle": st.column_config.TextColumn("Author", width=150),
            "text": st.column_config.TextColumn("Post", width=320),
            "gain_per_hour": st.column_config.NumberColumn(
                "Per hour",
                help="Engagement gained per hour between the post's two newest readings",
                format="%.1f",
                width=75,
            ),
            "gained": st.column_config.NumberColumn("Gained", format="localized", width=65),
            "engagement": st.column_config.NumberColumn(
                "Engagement", format="localized", width=90
            ),
        },
    )


def conversations_table(frame: pd.DataFrame) -> None:
    st.subheader("Emerging conversations")
    if frame.empty:
        st.caption("No conversation stands out in the latest week (analyze finds them).")
        return
    share = {"format": "percent", "min_value": 0, "max_value": 1, "width": 90}
    st.dataframe(
        frame,
        hide_index=True,
        height=table_height(len(frame)),
        column_config={
            "label": st.column_config.TextColumn(
                "Conversation", help="Its most distinctive words (class-based TF-IDF)", width=260
            ),
            "size": st.column_config.NumberColumn("Posts", format="localized", width=65),
            "growth": st.column_config.NumberColumn(
                "Growth", help="Posts more than the same conversation the week before",
                format="%+d", width=70,
            ),
            "negative_share": st.column_config.ProgressColumn("Negative", **share),
            "positive_share": st.column_config.ProgressColumn("Positive", **share),
            "example_urls": st.column_config.ListColumn("Example posts", width=420),
        },
    )


def main() -> None:
    st.set_page_config(page_title="Hashtag pulse", page_icon=":material/monitoring:", layout="wide")
    url = os.environ.get(WAREHOUSE_ENV)
    if not url:
        st.error(
            f"No warehouse given: start the page with `python -m flows dashboard`, which sets "
            f"`{WAREHOUSE_ENV}` from your configuration."
        )
        return
    if path := missing_file(url):
        show_empty(url, f"There is no warehouse at {path} yet.")
        return
    try:
        live.section(warehouse(url), on_change=fetch.clear)
        overview = fetch(url, queries.headline(Filters())).iloc[0]
        if overview["posts"] == 0:
            fetch.clear()  # so that the reload after a first load shows the posts at once
            show_empty(url, "The warehouse holds no posts yet.")
            runs = fetch(url, queries.collection_health(Filters(), health.month_start()))
            if not runs.empty:  # runs that failed are why there are no posts
                health.warn(runs)
                health.section(runs)
            return
        filters, topics_shown, rows_shown = sidebar(url, overview)
        summary = fetch(url, queries.headline(filters)).iloc[0]
        choices = fetch(url, queries.facets())
        hashtags = list(filters.hashtags) or list(choices[choices["facet"] == "hashtag"]["value"])
        if summary["posts"] == 0:
            header(overview, hashtags)
            st.warning("No posts match these filters: widen the dates or clear a filter.")
            return
        header(summary, hashtags)
        runs = fetch(url, queries.collection_health(filters, health.month_start()))
        health.warn(runs)
        headline(summary)
        days = pd.date_range(summary["first_day"], summary["last_day"])
        sentiment_chart(fetch(url, queries.sentiment_by_day(filters)), days)
        topic_charts(fetch(url, queries.topics_by_day(filters)), days, topics_shown)
        left, right = st.columns([2, 3], gap="large")
        with left:
            entities_chart(fetch(url, queries.top_entities(filters, rows_shown)))
        with right:
            authors_table(fetch(url, queries.top_authors(filters, rows_shown)))
        rising_table(fetch(url, queries.rising_posts(filters, rows_shown)))
        conversations_table(fetch(url, queries.emerging_conversations(filters, rows_shown)))
        posts_table(fetch(url, queries.top_posts(filters, rows_shown)))
        health.section(runs)
    except WarehouseError as exc:
        st.error(f"The warehouse could not be read: {exc}", icon=":material/error:")


main()
