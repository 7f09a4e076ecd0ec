"""The SQL of view ``signals``: what changed for a hashtag, in the dialect of
`flows.warehouse.views` (DuckDB as is, BigQuery through sqlglot).

Kinds of signal, each a row with its numbers (``value``, ``baseline``, ``score``), its window
(``window_start``, ``window_end``) and up to three example posts (ids and links, most engaging
first):

- ``volume``: posts per hashtag and source in an hour (or a day) against the trailing week (or
  four weeks) of the same series. The score is robust: ``(value - median) / spread``, where the
  spread is the scaled median absolute deviation of the trailing window, floored by the Poisson
  noise of the median (``sqrt(median)``) and by 1. A flat series scores 0; one that grows slowly
  scores about 1.4 whatever its slope (the median lags half a window, the MAD spans a quarter),
  far below ``MIN_SCORE``.
- ``entity`` and ``topic``: posts of a hashtag (all sources) naming an entity, or carrying a topic
  label, in a day, scored the same way against the trailing weeks (an entity never named before
  has a baseline of 0: that is the surge of a new name).
- ``negative_share``: the day's share of negative posts per hashtag and source against the pooled
  share of the trailing two weeks, scored as a two-proportion z-score.
- ``engagement``: a post whose engagement (log scale) runs far above the hashtag's and source's
  posts of the trailing week (z-score of ``ln(1 + engagement)``); reposts are left out.

Empty buckets count as zeros from the hashtag's first post on; windows before it are not history.
Medians come from ``ROW_NUMBER`` (BigQuery has no median aggregate and no framed percentile).
"""

from __future__ import annotations

from flows.warehouse.tables import Ref

MIN_SCORE = 5.0  # robust z-scores from here on are signals
MIN_RATIO = 2.0  # and a count at least twice its baseline
MIN_SHARE_JUMP = 0.15  # a negative share at least this far above its baseline
MIN_ENGAGEMENT = 20  # a post's engagement, to count as far above the usual
SIGNAL_KINDS = ("volume", "negative_share", "entity", "topic", "engagement")
ALL_SOURCES = "*"  # the source of signals counted over every source

# grain → (SQL interval of one bucket, trailing buckets, buckets of history needed, least count)
GRAINS = {
    "hour": ("INTERVAL 1 HOUR", 168, 72, 10),
    "day": ("INTERVAL 1 DAY", 28, 7, 20),
}
SHARE_DAYS, ENGAGEMENT_DAYS = 14, 7


def _median(rows: str, keys: str, value: str) -> str:
    """Per `keys`, the median of `value` over `rows` (the middle row, or the mean of the two
    middle ones) and ``n``, the number of rows."""
    return f"""SELECT {keys}, AVG({value}) AS median, MAX(n) AS n FROM (
        SELECT {keys}, {value},
            ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY {value}) AS r,
            COUNT(*) OVER (PARTITION BY {keys}) AS n
        FROM {rows}
    ) AS ranked WHERE 2 * r BETWEEN n AND n + 2 GROUP BY {keys}"""


def _counts() -> str:
    """Every counted series: (kind, grain, hashtag, source, subject, bucket, value)."""
    parts = []
    for grain in GRAINS:
        bucket = f"DATE_TRUNC('{grain}', created_at)"
        parts.append(
            f"SELECT 'volume' AS kind, '{grain}' AS grain, hashtag, source, '' AS subject,"
            f" {bucket} AS bucket, COUNT(*) AS value FROM enriched"
            f" GROUP BY hashtag, source, {bucket}"
        )
    for kind, unnest, column in (
        ("entity", "UNNEST(e.entities) AS m(mention)", "mention.text"),
        ("topic", "UNNEST(e.topics) AS t(label)", "label"),
    ):
        parts.append(
            f"SELECT '{kind}', 'day', hashtag, '{ALL_SOURCES}', subject, bucket, COUNT(*) FROM ("
            f"SELECT DISTINCT e.hashtag, {column} AS subject, e.post_id,"
            " DATE_TRUNC('day', e.created_at) AS bucket"
            f" FROM enriched AS e CROSS JOIN {unnest}"
            f") AS {kind}_posts GROUP BY hashtag, subject, bucket"
        )
    return "\n    UNION ALL\n    ".join(parts)


KEYS = "kind, grain, hashtag, source, subject, bucket"


def _count_ctes(grain: str) -> str:
    """The CTEs that score the counts of one grain against their trailing windows (they read
    CTEs ``counts`` and ``starts``); ``scored_<grain>`` is the last."""
    unit, window, history, least = GRAINS[grain]
    t_keys = ", ".join(f"t.{k}" for k in KEYS.split(", "))
    deviations = f"""(
        SELECT {t_keys}, ABS(t.past - m.median) AS deviation
        FROM trailing_{grain} AS t JOIN median_{grain} AS m USING ({KEYS})
    )"""
    return f"""trailing_{grain} AS (
    SELECT c.kind, c.grain, c.hashtag, c.source, c.subject, c.bucket,
        CAST(COALESCE(p.value, 0) AS DOUBLE PRECISION) AS past
    FROM counts AS c
    JOIN starts AS h ON h.hashtag = c.hashtag
    CROSS JOIN UNNEST(GENERATE_SERIES(1, {window})) AS o(k)
    LEFT JOIN counts AS p ON p.kind = c.kind AND p.grain = c.grain
        AND p.hashtag = c.hashtag AND p.source = c.source AND p.subject = c.subject
        AND p.bucket = c.bucket - k * {unit}
    WHERE c.grain = '{grain}' AND c.value >= {least}
        AND c.bucket - k * {unit} >= DATE_TRUNC('{grain}', h.first_post)
),
median_{grain} AS (
    {_median(f"trailing_{grain}", KEYS, "past")}
),
mad_{grain} AS (
    {_median(deviations, KEYS, "deviation")}
),
scored_{grain} AS (
    SELECT b.kind, b.grain, b.hashtag, b.source, b.subject, b.bucket,
        b.bucket + {unit} AS window_end,
        CAST(c.value AS DOUBLE PRECISION) AS value, b.median AS baseline,
        (c.value - b.median) / GREATEST(1.4826 * d.median, SQRT(b.median), 1.0) AS score
    FROM median_{grain} AS b
    JOIN mad_{grain} AS d USING ({KEYS})
    JOIN counts AS c USING ({KEYS})
    WHERE b.n >= {history}
)"""


def signals_sql(ref: Ref) -> str:
    """The SELECT of view ``signals``."""
    share_history = f"""SELECT d.hashtag, d.source, d.bucket,
            SUM(p.negative) AS negative, SUM(p.posts) AS posts
        FROM daily AS d
        CROSS JOIN UNNEST(GENERATE_SERIES(1, {SHARE_DAYS})) AS o(k)
        JOIN daily AS p ON p.hashtag = d.hashtag AND p.source = d.source
            AND p.bucket = d.bucket - k * INTERVAL 1 DAY
        GROUP BY d.hashtag, d.source, d.bucket"""
    engagement_history = f"""SELECT d.hashtag, d.source, d.bucket,
            SUM(p.n) AS n, SUM(p.s) / SUM(p.n) AS mean,
            SQRT(GREATEST(SUM(p.ss) / SUM(p.n) - (SUM(p.s) / SUM(p.n)) * (SUM(p.s) / SUM(p.n)),
                0.0)) AS sd
        FROM daily AS d
        CROSS JOIN UNNEST(GENERATE_SERIES(1, {ENGAGEMENT_DAYS})) AS o(k)
        JOIN daily AS p ON p.hashtag = d.hashtag AND p.source = d.source
            AND p.bucket = d.bucket - k * INTERVAL 1 DAY
        GROUP BY d.hashtag, d.source, d.bucket"""
    count_ctes = ",\n".join(_count_ctes(grain) for grain in GRAINS)
    # posts_enriched once (DuckDB materializes a CTE read several times), not once per part
    return f"""WITH
enriched AS (
    SELECT post_id, hashtag, source, created_at, url, engagement, is_repost, sentiment,
        entities, topics
    FROM {ref("posts_enriched")}
),
starts AS (
    SELECT hashtag, MIN(created_at) AS first_post FROM enriched GROUP BY hashtag
),
counts AS (
    {_counts()}
),
daily AS (
    SELECT hashtag, source, DATE_TRUNC('day', created_at) AS bucket,
        CAST(SUM(CASE WHEN sentiment = 'negative' THEN 1 ELSE 0 END) AS DOUBLE PRECISION)
            AS negative,
        CAST(SUM(CASE WHEN sentiment IS NULL THEN 0 ELSE 1 END) AS DOUBLE PRECISION) AS posts,
        CAST(SUM(CASE WHEN is_repost THEN 0 ELSE 1 END) AS DOUBLE PRECISION) AS n,
        SUM(CASE WHEN is_repost THEN 0 ELSE LN(1 + engagement) END) AS s,
        SUM(CASE WHEN is_repost THEN 0 ELSE LN(1 + engagement) * LN(1 + engagement) END) AS ss
    FROM enriched
    GROUP BY hashtag, source, DATE_TRUNC('day', created_at)
),
{count_ctes},
found AS (
    SELECT * FROM scored_hour WHERE score >= {MIN_SCORE} AND value >= {MIN_RATIO} * baseline
    UNION ALL
    SELECT * FROM scored_day WHERE score >= {MIN_SCORE} AND value >= {MIN_RATIO} * baseline
    UNION ALL
    SELECT 'negative_share', 'day', d.hashtag, d.source, '', d.bucket,
        d.bucket + INTERVAL 1 DAY,
        d.negative / d.posts, h.negative / h.posts,
        (d.negative / d.posts - h.negative / h.posts) / SQRT(GREATEST(
            h.negative / h.posts * (1 - h.negative / h.posts), 0.01) / d.posts)
    FROM daily AS d JOIN ({share_history}) AS h
        ON h.hashtag = d.hashtag AND h.source = d.source AND h.bucket = d.bucket
    WHERE d.posts >= {GRAINS["day"][3]} AND h.posts >= {GRAINS["day"][3]} * 3
        AND d.negative / d.posts - h.negative / h.posts >= {MIN_SHARE_JUMP}
        AND (d.negative / d.posts - h.negative / h.posts) / SQRT(GREATEST(
            h.negative / h.posts * (1 - h.negative / h.posts), 0.01) / d.posts) >= {MIN_SCORE}
    UNION ALL
    SELECT 'engagement', 'day', e.hashtag, e.source, e.post_id,
        DATE_TRUNC('day', e.created_at), DATE_TRUNC('day', e.created_at) + INTERVAL 1 DAY,
        CAST(e.engagement AS DOUBLE PRECISION), EXP(h.mean) - 1,
        (LN(1 + e.engagement) - h.mean) / GREATEST(h.sd, 0.5)
    FROM enriched AS e JOIN ({engagement_history}) AS h
        ON h.hashtag = e.hashtag AND h.source = e.source
        AND h.bucket = DATE_TRUNC('day', e.created_at)
    WHERE NOT e.is_repost AND e.engagement >= {MIN_ENGAGEMENT} AND h.n >= 50
        AND (LN(1 + e.engagement) - h.mean) / GREATEST(h.sd, 0.5) >= {MIN_SCORE}
),
matches AS (
    SELECT 'volume' AS kind, hashtag, source, '' AS subject, post_id, created_at, url, engagement
    FROM enriched
    UNION ALL
    SELECT 'negative_share', hashtag, source, '', post_id, created_at, url, engagement
    FROM enriched WHERE sentiment = 'negative'
    UNION ALL
    SELECT 'engagement', hashtag, source, post_id, post_id, created_at, url, engagement
    FROM enriched
    UNION ALL
    SELECT DISTINCT 'entity', e.hashtag, '{ALL_SOURCES}', mention.text, e.post_id, e.created_at,
        e.url, e.engagement
    FROM enriched AS e CROSS JOIN UNNEST(e.entities) AS m(mention)
    UNION ALL
    SELECT 'topic', e.hashtag, '{ALL_SOURCES}', label, e.post_id, e.created_at, e.url, e.engagement
    FROM enriched AS e CROSS JOIN UNNEST(e.topics) AS t(label)
),
examples AS (
    SELECT f.kind, f.grain, f.hashtag, f.source, f.subject, f.bucket, x.post_id, x.url,
        ROW_NUMBER() OVER (
            PARTITION BY f.kind, f.grain, f.hashtag, f.source, f.subject, f.bucket
            ORDER BY x.engagement DESC, x.post_id
        ) AS example_rank
    FROM found AS f JOIN matches AS x
        ON x.kind = f.kind AND x.hashtag = f.hashtag AND x.source = f.source
        AND x.subject = f.subject
        AND x.created_at >= f.bucket AND x.created_at < f.window_end
)
SELECT
    f.kind || ':' || f.grain || ':' || f.hashtag || ':' || f.source || ':' || f.subject || ':'
        || CAST(f.bucket AS VARCHAR) AS signal_id,
    f.kind, f.grain, f.hashtag, f.source, f.subject,
    f.bucket AS window_start, f.window_end, f.value, f.baseline, f.score,
    x.example_post_ids, x.example_urls
FROM found AS f
JOIN (
    SELECT kind, grain, hashtag, source, subject, bucket,
        ARRAY_AGG(post_id ORDER BY example_rank ASC NULLS FIRST) AS example_post_ids,
        ARRAY_AGG(COALESCE(url, '') ORDER BY example_rank ASC NULLS FIRST) AS example_urls
    FROM examples WHERE example_rank <= 3
    GROUP BY kind, grain, hashtag, source, subject, bucket
) AS x
    ON x.kind = f.kind AND x.grain = f.grain AND x.hashtag = f.hashtag AND x.source = f.source
    AND x.subject = f.subject AND x.bucket = f.bucket"""
