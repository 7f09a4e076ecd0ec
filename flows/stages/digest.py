"""The digest: a period of a hashtag in one page, from the warehouse views.

Volume and sentiment against the period before (per source too), the signals of the period, its
emerging conversations, top posts, posts rising now and new voices (authors whose first post
fell in the period). The period is the `days` whole UTC days up to the newest post, so that a
digest of an old sample reads the same on any date. `build_digest` returns the values;
`to_markdown` and `to_html` lay them out. The scheduled analysis publishes one a week
(`due_digest`, `mark_published`: the week is kept in the lake, ``_state/digest.json``), and it
can be sent through ``[alerts]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flows.lake.lake import Lake
from flows.stages.alerts import Sender, describe
from flows.stages.conversations import period_end
from flows.warehouse.base import Warehouse

DIGEST_STATE = "digest.json"
WEEK = timedelta(days=7)
TOP = 5


@dataclass
class Period:
    """Posts of one period and their sentiment (shares of the analysed posts)."""

    posts: int = 0
    analysed: int = 0
    negative: int = 0
    positive: int = 0

    @property
    def negative_share(self) -> float | None:
        return self.negative / self.analysed if self.analysed else None

    @property
    def net_sentiment(self) -> float | None:
        return (self.positive - self.negative) / self.analysed if self.analysed else None


@dataclass
class Digest:
    """A period of a hashtag: `start` (included) to `end` (excluded), against the period before."""

    hashtag: str
    start: datetime
    end: datetime
    now: Period = field(default_factory=Period)
    before: Period = field(default_factory=Period)
    by_source: dict[str, tuple[int, int]] = field(default_factory=dict)  # posts now, before
    signals: list[dict] = field(default_factory=list)
    conversations: list[dict] = field(default_factory=list)
    top_posts: list[dict] = field(default_factory=list)
    rising_posts: list[dict] = field(default_factory=list)
    new_voices: list[dict] = field(default_factory=list)


def build_digest(
    warehouse: Warehouse, hashtag: str, days: int = 7, end: datetime | None = None
) -> Digest:
    """The digest of the `days` days before `end` (by default, midnight after the newest post)."""
    end = end or period_end(warehouse, hashtag)
    start = end - timedelta(days=days)
    digest = Digest(hashtag, start, end)
    period = [hashtag, start, end]
    rows = warehouse.query(
        """SELECT recent, source, COUNT(*) AS posts,
            CAST(SUM(CASE WHEN sentiment IS NULL THEN 0 ELSE 1 END) AS BIGINT) AS analysed,
            CAST(SUM(CASE WHEN sentiment = 'negative' THEN 1 ELSE 0 END) AS BIGINT) AS negative,
            CAST(SUM(CASE WHEN sentiment = 'positive' THEN 1 ELSE 0 END) AS BIGINT) AS positive
        FROM (
            SELECT created_at >= ? AS recent, source, sentiment FROM posts_enriched
            WHERE hashtag = ? AND created_at >= ? AND created_at < ?
        ) AS periods
        GROUP BY recent, source""",
        [start, hashtag, start - timedelta(days=days), end],
    ).to_pylist()
    for row in rows:
        side = digest.now if row["recent"] else digest.before
        side.posts += row["posts"]
        side.analysed += row["analysed"]
        side.negative += row["negative"]
        side.positive += row["positive"]
        now, before = digest.by_source.get(row["source"], (0, 0))
        counts = (now + row["posts"], before) if row["recent"] else (now, before + row["posts"])
        digest.by_source[row["source"]] = counts
    digest.signals = warehouse.query(
        "SELECT * FROM signals WHERE hashtag = ? AND window_start >= ? AND window_start < ?"
        " ORDER BY score DESC, signal_id LIMIT 10",
        period,
    ).to_pylist()
    digest.conversations = warehouse.query(
        "SELECT * FROM emerging_conversations WHERE hashtag = ? AND window_end = ?"
        " ORDER BY growth DESC, size DESC, conversation_id",
        [hashtag, end],
    ).to_pylist()
    digest.top_posts = warehouse.query(
        "SELECT post_id, created_at, source, author_handle, text, url, engagement, sentiment"
        " FROM top_posts WHERE hashtag = ? AND created_at >= ? AND created_at < ?"
        f" AND NOT is_repost ORDER BY engagement DESC, post_id LIMIT {TOP}",
        period,
    ).to_pylist()
    digest.rising_posts = warehouse.query(
        "SELECT post_id, source, author_handle, text, url, engagement, gain_per_hour"
        f" FROM rising_posts WHERE hashtag = ? ORDER BY gain_per_hour DESC, post_id LIMIT {TOP}",
        [hashtag],
    ).to_pylist()
    digest.new_voices = warehouse.query(
        "SELECT author_handle, COUNT(*) AS posts, CAST(SUM(engagement) AS BIGINT) AS engagement,"
        " MIN(created_at) AS first_post"
        " FROM posts_enriched WHERE hashtag = ? AND created_at < ? GROUP BY author_handle"
        " HAVING MIN(created_at) >= ?"
        f" ORDER BY engagement DESC, posts DESC, author_handle LIMIT {TOP}",
        [hashtag, end, start],
    ).to_pylist()
    return digest


def _cells(now: float | None, before: float | None, percent: bool = False) -> str:
    """``this period | the period before | change`` of one figure."""
    def shown(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:.0%}" if percent else f"{value:,.0f}"

    if now is None or before is None or (not percent and before == 0):
        change = "-"
    else:
        change = f"{(now - before) * 100:+.0f} points" if percent else f"{now / before - 1:+.0%}"
    return f"{shown(now)} | {shown(before)} | {change}"


def _when(signal: dict) -> str:
    start = signal["window_start"]
    return f"{start:%a %d %b}" + ("" if signal["grain"] == "day" else f" {start:%H:%M} UTC")


def _short(text: str | None, width: int = 120) -> str:
    text = " ".join((text or "").split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def to_markdown(digest: Digest) -> str:
    """The digest as one Markdown page."""
    now, before = digest.now, digest.before
    days = (digest.end - digest.start).days
    lines = [
        f"# #{digest.hashtag}: {digest.start:%Y-%m-%d} to "
        f"{digest.end - timedelta(days=1):%Y-%m-%d}",
        "",
        f"Against the {days} days before.",
        "",
        "| | this period | the period before | change |",
        "|---|---|---|---|",
        f"| posts | {_cells(now.posts, before.posts)} |",
        f"| negative share | {_cells(now.negative_share, before.negative_share, True)} |",
        f"| net sentiment | {_cells(now.net_sentiment, before.net_sentiment, True)} |",
        *(
            f"| posts on {source} | {_cells(n, b)} |"
            for source, (n, b) in sorted(digest.by_source.items())
        ),
        "",
        "## Signals",
        "",
    ]
    lines += [
        f"- {_when(s)}: {describe(s)} (score {s['score']:.1f})."
        + "".join(
            f" [{i + 1}]({url})" for i, url in enumerate(s["example_urls"]) if url
        )
        for s in digest.signals
    ] or ["None: nothing ran far from its usual."]
    lines += ["", "## Emerging conversations", ""]
    lines += [
        f"- **{c['label']}**: {c['size']:,} posts ({c['growth']:+,} on the window before)"
        for c in digest.conversations
    ] or ["None found."]
    for title, posts, number in (
        ("Top posts", digest.top_posts, "engagement"),
        ("Rising now", digest.rising_posts, "gain_per_hour"),
    ):
        lines += ["", f"## {title}", ""]
        lines += [
            f"- {p[number]:,.0f} · @{p['author_handle']} on {p['source']}: "
            f"[{_short(p['text'])}]({p['url']})"
            for p in posts
        ] or ["None."]
    lines += ["", "## New voices", ""]
    lines += [
        f"- @{v['author_handle']}: {v['posts']:,} posts, {v['engagement']:,} engagement"
        for v in digest.new_voices
    ] or ["None."]
    return "\n".join(lines) + "\n"


def to_html(digest: Digest) -> str:
    """The digest as one HTML page (the Markdown, rendered by markdown-it, which Prefect brings)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(to_markdown(digest))
    return (
        f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>#{digest.hashtag} digest"
        f"</title></head>\n<body>\n{body}</body></html>\n"
    )


def send_digest(digest: Digest, send: Sender) -> None:
    """Send the digest through `send` (`flows.stages.alerts`)."""
    send(f"#{digest.hashtag}: the week in one page", to_markdown(digest))


def due_digest(lake: Lake, now: datetime | None = None) -> bool:
    """Whether a week has passed since the digest was last published (or it never was)."""
    last = lake._read_json(DIGEST_STATE).get("published_at")
    now = now or datetime.now(UTC)
    return last is None or now - datetime.fromisoformat(last) >= WEEK


def mark_published(lake: Lake, now: datetime | None = None) -> None:
    """Record that the digest was published now."""
    stamp = (now or datetime.now(UTC)).isoformat()
    lake._update_json(DIGEST_STATE, lambda state: state.update(published_at=stamp))

