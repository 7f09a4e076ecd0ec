"""What every HTTP source shares: one polite client.

- `HttpClient` owns its session and the rate-limit state of each host. Transient failures
  (network errors, timeouts, 429, 5xx, a body that is not JSON) are retried a bounded number of
  times with exponential backoff and jitter (tenacity), logging a line before each sleep. When the
  headers say the window is spent (``x-rate-limit-*`` on X, ``X-RateLimit-*`` on Mastodon and
  Reddit, ``RateLimit-*`` on Bluesky), the next request first sleeps until the announced reset,
  so the API need not answer 429. 401, 403 and 404 raise typed `HttpError`s at once, whose
  messages name the fix; no message or log line holds a secret (`flows.sources.secrets`).
  Every request sent (retries, logins and redirects included), every retry and every second
  waited for a rate limit is counted in the client's `Usage`, which the run's record reports.
- `BearerToken` sends a secret token with every request.

Paging over the client is `flows.sources.paging`.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Self

import httpx
import tenacity

from flows.sources.base import SourceError, SourceStopped, Usage
from flows.sources.secrets import Secret

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


class RateLimited(HttpError, SourceStopped):
    """The rate-limit window resets later than the source is willing to wait."""


class GaveUp(HttpError):
    """A transient failure outlasted every retry."""


class MalformedBody(HttpError):
    """The API answered 200 with a body that is not JSON, every time it was asked."""


_STATUS_ERRORS: dict[int, type[HttpError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound}


class TransientError(Exception):
    """A failure worth retrying; `wait` is the pause the API asked for, if it said;
    `rate_limited` when the API said 429 (the pause is then a rate-limit wait)."""

    def __init__(
        self,
        message: str,
        wait: float | None = None,
        malformed: bool = False,
        rate_limited: bool = False,
    ) -> None:
        super().__init__(message)
        self.wait = wait
        self.malformed = malformed
        self.rate_limited = rate_limited


def json_body(response: httpx.Response, what: str) -> Any:
    """The JSON body of `response` to request `what`.

    Raises:
        TransientError: the body is not JSON (a proxy's error page, say): worth another try,
            and `MalformedBody` once the tries are spent. Logins use it too.
    """
    try:
        return response.json()
    except ValueError as exc:  # UnicodeDecodeError too
        start = response.text[:80].replace("\n", " ")
        raise TransientError(
            f"{what} answered {response.status_code} with a body that is not JSON ({exc}; it "
            f"starts {start!r})",
            malformed=True,
        ) from None


# --- authentication and messages ------------------------------------------------------


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

    Attributes:
        usage: the requests sent, the retries and the rate-limit waits so far.

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
        self.usage = Usage()
        self._session = httpx.Client(
            auth=auth,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
            timeout=timeout,
            follow_redirects=True,
            # a hook sees every request on the wire: an auth flow's logins and redirects too
            event_hooks={"request": [self._count_request]},
        )

    def __repr__(self) -> str:
        return f"HttpClient({self.source!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def _count_request(self, request: httpx.Request) -> None:
        self.usage.requests += 1

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
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            return retrying(self._attempt, request, what)
        except TransientError as exc:
            error = MalformedBody if exc.malformed else GaveUp
            raise error(f"{self.source}: {exc} (gave up after {self.attempts} tries)") from None

    def _before_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        self.usage.retries += 1
        if isinstance(exc, TransientError) and exc.rate_limited:
            self.usage.rate_limit_wait_s += pause
        log.warning(
            "%s: %s; try %d of %d in %.1f s",
            self.source,
            exc,
            state.attempt_number + 1,
            self.attempts,
            pause,
        )

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
            raise TransientError(f"{what} answered {status}", wait, rate_limited=status == 429)
        if status >= 400:
            error = _STATUS_ERRORS.get(status, HttpError)
            raise error(self._refusal(what, response, self.fixes.get(status, "")), status)
        return json_body(response, what), response

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
        self.usage.rate_limit_wait_s += wait
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
