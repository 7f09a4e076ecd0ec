"""The warehouse's views, written once for every engine over the tables of
`flows.warehouse.tables`.

The SQL is the DuckDB dialect restricted to forms that have a standard (and BigQuery) equivalent,
so that another engine can run it through a transpiler (sqlglot ``read="duckdb"``): ``CAST``,
``COALESCE``, ``CASE``, ``ROW_NUMBER() OVER``, ``AT TIME ZONE``, ``MERGE``, ``CROSS JOIN
UNNEST(...) AS alias(column)`` with the column then named bare (BigQuery has no ``alias.column``
there); no ``QUALIFY``, no ``FILTER``, no ``::`` casts. Table and view names go through a ``ref``
function so that an engine can qualify them (``project.dataset.name``). A column added to
`flows.schema` reaches `posts_enriched` without an edit here.

Views pick, per post, ONE NLP result: the latest ``analysed_at``, ties going to the greatest
``model_id``. They are day-grain with the dimension columns ``day``, ``source``, ``hashtag`` and
``topic``, so that a dashboard filters on them and re-aggregates by summing ``posts``.
Every view reads posts through ``posts_enriched``, which leaves out the posts recorded as deleted
(``post_deletions``) and shows each post's newest counters (``post_metrics`` or its collection)
with the time they were read (``counts_at``).
``source_health`` is the same over the collection runs, by ``day``, ``source`` and ``hashtag``.
"""

from __future__ import annotations

from collections.abc import Callable

from flows.schema import POST_SCHEMA
from flows.warehouse.signals import signals_sql
from flows.warehouse.tables import NLP_COLUMNS, Ref, unqualified


def _count_sentiment(label: str) -> str:
    # SUM(CASE ...) rather than COUNT(*) FILTER / COUNTIF: the one form every engine has.
    return f"CAST(SUM(CASE WHEN sentiment = '{label}' THEN 1 ELSE 0 END) AS BIGINT)"


NET_SENTIMENT = (
    f"CAST({_count_sentiment('positive')} - {_count_sentiment('negative')} AS DOUBLE PRECISION)"
    " / COUNT(*)"
)

DIMENSIONS = "day, source, hashtag, topic"


COUNTERS = ("like_count", "repost_count", "reply_count", "quote_count")


def _engagement(alias: str) -> str:
    return " + ".join(f"COALESCE({alias}.{c}, 0)" for c in COUNTERS)


def _current_posts(ref: Ref) -> str:
    # The one place that decides which posts the views show and with which counters: a post
    # recorded as deleted is left out; its counters are those of its newest reading, a refresh
    # snapshot (post_metrics) or its collection, and `counts_at` says when that was.
    newer = "m.observed_at > p.collected_at"
    columns = []
    for name in POST_SCHEMA.names:
        if name in COUNTERS:
            columns.append(f"CASE WHEN {newer} THEN m.{name} ELSE p.{name} END AS {name}")
        elif name == "is_repost":
            # a Reddit crosspost is a post of its own, with its own score and comments; earlier
            # versions flagged crossposts as reposts, and lakes keep those rows as written
            columns.append(
                "CASE WHEN p.source = 'reddit' THEN FALSE ELSE p.is_repost END AS is_repost"
            )
        else:
            columns.append(f"p.{name}")
    columns.append(f"CASE WHEN {newer} THEN m.observed_at ELSE p.collected_at END AS counts_at")
    body = ",\n        ".join(columns)
    return f"""SELECT
        {body}
    FROM {ref("posts")} AS p
    LEFT JOIN (
        SELECT post_id, observed_at, {", ".join(COUNTERS)}, ROW_NUMBER() OVER (
            PARTITION BY post_id ORDER BY observed_at DESC
        ) AS snapshot_rank
        FROM {ref("post_metrics")}
    ) AS m ON m.post_id = p.post_id AND m.snapshot_rank = 1
    LEFT JOIN {ref("post_deletions")} AS d ON d.post_id = p.post_id
    WHERE d.post_id IS NULL"""


def _posts_enriched(ref: Ref) -> str:
    post_columns = ",\n    ".join(f"p.{name}" for name in POST_SCHEMA.names)
    nlp_columns = ",\n    ".join(f"n.{name}" for name in NLP_COLUMNS)
    return f"""SELECT
    {post_columns},
    {nlp_columns},
    CAST(p.created_at AT TIME ZONE 'UTC' AS DATE) AS day,
    {_engagement("p")} AS engagement,
    p.counts_at
FROM (
    {_current_posts(ref)}
) AS p
LEFT JOIN (
    SELECT post_id, {", ".join(NLP_COLUMNS)}, ROW_NUMBER() OVER (
        PARTITION BY post_id ORDER BY analysed_at DESC, model_id DESC
    ) AS result_rank
    FROM {ref("post_nlp")}
) AS n ON n.post_id = p.post_id AND n.result_rank = 1"""


def _rising_posts(ref: Ref) -> str:
    # Posts of the last 24 hours, with the engagement they gained per hour between their two
    # newest readings (the collection counts as one). A post read once has no rise yet.
    def reading(rank: int, column: str) -> str:
        return f"MAX(CASE WHEN reading_rank = {rank} THEN {column} END)"

    return f"""SELECT
    e.post_id, e.day, e.created_at, e.source, e.hashtag, e.topic, e.sentiment,
    e.author_handle, e.text, e.url, e.is_repost, e.engagement, e.counts_at,
    r.engagement_before, r.before_at,
    r.engagement_now - r.engagement_before AS gained,
    CAST(r.engagement_now - r.engagement_before AS DOUBLE PRECISION) * 3600
        / DATE_DIFF('second', r.before_at, r.now_at) AS gain_per_hour
FROM {ref("posts_enriched")} AS e
JOIN (
    SELECT
        post_id,
        {reading(1, "engagement")} AS engagement_now,
        {reading(1, "observed_at")} AS now_at,
        {reading(2, "engagement")} AS engagement_before,
        {reading(2, "observed_at")} AS before_at
    FROM (
        SELECT post_id, observed_at, engagement, ROW_NUMBER() OVER (
            PARTITION BY post_id ORDER BY observed_at DESC
        ) AS reading_rank
        FROM (
            SELECT post_id, collected_at AS observed_at, {_engagement("p")} AS engagement
            FROM {ref("posts")} AS p
            UNION ALL
            SELECT post_id, observed_at, {_engagement("m")} AS engagement
            FROM {ref("post_metrics")} AS m
        ) AS readings
    ) AS ranked
    WHERE reading_rank <= 2
    GROUP BY post_id
    HAVING COUNT(*) = 2
) AS r ON r.post_id = e.post_id
WHERE e.created_at >= CURRENT_TIMESTAMP - INTERVAL 24 HOUR AND r.now_at > r.before_at"""


def _daily_sentiment(ref: Ref) -> str:
    # Posts not analysed yet stay in, with a null sentiment, so that a day's total is all posts.
    return f"""SELECT
    {DIMENSIONS}, sentiment,
    COUNT(*) AS posts,
    AVG(sentiment_score) AS avg_sentiment_score
FROM {ref("posts_enriched")}
GROUP BY {DIMENSIONS}, sentiment"""


def _topic_trends(ref: Ref) -> str:
    # `topic` is the post's top topic, the dimension every view shares (what a topic filter
    # picks); `label` is each label the post carries: a post counts once under each of its
    # labels, so summing over labels counts a post more than once. A post with no label over the
    # threshold counts under its top topic, unless that has no score (an empty post).
    return f"""SELECT
    {DIMENSIONS}, label,
    COUNT(*) AS posts,
    {_count_sentiment("positive")} AS positive,
    {_count_sentiment("neutral")} AS neutral,
    {_count_sentiment("negative")} AS negative,
    {NET_SENTIMENT} AS net_sentiment
FROM (
    SELECT e.day, e.source, e.hashtag, e.topic, e.sentiment, label
    FROM {ref("posts_enriched")} AS e
    CROSS JOIN UNNEST(e.topics) AS t(label)
    UNION ALL
    SELECT day, source, hashtag, topic, sentiment, topic AS label
    FROM {ref("posts_enriched")}
    WHERE topic_score > 0 AND COALESCE(ARRAY_LENGTH(topics), 0) = 0
) AS labelled
GROUP BY {DIMENSIONS}, label"""


def _top_entities(ref: Ref) -> str:
    # One row per post and name first: an entity named twice in one post, or typed two ways
    # there, is one post mentioning it (under the greatest type), so that summing `posts` by
    # entity counts posts.
    return f"""SELECT
    {DIMENSIONS}, entity, entity_type,
    COUNT(*) AS posts,
    {NET_SENTIMENT} AS net_sentiment
FROM (
    SELECT post_id, day, source, hashtag, topic, sentiment, entity, MAX(type) AS entity_type
    FROM (
        SELECT
            e.post_id, e.day, e.source, e.hashtag, e.topic, e.sentiment,
            mention.text AS entity, mention.type AS type
        FROM {ref("posts_enriched")} AS e
        CROSS JOIN UNNEST(e.entities) AS m(mention)
    ) AS named
    GROUP BY post_id, day, source, hashtag, topic, sentiment, entity
) AS mentions
GROUP BY {DIMENSIONS}, entity, entity_type"""


def _own(column: str) -> str:
    # A repost carries the counters of the post it repeats (a Mastodon boost does): they are
    # that post's author's, not the reposter's.
    return f"CAST(SUM(CASE WHEN is_repost THEN 0 ELSE {column} END) AS BIGINT)"


def _top_authors(ref: Ref) -> str:
    return f"""SELECT
    {DIMENSIONS}, author_handle, author_name,
    COUNT(*) AS posts,
    {_own("COALESCE(like_count, 0)")} AS likes,
    {_own("COALESCE(repost_count, 0)")} AS reposts,
    {_own("engagement")} AS engagement
FROM {ref("posts_enriched")}
GROUP BY {DIMENSIONS}, author_handle, author_name"""


def _top_posts(ref: Ref) -> str:
    # Reposts stay in, flagged by is_repost: the dashboard decides whether to show them.
    return f"""SELECT
    post_id, day, created_at, source, hashtag, topic, sentiment, author_handle, text, url,
    like_count, repost_count, reply_count, quote_count, engagement, is_repost, counts_at
FROM {ref("posts_enriched")}"""


def _source_health(ref: Ref) -> str:
    # Per source, hashtag and day (of the runs' start): what collection got, waited for, missed
    # and paid, and how the day's last run ended (a failure, a budget stop).
    def count(status: str) -> str:
        return f"CAST(SUM(CASE WHEN status = '{status}' THEN 1 ELSE 0 END) AS BIGINT)"

    def last(column: str) -> str:
        return f"MAX(CASE WHEN run_rank = 1 THEN {column} END)"

    return f"""SELECT
    day, source, hashtag,
    COUNT(*) AS runs,
    {count("failed")} AS failures,
    {count("stopped")} AS stops,
    CAST(SUM(requests) AS BIGINT) AS requests,
    CAST(SUM(posts_new) AS BIGINT) AS posts,
    CAST(SUM(posts_duplicate) AS BIGINT) AS duplicates,
    CAST(SUM(retries) AS BIGINT) AS retries,
    SUM(rate_limit_wait_s) AS rate_limit_wait_s,
    CAST(SUM(reconnects) AS BIGINT) AS reconnects,
    CAST(SUM(events) AS BIGINT) AS events,
    CAST(SUM(COALESCE(ARRAY_LENGTH(gaps), 0)) AS BIGINT) AS gaps,
    MAX(lag_s) AS max_lag_s,
    SUM(cost_usd) AS cost_usd,
    MAX(finished_at) AS last_finished_at,
    {last("status")} AS last_status,
    {last("reason")} AS last_reason
FROM (
    SELECT
        r.*,
        CAST(r.started_at AT TIME ZONE 'UTC' AS DATE) AS day,
        ROW_NUMBER() OVER (
            PARTITION BY r.source, r.hashtag, CAST(r.started_at AT TIME ZONE 'UTC' AS DATE)
            ORDER BY r.finished_at DESC, r.run_id DESC
        ) AS run_rank
    FROM {ref("collection_runs")} AS r
) AS ranked
GROUP BY day, source, hashtag"""


def _emerging_conversations(ref: Ref) -> str:
    # Each computation covers a hashtag's latest window (flows.stages.conversations): its rows.
    # (a computation that found none leaves one row of size 0, so that it is not made again)
    return f"""SELECT c.*
FROM {ref("conversations")} AS c
JOIN (
    SELECT hashtag, MAX(computed_at) AS latest FROM {ref("conversations")} GROUP BY hashtag
) AS l ON l.hashtag = c.hashtag AND l.latest = c.computed_at
WHERE c.size > 0"""


# In dependency order: posts_enriched first, the others read it.
_VIEWS: dict[str, Callable[[Ref], str]] = {
    "posts_enriched": _posts_enriched,
    "daily_sentiment": _daily_sentiment,
    "topic_trends": _topic_trends,
    "top_entities": _top_entities,
    "top_authors": _top_authors,
    "top_posts": _top_posts,
    "rising_posts": _rising_posts,
    "source_health": _source_health,
    "signals": signals_sql,  # what changed: spikes, surges, turns (flows.warehouse.signals)
    "emerging_conversations": _emerging_conversations,
}

VIEW_NAMES = tuple(_VIEWS)


def view_sql(name: str, ref: Ref = unqualified) -> str:
    """The SELECT that defines view `name`."""
    return _VIEWS[name](ref)


def create_views_sql(ref: Ref = unqualified) -> list[str]:
    """``CREATE OR REPLACE VIEW`` for every view, in dependency order.

    Run on every open, so that a change of the SQL here reaches databases made before it.
    """
    return [f"CREATE OR REPLACE VIEW {ref(name)} AS\n{view_sql(name, ref)}" for name in VIEW_NAMES]
