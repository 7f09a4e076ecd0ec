"""The `x` source: X API v2 recent search (the last 7 days) for the hashtag.

``GET <base_url>/tweets/search/recent`` with an app's bearer token answers newest first, up to
100 posts a page, with ``meta.next_token`` for the older page and ``meta.newest_id``; ``since_id``
bounds a walk at the newest post of the previous run. Authors come through
``expansions=author_id``. Pages are mapped by the X mapping the file source uses too
(`flows.sources.x_payload.x_page_posts`), so live and imported X posts are the same rows.

Every post and every author returned is billed (pay per use, `PRICE_PER_POST` and
`PRICE_PER_USER`): ``[x] retweets = false`` (the default) leaves retweets out of the query,
``[twitter_config] limit`` caps a run's posts, and ``[x] max_cost_per_run`` and
``max_cost_per_month`` its bill: no request starts whose worst case (a full page, every post by
another author) would pass what is left; the page shrinks to fit, and when not even the smallest
page fits, the run stops (`BudgetSpent`) and the next one resumes from its cursor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flows.cursors import Walk
from flows.sources.base import Record, SourceStopped, Spent
from flows.sources.http import BearerToken, HttpClient
from flows.sources.paging import Page, PagedSource
from flows.sources.secrets import Secret, secret_from_env
from flows.sources.x_payload import x_page_posts

log = logging.getLogger(__name__)

HOW_TO_GET = (
    "Create a project and an app in the X Developer Console (https://developer.x.com), buy "
    "pay-per-use credits there, and copy the app's Bearer Token (Keys and tokens)."
)
HOW_TO_FIX = {
    401: "The bearer token was refused: copy it again from the X Developer Console (your app, "
    "Keys and tokens) into the environment variable named by [x] bearer_token_env.",
    403: "This app may not use recent search: check in the X Developer Console that the app "
    "belongs to a project and that the account has credits left.",
    404: "No recent search here: [x] base_url should be https://api.x.com/2.",
}
TWEET_FIELDS = (
    "author_id,created_at,conversation_id,entities,lang,note_tweet,public_metrics,"
    "referenced_tweets,source"
)
# since_id must be a post from the searchable window (7 days); older floors are dropped
RECENT_WINDOW = timedelta(days=7) - timedelta(minutes=5)
_TWITTER_EPOCH_MS = 1288834974657
# X's published pay-per-use prices (USD), per post and per user object a request returns.
PRICE_PER_POST = 0.005
PRICE_PER_USER = 0.010
_CENT_FRACTION = 1e-9  # float sums of prices: what is left is never short by a rounding error


class BudgetSpent(SourceStopped):
    """The next request could cost more than ``[x] max_cost_per_run`` or
    ``max_cost_per_month`` leaves."""


@dataclass(frozen=True)
class XSettings:
    """`[x]`: X API v2 recent search.

    Attributes:
        base_url: the API root (a local fake in tests).
        bearer_token_env: the environment variable holding the app's bearer token.
        retweets: include retweets (each one is billed like a post).
        extra_query: operators added to the query, e.g. ``lang:en -is:reply``.
        max_results: posts per page, 10 to 100.
        max_wait: the longest rate-limit wait, in seconds, before the source stops and
            leaves the rest to the next run.
        max_cost_per_run: USD one run may spend (a retried run counts its tries together).
        max_cost_per_month: USD the runs of one calendar month (UTC) may spend together, as
            the lake's run records count them.
        refresh: read the counters of collected posts again (`python -m flows refresh`): each
            post read is billed, so it is off unless asked for; the same budgets apply.
    """

    base_url: str = "https://api.x.com/2"
    bearer_token_env: str = "X_BEARER_TOKEN"
    retweets: bool = False
    extra_query: str = ""
    max_results: int = 100
    max_wait: float = 960.0  # a 15-minute window and a margin
    max_cost_per_run: float = 5.0
    max_cost_per_month: float = 100.0
    refresh: bool = False

    def __post_init__(self) -> None:
        for key in ("max_cost_per_run", "max_cost_per_month"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be 0 or more USD, got {getattr(self, key)}")
        if not 10 <= self.max_results <= 100:
            raise ValueError(f"max_results: must be between 10 and 100, got {self.max_results}")
        if not self.base_url.startswith(("https://", "http://")):
            raise ValueError(f"base_url: expected https://..., got {self.base_url!r}")

    def token(self) -> Secret:
        """The bearer token; a ConfigError naming the variable and how to get one if unset."""
        return secret_from_env("x", "bearer_token_env", self.bearer_token_env, HOW_TO_GET)

    def check(self) -> None:
        """Fail before any work when the secret is missing."""
        self.token()

    def expansions(self) -> str:
        """Authors, and with retweets the posts they retweet: a retweet's own text is cut to
        "RT @user: …", the full original comes in ``includes.tweets`` (billed as posts read)."""
        return "author_id,referenced_tweets.id" if self.retweets else "author_id"

    def query(self, hashtag: str) -> str:
        parts = [f"#{hashtag}", "" if self.retweets else "-is:retweet", self.extra_query]
        return " ".join(part for part in parts if part)


class XSource(PagedSource):
    """Recent posts with the hashtag, newest first, down to the last run's newest."""

    name = "x"
    min_page_size = 10  # the API refuses max_results below 10

    def __init__(
        self, settings: XSettings, spent: Spent = Spent(), **client_options: Any
    ) -> None:
        self.settings = settings
        self.spent = spent
        self._returned = [0, 0]  # posts and users returned (billed) in this run
        self.client = HttpClient(
            self.name,
            auth=BearerToken(settings.token()),
            fixes=HOW_TO_FIX,
            max_wait=settings.max_wait,
            **client_options,
        )

    @property
    def page_size(self) -> int:
        return self.settings.max_results

    def _affordable(self, size: int) -> int:
        # each post by another author; with retweets, each one bringing its original along
        worst = PRICE_PER_POST * (2 if self.settings.retweets else 1) + PRICE_PER_USER
        return affordable(
            self.settings, self.spent, self.usage.cost_usd, size, worst, self.min_page_size
        )

    def _bill(self, body: dict[str, Any]) -> None:
        data = body.get("data") or []
        includes = body.get("includes") or {}
        self._returned[0] += 1 if isinstance(data, dict) else len(data)
        self._returned[0] += len(includes.get("tweets") or ())  # retweeted originals
        self._returned[1] += len(includes.get("users") or ())
        posts, users = self._returned
        self.usage.cost_usd = round(posts * PRICE_PER_POST + users * PRICE_PER_USER, 6)

    def page(self, hashtag: str, walk: Walk, size: int) -> Page:
        size = self._affordable(size)
        since_id = _searchable(walk.floor)
        if walk.floor and since_id is None and walk.token is None:
            log.warning(
                "x: the last run's newest post (%s) is older than the 7 days recent search "
                "covers; posts between it and the last 7 days cannot be collected",
                walk.floor,
            )
        body, _ = self.client.get_json(
            f"{self.settings.base_url.rstrip('/')}/tweets/search/recent",
            {
                "query": self.settings.query(hashtag),
                "max_results": size,
                "next_token": walk.token,
                "since_id": since_id,
                "expansions": self.settings.expansions(),
                "user.fields": "name,username",
                "tweet.fields": TWEET_FIELDS,
            },
        )
        body = body if isinstance(body, dict) else {}
        self._bill(body)
        meta = body.get("meta") or {}
        return Page(body, meta.get("next_token"), meta.get("newest_id"))

    def to_posts(
        self, hashtag: str, key: str, payload: Any, collected_at: datetime
    ) -> list[Record | str]:
        return x_page_posts(payload, hashtag, collected_at)


def affordable(
    settings: XSettings, spent: Spent, cost: float, size: int, worst: float, smallest: int
) -> int:
    """The most posts, at most `size`, that one request may ask for when each may cost `worst`
    USD, so that neither budget of `settings` is passed; `cost`: what this run spent so far.

    Raises:
        BudgetSpent: not even a request of `smallest` posts fits.
    """
    budgets = (
        ("max_cost_per_run", settings.max_cost_per_run, spent.this_run_usd + cost, "in this run"),
        (
            "max_cost_per_month",
            settings.max_cost_per_month,
            spent.this_month_usd + cost,
            f"this month ({datetime.now(UTC):%B %Y}, UTC, by the runs the lake recorded)",
        ),
    )
    key, limit, used, when = min(budgets, key=lambda budget: budget[1] - budget[2])
    fits = int((limit - used + _CENT_FRACTION) / worst)
    if fits < smallest:
        raise BudgetSpent(
            f"x: stopped before the next request: [x] {key} = {limit:.2f} USD, "
            f"{used:.3f} USD spent {when}, and a request of {smallest} posts may cost "
            f"{smallest * worst:.2f} USD (each post and each author it returns is billed). The "
            f"next run resumes here; raise [x] {key} to collect more"
        )
    return min(size, fits)


def _searchable(since_id: str | None) -> str | None:
    """`since_id`, unless its post is older than the search window (the API would answer 400).

    A post id is a snowflake: its top bits are milliseconds since the Twitter epoch.
    """
    if not since_id or not since_id.isdigit():
        return None
    posted = datetime.fromtimestamp(((int(since_id) >> 22) + _TWITTER_EPOCH_MS) / 1000, UTC)
    return since_id if datetime.now(UTC) - posted < RECENT_WINDOW else None
