"""The dashboard's SQL over the warehouse views, with the sidebar filters as bound parameters.

Every query reads views only and re-aggregates their day-grain rows by summing ``posts``; the
live indicator's `latest_runs` alone reads the table ``collection_runs``, whose per-run rows (a
stream's heartbeat, its events) no view keeps. User
choices never enter the SQL text: a filter adds ``column IN (?, ?)`` with one placeholder per
chosen value, and the values travel as parameters. The SQL keeps to forms every engine has
(``SUM(CASE ...)``, ``COUNT(DISTINCT ...)``), like the views themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

# A statement and its parameters, hashable so that the page can cache results by it.
Query = tuple[str, tuple]


@dataclass(frozen=True)
class Filters:
    """What the sidebar selects; an empty choice means no restriction."""

    start: date | None = None
    end: date | None = None
    sources: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()

    def where(self, *also: str) -> tuple[str, tuple]:
        """A ``WHERE`` clause over the views' dimension columns, and its parameters.

        Args:
            *also: fixed conditions (SQL without parameters) that rows must meet as well.
        """
        clauses: list[str] = []
        params: list = []
        if self.start is not None:
            clauses.append("day >= ?")
            params.append(self.start)
        if self.end is not None:
            clauses.append("day <= ?")
            params.append(self.end)
        for column, values in (
            ("source", self.sources),
            ("hashtag", self.hashtags),
            ("topic", self.topics),
        ):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
        clauses.extend(also)
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), tuple(params)


# The post lists leave reposts out: a repost repeats another post's text and counters.
_ORIGINAL = "COALESCE(is_repost, FALSE) = FALSE"


def _count(label: str) -> str:
    return f"SUM(CASE WHEN sentiment = '{label}' THEN 1 ELSE 0 END)"


def headline(filters: Filters) -> Query:
    """One row: posts, authors, sources, analysed, positive, negative, first/last day, and when
    posts were last collected and analysed."""
    where, params = filters.where()
    sql = f"""
        SELECT
            COUNT(*) AS posts,
            COUNT(DISTINCT author_handle) AS authors,
            COUNT(DISTINCT source) AS sources,
            COUNT(sentiment) AS analysed,
            {_count("positive")} AS positive,
            {_count("negative")} AS negative,
            MIN(day) AS first_day,
            MAX(day) AS last_day,
            MAX(collected_at) AS last_collected,
            MAX(analysed_at) AS last_analysed
        FROM posts_enriched
        {where}"""
    return sql, params


def facets() -> Query:
    """The values the sidebar offers (``facet``, ``value``, ``posts``), most posts first."""
    sql = """
        SELECT facet, value, posts FROM (
            SELECT 'source' AS facet, source AS value, COUNT(*) AS posts
            FROM posts_enriched GROUP BY source
            UNION ALL
            SELECT 'hashtag' AS facet, hashtag AS value, COUNT(*) AS posts
            FROM posts_enriched GROUP BY hashtag
            UNION ALL
            SELECT 'topic' AS facet, topic AS value, COUNT(*) AS posts
            FROM posts_enriched WHERE topic IS NOT NULL GROUP BY topic
        ) AS choices
        ORDER BY facet, posts DESC, value"""
    return sql, ()


def sentiment_by_day(filters: Filters) -> Query:
    """Posts per day and sentiment (null sentiment: not analysed yet)."""
    where, params = filters.where()
    sql = f"""
        SELECT day, sentiment, CAST(SUM(posts) AS BIGINT) AS posts
        FROM daily_sentiment
        {where}
        GROUP BY day, sentiment
        ORDER BY day, sentiment"""
    return sql, params


def topics_by_day(filters: Filters) -> Query:
    """Posts per day and topic label, with their counts per sentiment (a post counts under each
    label it carries; the topic filter picks posts by their top topic, as everywhere)."""
    where, params = filters.where()
    sql = f"""
        SELECT
            day, label,
            CAST(SUM(posts) AS BIGINT) AS posts,
            CAST(SUM(positive) AS BIGINT) AS positive,
            CAST(SUM(neutral) AS BIGINT) AS neutral,
            CAST(SUM(negative) AS BIGINT) AS negative
        FROM topic_trends
        {where}
        GROUP BY day, label
        ORDER BY day, label"""
    return sql, params


def top_entities(filters: Filters, limit: int) -> Query:
    """The most mentioned entities, with the net sentiment of the posts that mention them.

    A name that a backend typed two ways is one entity: the chart has one bar per name.
    """
    where, params = filters.where()
    sql = f"""
        SELECT
            entity, MAX(entity_type) AS entity_type,
            CAST(SUM(posts) AS BIGINT) AS posts,
            SUM(net_sentiment * posts) / SUM(posts) AS net_sentiment
        FROM top_entities
        {where}
        GROUP BY entity
        ORDER BY posts DESC, entity
        LIMIT ?"""
    return sql, (*params, limit)


def top_authors(filters: Filters, limit: int) -> Query:
    """The authors with the most posts, and the engagement their own posts drew (a repost's
    counters are the reposted post's)."""
    where, params = filters.where()
    # by source too: "alice" on X and "alice" on Reddit are two people
    sql = f"""
        SELECT
            author_handle, source, MAX(author_name) AS author_name,
            CAST(SUM(posts) AS BIGINT) AS posts,
            CAST(SUM(likes) AS BIGINT) AS likes,
            CAST(SUM(engagement) AS BIGINT) AS engagement
        FROM top_authors
        {where}
        GROUP BY source, author_handle
        ORDER BY posts DESC, engagement DESC, author_handle, source
        LIMIT ?"""
    return sql, (*params, limit)


def top_posts(filters: Filters, limit: int) -> Query:
    """The original posts (reposts left out) that drew the most engagement."""
    where, params = filters.where(_ORIGINAL)
    sql = f"""
        SELECT
            created_at, author_handle, text, sentiment, engagement, like_count, counts_at, url
        FROM top_posts
        {where}
        ORDER BY engagement DESC, created_at DESC, post_id
        LIMIT ?"""
    return sql, (*params, limit)


def rising_posts(filters: Filters, limit: int) -> Query:
    """The posts of the last 24 hours gaining engagement fastest (per hour, between their two
    newest readings); reposts left out, as in the top posts. The date filter does not apply:
    "now" is now."""
    where, params = replace(filters, start=None, end=None).where(_ORIGINAL, "gained > 0")
    sql = f"""
        SELECT
            created_at, author_handle, text, gain_per_hour, gained, engagement, counts_at, url
        FROM rising_posts
        {where}
        ORDER BY gain_per_hour DESC, engagement DESC, post_id
        LIMIT ?"""
    return sql, (*params, limit)


def emerging_conversations(filters: Filters, limit: int) -> Query:
    """The conversations of each hashtag's latest week, growing most first. Only the hashtag
    filter applies: a conversation spans its week and every source."""
    where, params = Filters(hashtags=filters.hashtags).where()
    sql = f"""
        SELECT label, size, growth, negative_share, positive_share, example_urls
        FROM emerging_conversations
        {where}
        ORDER BY growth DESC, size DESC, conversation_id
        LIMIT ?"""
    return sql, (*params, limit)


def collection_health(filters: Filters, month: date) -> Query:
    """Per source (of the chosen sources and hashtags): its last run (when, status, why), and
    over the chosen days its runs, new posts, failures, gaps and rate-limit waits; and what its
    runs cost since `month` (the first day of this month), whatever the days chosen."""
    scope, scope_params = replace(filters, start=None, end=None, topics=()).where()
    days = replace(filters, sources=(), hashtags=(), topics=())
    period, period_params = days.where()
    shown = period.removeprefix("WHERE ") or "TRUE"

    def in_period(column: str) -> str:
        return f"SUM({column} * shown)"

    sql = f"""
        SELECT
            source,
            MAX(last_finished_at) AS last_run,
            MAX(CASE WHEN run_rank = 1 THEN last_status END) AS last_status,
            MAX(CASE WHEN run_rank = 1 THEN last_reason END) AS last_reason,
            CAST({in_period("runs")} AS BIGINT) AS runs,
            CAST({in_period("posts")} AS BIGINT) AS posts,
            CAST({in_period("failures")} AS BIGINT) AS failures,
            CAST({in_period("gaps")} AS BIGINT) AS gaps,
            {in_period("rate_limit_wait_s")} AS rate_limit_wait_s,
            SUM(CASE WHEN day >= ? THEN cost_usd ELSE 0 END) AS cost_this_month
        FROM (
            SELECT
                h.*,
                CASE WHEN {shown} THEN 1 ELSE 0 END AS shown,
                ROW_NUMBER() OVER (
                    PARTITION BY source ORDER BY last_finished_at DESC, hashtag
                ) AS run_rank
            FROM source_health AS h
            {scope}
        ) AS health
        GROUP BY source
        ORDER BY source"""
    return sql, (month, *period_params, *scope_params)


def newest_post() -> Query:
    """One row (none without posts): the newest post by when it was posted, its source, and
    when it was posted and collected. No filter applies: the live indicator tells what arrives."""
    sql = """
        SELECT post_id, source, created_at, collected_at
        FROM posts_enriched
        ORDER BY created_at DESC, post_id DESC
        LIMIT 1"""
    return sql, ()


def latest_runs() -> Query:
    """Per source, its newest collection run record, newest first: status, start, end (a
    running stream's heartbeat), events, reconnects, gaps and lag."""
    sql = """
        SELECT
            source, status, started_at, finished_at, events, reconnects,
            COALESCE(ARRAY_LENGTH(gaps), 0) AS gaps, lag_s
        FROM (
            SELECT r.*, ROW_NUMBER() OVER (
                PARTITION BY source ORDER BY finished_at DESC, run_id DESC
            ) AS run_rank
            FROM collection_runs AS r
        ) AS ranked
        WHERE run_rank = 1
        ORDER BY finished_at DESC, source"""
    return sql, ()
