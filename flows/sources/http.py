"""What every HTTP source shares: one polite client, one paginator, one newest-first walk.

- `HttpClient` owns its session and the rate-limit state of each host. Transient failures
  (network errors, timeouts, 429, 5xx, a body that is not JSON) are retried a bounded number of
  times with exponential backoff and jitter (tenacity), logging a line before each sleep. When the
  headers say the window is spent (``x-rate-limit-*`` on X, ``X-RateLimit-*`` on Mastodon and
  Reddit, ``RateLimit-*`` on Bluesky), the next request first sleeps until the announced reset,
  so the API need not answer 429. 401, 403 and 404 raise typed `HttpError`s at once, whose
  messages name the fix; no message or log line holds a secret.
- `paginate` follows page tokens until the last page.
- `PagedSource` turns the pages of a newest-first API into `Batch`es whose cursors make a run
  resumable: while a walk down the pages is unfinished, ``Cursor.resume`` holds the next page
  token with the walk's bounds; once it reaches the previous run's newest post, the walk's own
  newest post becomes the floor of the next run. A walk that is abandoned is simply walked again
  next run, from the newest post down to the same floor: nothing is lost, and the lake drops
  what it already holds.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

import httpx
import tenacity

from flows.settings import ConfigError
from flows.schema import posts_table
from flows.sources.base import Batch, Cursor, SourceError

log = logging.getLogger(__name__)

USER_AGENT = "hashtag-pulse/1.0 (+https://github.com/; collects public posts for one hashtag)"
# Query parameters whose values never appear in a message or a log line.
SECRET_PARAMS = frozenset({"access_token", "token", "password", "api_key", "key", "client_secret"})
# (remaining, reset) header pairs, X first; httpx looks headers up case-insensitively.
RATE_LIMIT_HEADERS = (
    ("x-rate-limit-remaining", "x-rate-limit-reset"),  # X: reset in epoch seconds
    ("x-ratelimit-remaining", "x-ratelimit-reset"),  # Mastodon: ISO time; Reddit: seconds left
    ("ratelimit-remaining", "ratelimit-reset"),  # Bluesky: epoch seconds
)
# Waits past the announced reset: clocks differ a little between us and the API.
RESET_MARGIN_S = 1.0

Record = dict[str, Any]


# --- errors ----------------------------------------------------------------------------------


class HttpError(SourceError):
    """An API refused a request for good; the message names the request (no secret) and the fix."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Unauthorized(HttpError):
    """401: the credentials are wrong or expired."""


class Forbidden(HttpError):
    """403: the credentials do not give access to this endpoint."""


class NotFound(HttpError):
    """404: the endpoint or resource does not exist (a wrong base URL, a wrong name)."""


class RateLimited(HttpError):
    """The rate-limit window resets later than the source is willing to wait."""


class GaveUp(HttpError):
    """A transient failure outlasted every retry."""


class MalformedBody(HttpError):
    """The API answered 200 with a body that is not JSON, every time it was asked."""


_STATUS_ERRORS: dict[int, type[HttpError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound}


class TransientError(Exception):
    """A failure worth retrying; `wait` is the pause the API asked for, if it said."""

    def __init__(self, message: str, wait: float | None = None, malformed: bool = False) -> None:
        super().__init__(message)
        self.wait = wait
        self.malformed = malformed


# --- secrets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Secret:
    """A token or password: its value is read with `reveal()` and never shown by repr or str."""

    value: str = field(repr=False)

    def reveal(self) -> str:
        return self.value

    def __str__(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return "Secret('***')"


def secret_from_env(section: str, key: str, env_var: str, how_to_get: str) -> Secret:
    """The secret in environment variable `env_var` (named by `key` of `[section]`).

    Raises:
        ConfigError: the variable is unset or empty; the message names it, the setting that
            names it and how to get the secret, so that the run stops before any work.
    """
    value = os.environ.get(env_var, "").strip() if env_var else ""
    if not value:
        raise ConfigError(
            f"[{section}] {key} = {env_var}: the environment variable {env_var or '(none)'} is "
            f"not set. {how_to_get} Then `export {env_var or 'NAME'}=...` before the run (never "
            "write secrets in configuration.conf)."
        )
    return Secret(value)


class BearerToken(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request, with the token kept out of reprs."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        yield request

    def __repr__(self) -> str:
        return "BearerToken('***')"


def describe(method: str, url: httpx.URL | str) -> str:
    """``GET https://host/path?query`` with the values of secret parameters masked."""
    url = httpx.URL(str(url))
    params = [(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in url.params.multi_items()]
    return f"{method} {url.copy_with(params=params) if params else url}"


# --- the client ------------------------------------------------------------------------------


class HttpClient:
    """An httpx session with bounded retries, rate-limit waits and typed errors.

    Args:
        source: the source's name, for messages.
        auth: an httpx auth (a bearer token, a session that refreshes itself).
        fixes: what to do about a 401, 403 or 404 from this API, by status; added to the error.
        attempts: tries per request, the first included.
        backoff: the first pause between tries, in seconds; it doubles each time, plus up to
            ``backoff`` seconds of jitter, up to `max_backoff`.
        max_wait: the longest rate-limit wait accepted; a later reset raises `RateLimited`.
        sleep, clock: injectable for tests (`time.sleep`, `time.time`).

    Example:
        >>> with HttpClient("mastodon") as client:  # doctest: +SKIP
        ...     statuses, response = client.get_json("https://mastodon.social/api/v1/timelines/tag/python")
    """

    def __init__(
        self,
        source: str,
        *,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        fixes: Mapping[int, str] | None = None,
        timeout: float = 30.0,
        attempts: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_wait: float = 900.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.fixes = dict(fixes or {})
        self.attempts = attempts
        self.max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._backoff = tenacity.wait_exponential_jitter(
            initial=backoff, max=max_backoff, jitter=backoff
        )
        self._ready_at: dict[str, float] = {}  # host → when its spent rate-limit window resets
        self._session = httpx.Client(
            auth=auth,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
            timeout=timeout,
            follow_redirects=True,
        )

    def __repr__(self) -> str:
        return f"HttpClient({self.source!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def get_json(
        self, url: str, params: Mapping[str, Any] | None = None
    ) -> tuple[Any, httpx.Response]:
        """GET `url` (parameters that are None left out), retrying transient failures; return
        the parsed JSON body and the response (for its headers).

        Raises:
            HttpError: a 4xx answer (`Unauthorized`, `Forbidden`, `NotFound` for 401/403/404),
                a rate-limit reset further than `max_wait` (`RateLimited`), a transient failure
                that outlasted the retries (`GaveUp`), or a body that was never JSON
                (`MalformedBody`).
        """
        request = self._session.build_request(
            "GET", url, params={k: v for k, v in (params or {}).items() if v is not None}
        )
        what = describe("GET", request.url)
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(TransientError),
            sleep=self._sleep,
            before_sleep=lambda state: log.warning(
                "%s: %s; try %d of %d in %.1f s",
                self.source,
                state.outcome.exception(),
                state.attempt_number + 1,
                self.attempts,
                state.next_action.sleep,
            ),
            reraise=True,
        )
        try:
            return retrying(self._attempt, request, what)
        except TransientError as exc:
            error = MalformedBody if exc.malformed else GaveUp
            raise error(f"{self.source}: {exc} (gave up after {self.attempts} tries)") from None

    def _attempt(self, request: httpx.Request, what: str) -> tuple[Any, httpx.Response]:
        self._wait_for_window(request.url.host, what)
        try:
            response = self._session.send(request)
        except httpx.TransportError as exc:  # connection refused or reset, timeouts, bad protocol
            raise TransientError(f"{what}: {type(exc).__name__}: {exc or 'no detail'}") from None
        status = response.status_code
        if status != 429:  # a 429's own reset is the retry's pause
            self._note_window(response)
        if status == 429 or status >= 500:
            wait = (
                self._announced_wait(response)
                if status == 429
                else _retry_after(response, self._clock())
            )
            if wait is not None and wait > self.max_wait:
                raise RateLimited(self._refusal(what, response, self._rate_limit_fix(wait)), status)
            raise TransientError(f"{what} answered {status}", wait)
        if status >= 400:
            error = _STATUS_ERRORS.get(status, HttpError)
            raise error(self._refusal(what, response, self.fixes.get(status, "")), status)
        try:
            return response.json(), response
        except ValueError as exc:  # UnicodeDecodeError too
            start = response.text[:80].replace("\n", " ")
            raise TransientError(
                f"{what} answered {status} with a body that is not JSON ({exc}; it starts {start!r})",
                malformed=True,
            ) from None

    def _refusal(self, what: str, response: httpx.Response, fix: str) -> str:
        detail = _api_message(response)
        return (
            f"{self.source}: {what} answered {response.status_code} {response.reason_phrase}"
            + (f": {detail}" if detail else "")
            + (f". {fix}" if fix else "")
        )

    def _rate_limit_fix(self, wait: float) -> str:
        at = datetime.fromtimestamp(self._clock() + wait, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (
            f"The API's rate limit resets at {at}, in {wait / 60:.0f} min, longer than this "
            f"source waits ({self.max_wait:.0f} s): run again after that; the run resumes where "
            "it stopped"
        )

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.wait is not None:
            return exc.wait
        return self._backoff(state)

    # --- rate limits before the API has to say 429 --------------------------------------------
    def _note_window(self, response: httpx.Response) -> None:
        for remaining_name, reset_name in RATE_LIMIT_HEADERS:
            remaining = _number(response.headers.get(remaining_name))
            if remaining is None:
                continue
            reset = _reset_time(response.headers.get(reset_name), self._clock())
            if remaining < 1 and reset is not None:
                self._ready_at[response.request.url.host] = reset
            return

    def _announced_wait(self, response: httpx.Response) -> float | None:
        now = self._clock()
        wait = _retry_after(response, now)
        if wait is None:
            for _, reset_name in RATE_LIMIT_HEADERS:
                reset = _reset_time(response.headers.get(reset_name), now)
                if reset is not None:
                    wait = reset - now
                    break
        return None if wait is None else max(wait, 0.0) + RESET_MARGIN_S

    def _wait_for_window(self, host: str, what: str) -> None:
        ready_at = self._ready_at.pop(host, None)
        if ready_at is None:
            return
        wait = ready_at - self._clock() + RESET_MARGIN_S
        if wait <= 0:
            return
        if wait > self.max_wait:
            raise RateLimited(f"{self.source}: {what}: {self._rate_limit_fix(wait)}")
        log.warning(
            "%s: rate limit spent on %s; waiting %.0f s for the announced reset",
            self.source,
            host,
            wait,
        )
        self._sleep(wait)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _reset_time(value: str | None, now: float) -> float | None:
    """A reset header as epoch seconds: an ISO time, epoch seconds, or seconds from now."""
    if not value:
        return None
    number = _number(value)
    if number is None:
        try:
            return datetime.fromisoformat(value.strip()).timestamp()
        except ValueError:
            return None
    return number if number > 1e9 else now + number  # small numbers count seconds from now


def _retry_after(response: httpx.Response, now: float) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    number = _number(value)
    if number is not None:
        return number
    try:
        return email.utils.parsedate_to_datetime(value).timestamp() - now
    except (TypeError, ValueError):
        return None


def _api_message(response: httpx.Response) -> str:
    """The API's own explanation, short: X (``title``/``detail``), Mastodon (``error``),
    Bluesky (``error``/``message``), Reddit (``message``/``reason``)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if not isinstance(body, dict):
        return ""
    parts = [body.get(key) for key in ("title", "error", "detail", "message", "reason")]
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        parts.append(errors[0].get("message"))
    text = "; ".join(dict.fromkeys(str(part) for part in parts if isinstance(part, str) and part))
    return text[:300]


# --- pages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page of an API's answer.

    Attributes:
        payload: what the source maps to posts (a list of items, or the whole body).
        next: the token of the following page; None on the last page.
        newest: the page's newest marker (an id, a time), newest-first APIs only.
        token: the token that fetched this page (None for the first).
        warning: set on a page that could not be read; such a page ends the paging.
    """

    payload: Any
    next: str | None = None
    newest: str | None = None
    token: str | None = None
    warning: str | None = None


def paginate(fetch: Callable[[str | None], Page], token: str | None = None) -> Iterator[Page]:
    """Pages from `token` on, ``fetch(token)`` each, until a page has no next token.

    A page whose body stays malformed after the client's retries is yielded as an empty page
    with a `warning` naming the request, and ends the paging (the next token is in that body).
    """
    while True:
        try:
            page = fetch(token)
        except MalformedBody as exc:
            yield Page([], token=token, warning=f"{exc}; page skipped, tried again next run")
            return
        page = Page(page.payload, page.next, page.newest, token)
        yield page
        if not page.next or page.next == token:  # a repeated token would loop for ever
            return
        token = page.next


@dataclass(frozen=True)
class Walk:
    """A newest-first walk down one stream (one Mastodon instance; the only stream elsewhere).

    Attributes:
        key: which stream ("" when a source has one).
        floor: where the last finished walk started (an id or time): this walk stops there.
        top: this walk's newest marker, seen on its first page; the next walk's floor.
        token: the next page to fetch.
        skip: posts at the start of that page that have landed already (a run stopped by its
            limit in the middle of a page). The first page (token None) may have gained newer
            posts since: skipping then passes over some of those, which are newer than `top`,
            so the next walk collects them, and returns a few that landed already.
    """

    key: str = ""
    floor: str | None = None
    top: str | None = None
    token: str | None = None
    skip: int = 0

    def to_resume(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_resume(cls, resume: str | None) -> Walk | None:
        try:
            data = json.loads(resume or "")
            return cls(
                data["key"], data["floor"], data["top"], data["token"], int(data.get("skip", 0))
            )
        except (ValueError, TypeError, KeyError):
            return None  # none, or another kind of token: walk afresh


class PagedSource(ABC):
    """A source over newest-first pages; subclasses say how to fetch and map one page.

    Subclasses set `name` and implement `page` and `to_posts`; those with several streams or a
    time floor override `streams`, `floor` and `commit`.
    """

    name: ClassVar[str]
    client: HttpClient | None = None  # the HTTP sources' one client; snscrape has its own
    settings: Any  # the source's settings dataclass
    min_page_size: ClassVar[int] = 1  # the fewest posts a request may ask for

    def streams(self) -> list[str]:
        return [""]

    def floor(self, cursor: Cursor, key: str) -> str | None:
        """Where the last finished walk of stream `key` started."""
        return cursor.newest_id

    def commit(self, cursor: Cursor, key: str, top: str | None, newest: datetime | None) -> Cursor:
        """The cursor once the walk of `key` has finished with newest marker `top`."""
        return cursor.advanced(
            newest_id=top or cursor.newest_id,
            newest_time=max(filter(None, (cursor.newest_time, newest)), default=None),
        )

    @property
    def page_size(self) -> int:
        """The most posts a request asks for: the settings' ``page_size``."""
        return self.settings.page_size

    @abstractmethod
    def page(self, hashtag: str, walk: Walk, size: int) -> Page:
        """Fetch the page `walk.token` of stream `walk.key`, newer than `walk.floor`, of at
        most `size` posts."""

    @abstractmethod
    def to_posts(
        self, hashtag: str, key: str, payload: Any, collected_at: datetime
    ) -> list[Record | str]:
        """A page's posts (POST_SCHEMA dicts) and, as strings, why items were skipped."""

    def close(self) -> None:
        """Release the HTTP session."""
        if self.client is not None:
            self.client.close()

    def fetch(self, hashtag: str, cursor: Cursor, limit: int | None) -> Iterator[Batch]:
        """One batch per page: first the unfinished walk of the last run, then each stream."""
        try:
            yield from self._fetch(hashtag.lower().lstrip("#"), cursor, limit)
        finally:
            self.close()

    def _fetch(self, hashtag: str, cursor: Cursor, limit: int | None) -> Iterator[Batch]:
        keys = self.streams()
        unfinished = Walk.from_resume(cursor.resume)
        walks = [unfinished] if unfinished and unfinished.key in keys else []
        walks += [
            Walk(key, self.floor(cursor, key)) for key in keys if key not in {w.key for w in walks}
        ]
        left = limit
        refused: list[str] = []
        for walk in walks:
            if left is not None and left <= 0:
                return
            try:
                for batch, taken in self._walk(hashtag, walk, cursor, left):
                    cursor = batch.cursor
                    left = None if left is None else left - taken
                    yield batch
            except HttpError as exc:
                if len(keys) == 1:
                    raise
                # one instance refusing (auth required, gone) does not stop the others
                refused.append(str(exc))
                yield Batch(posts_table([]), cursor, (f"{exc}; {walk.key} skipped",))
        if refused and len(refused) == len(walks):
            raise SourceError(f"{self.name}: every stream refused: " + " | ".join(refused))

    def _walk(
        self, hashtag: str, walk: Walk, cursor: Cursor, limit: int | None
    ) -> Iterator[tuple[Batch, int]]:
        collected_at = datetime.now(UTC)
        newest: datetime | None = None
        shown = f"{self.name} {walk.key}".strip()
        start = walk

        def fetch(token: str | None) -> Page:
            # no more posts than the limit leaves (a paid API bills every post it returns)
            size = self.page_size if limit is None else min(self.page_size, limit)
            return self.page(hashtag, replace(start, token=token), max(size, self.min_page_size))

        pages = paginate(fetch, walk.token)
        for number, page in enumerate(pages, 1):
            if page.warning:
                # the walk stops here; the next run resumes at this page (or walks again)
                stopped = replace(walk, token=page.token).to_resume()
                yield Batch(posts_table([]), cursor.advanced(resume=stopped), (page.warning,)), 0
                return
            skip = walk.skip if page.token == walk.token else 0
            walk = replace(walk, top=walk.top or page.newest, token=page.next, skip=0)
            items = self.to_posts(hashtag, walk.key, page.payload, collected_at)
            posts = [item for item in items if isinstance(item, dict)][skip:]
            warnings = tuple(f"{shown}: {item}; skipped" for item in items if isinstance(item, str))
            full = limit is not None and len(posts) >= limit
            cut = limit is not None and len(posts) > limit
            if cut:
                posts = posts[:limit]
                # the rest of this page comes next run (the first page's token is None too)
                walk = replace(walk, token=page.token, skip=skip + limit)
            if posts:
                newest = max(filter(None, (newest, *(post["created_at"] for post in posts))))
            if walk.token is None and not cut:
                cursor = self.commit(cursor, walk.key, walk.top or walk.floor, newest)
                cursor = cursor.advanced(resume=None)
            else:
                cursor = cursor.advanced(resume=walk.to_resume())
            log.info("%s: page %d, %d posts", shown, number, len(posts))
            yield Batch(posts_table(posts), cursor, warnings), len(posts)
            if full:
                return
            limit = None if limit is None else limit - len(posts)


class MultiStreamSource(PagedSource):
    """A `PagedSource` over several streams whose ids are only comparable within a stream
    (Mastodon instances, Reddit listings): ``Cursor.newest_id`` holds a JSON object
    ``{stream: newest id}``."""

    def floor(self, cursor: Cursor, key: str) -> str | None:
        return _floors(cursor).get(key)

    def commit(self, cursor: Cursor, key: str, top: str | None, newest: datetime | None) -> Cursor:
        floors = _floors(cursor)
        if top:
            floors[key] = top
        return super().commit(cursor, key, json.dumps(floors, sort_keys=True), newest)


def _floors(cursor: Cursor) -> dict[str, str]:
    try:
        floors = json.loads(cursor.newest_id or "{}")
    except ValueError:
        return {}
    return floors if isinstance(floors, dict) else {}
