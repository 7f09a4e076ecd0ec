"""Notifications: each new signal of view ``signals`` sent once, at the end of analyze.

What was sent is kept in the lake (``_state/alerts.json``: signal id → when), under the lake's
``alerts`` lock, so that a re-run or a second worker never sends a signal twice. A send that
fails is retried (``[alerts] retries``, with a growing pause), then reported and left unsent:
the next run tries it again, so a signal is never lost; ``alerts.json`` also keeps its tries and
last error (``failed``), which the run report shows.

Messages go through Apprise URLs read from the environment variable that ``[alerts] urls_env``
names, or through any `Sender` (the Prefect flows pass one that notifies through the block of
``[alerts] block``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import tenacity

from flows.config import AlertsConfig
from flows.lake.lake import Lake
from flows.settings import ConfigError
from flows.warehouse.base import Warehouse

log = logging.getLogger(__name__)

ALERTS_STATE = "alerts.json"
RETRY_WAIT = tenacity.wait_exponential(multiplier=1, max=30)  # 1 s, 2 s, 4 s ... between tries

Sender = Callable[[str, str], None]
"""``send(title, body)``: deliver one message or raise."""


class SendError(RuntimeError):
    """A notification service refused or did not answer."""


@dataclass
class AlertReport:
    """What one round of notifications did."""

    sent: list[str] = field(default_factory=list)  # signal ids
    failed: dict[str, str] = field(default_factory=dict)  # signal id → the last error


def apprise_sender(urls: list[str]) -> Sender:
    """A `Sender` that notifies every Apprise URL of `urls` (Apprise ships with Prefect)."""
    import apprise

    service = apprise.Apprise()
    for url in urls:
        if not service.add(url):
            # the URL itself is a secret (a webhook token): name its scheme only
            raise ConfigError(f"[alerts] urls_env: Apprise does not know {url.split(':')[0]}://")

    def send(title: str, body: str) -> None:
        if not service.notify(body=body, title=title):
            raise SendError("Apprise could not deliver to every URL (its log says which)")

    return send


def env_sender(alerts: AlertsConfig) -> Sender | None:
    """The Apprise `Sender` of the URLs in the variable ``[alerts] urls_env`` names; None when
    no variable is named.

    Raises:
        ConfigError: the variable is named but unset or empty, or holds a URL Apprise lacks.
    """
    if not alerts.urls_env:
        return None
    urls = os.environ.get(alerts.urls_env, "").split()
    if not urls:
        raise ConfigError(
            f"[alerts] urls_env = {alerts.urls_env}: that environment variable is unset or empty."
            f" Set it to one or more Apprise URLs (export {alerts.urls_env}='ntfy://topic'), or "
            "clear urls_env."
        )
    return apprise_sender(urls)


def new_signals(warehouse: Warehouse, alerts: AlertsConfig) -> list[dict]:
    """The signals worth sending: of the kinds and score asked for, and recent (ending within
    ``max_age_hours`` of their hashtag's newest post), oldest first."""
    kinds = ", ".join("?" for _ in alerts.kinds)
    sql = f"""SELECT s.* FROM signals AS s
        JOIN (SELECT hashtag, MAX(created_at) AS newest FROM posts GROUP BY hashtag) AS h
            ON h.hashtag = s.hashtag
        WHERE s.kind IN ({kinds}) AND s.score >= ?
            AND s.window_end >= h.newest - ? * INTERVAL 1 HOUR
        ORDER BY s.window_start, s.signal_id"""
    params = [*alerts.kinds, float(alerts.min_score), int(alerts.max_age_hours)]
    return warehouse.query(sql, params).to_pylist()


def describe(signal: dict) -> str:
    """What changed, with its numbers, in words."""
    value, baseline, subject = signal["value"], signal["baseline"], signal["subject"]
    where = "" if signal["source"] == "*" else f" on {signal['source']}"
    usual = f"against a usual {baseline:,.1f}"
    return {
        "volume": f"{value:,.0f} posts in one {signal['grain']}{where}, {usual}",
        "negative_share": f"{value:.0%} of the day's posts{where} negative, against {baseline:.0%}",
        "entity": f"{subject} named in {value:,.0f} posts in a day, {usual}",
        "topic": f"topic {subject} in {value:,.0f} posts in a day, {usual}",
        "engagement": f"a post{where} with {value:,.0f} engagements, {usual}",
    }[signal["kind"]]


def message(signal: dict) -> tuple[str, str]:
    """The title and body that tell of `signal`: the hashtag, what changed with its numbers,
    its window and links to example posts."""
    what = describe(signal)
    start, end = signal["window_start"], signal["window_end"]
    title = f"#{signal['hashtag']}: {what.split(',')[0]}"
    lines = [
        f"#{signal['hashtag']}: {what} (score {signal['score']:.1f}).",
        f"When: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC.",
        "Examples:",
        *(f"- {url}" for url in signal["example_urls"] if url),
    ]
    return title, "\n".join(lines)


def send_new_signals(
    lake: Lake, warehouse: Warehouse, alerts: AlertsConfig, send: Sender
) -> AlertReport:
    """Send each signal that `lake` has no record of sending, and record it once sent."""
    report = AlertReport()
    with lake.lock("alerts", wait=300):
        sent = lake._read_json(ALERTS_STATE).get("sent", {})
        for signal in new_signals(warehouse, alerts):
            signal_id = signal["signal_id"]
            if signal_id in sent:
                continue
            try:
                tenacity.Retrying(
                    stop=tenacity.stop_after_attempt(alerts.retries),
                    wait=RETRY_WAIT,
                    reraise=True,
                    before_sleep=lambda state: log.warning(
                        "sending signal %s failed (%s); trying again in %.0f s",
                        signal_id, state.outcome.exception(), state.next_action.sleep,
                    ),
                )(send, *message(signal))
            except Exception as exc:  # any service error: the signal waits for the next run
                log.error("signal %s not sent after %d tries: %s", signal_id, alerts.retries, exc)
                report.failed[signal_id] = str(exc)
                _record(lake, signal_id, failed=str(exc))
                continue
            report.sent.append(signal_id)
            sent[signal_id] = _record(lake, signal_id)
    log.info("alerts: %d sent, %d failed", len(report.sent), len(report.failed))
    return report


def _record(lake: Lake, signal_id: str, failed: str | None = None) -> str:
    """Write down at once that `signal_id` was sent (or failed again); the time written."""
    now = datetime.now(UTC).isoformat()

    def change(state: dict) -> None:
        if failed is None:
            state.setdefault("sent", {})[signal_id] = now
            state.get("failed", {}).pop(signal_id, None)
        else:
            entry = state.setdefault("failed", {}).setdefault(signal_id, {"tries": 0})
            entry.update(tries=entry["tries"] + 1, error=failed, at=now)

    lake._update_json(ALERTS_STATE, change)
    return now
