"""When posts happen: a volume curve over the hours of the window, with the outage, the
conference and the launch, and the time of each index on it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from flows.sources.sample.rng import S_DAY, S_JITTER, Categorical, hash_bits, unit

_WEEKDAY_VOLUME = np.array([1.0, 1.05, 1.05, 1.0, 0.85, 0.5, 0.45])  # Monday first
_OUTAGE_SHARE = np.array([0.55, 0.45, 0.35, 0.28, 0.2, 0.15, 0.1])  # of English posts, by day
_OUTAGE_VOLUME = np.array([1.8, 1.5, 1.3, 1.2, 1.1, 1.05, 1.05])
_CONFERENCE_SHARE = 0.35
_CONFERENCE_VOLUME = 1.9
_LAUNCH_SHARE = np.array([0.45, 0.4])  # of English posts, on the last two days
_LAUNCH_BURST = (15, 17, 6.0)  # the launch's first day: hours 15:00-17:00 UTC, six times busier
_MAX_JITTER_S = 1800.0


@dataclass(frozen=True)
class Plan:
    """How a sample's posts spread over its window, and the events of each day."""

    posts: int
    start_us: int
    span_s: float
    hours: Categorical  # the share of posts in each hour of the window
    outage: np.ndarray  # per day: share of English posts about the outage
    conference: np.ndarray  # per day: share of English posts about the conference
    launch: np.ndarray  # per day: share of English posts about the launch
    lookback: int  # how many posts back a reply or repost may reach


@functools.lru_cache(maxsize=16)
def posting_plan(posts: int, days: int, seed: int, first: datetime) -> Plan:
    """The plan of `posts` posts over `days` days from `first` (00:00 UTC of the first day)."""
    day = np.arange(days)
    weekday = (first.date().weekday() + day) % 7
    outage, conference, launch = np.zeros(days), np.zeros(days), np.zeros(days)
    volume = _WEEKDAY_VOLUME[weekday] * (1 + 0.25 * day / days)
    volume *= 0.85 + 0.3 * unit(hash_bits(day, seed, S_DAY))
    if days >= 14:
        start = _event_start(round(0.3 * days), 0, len(_OUTAGE_SHARE), weekday, days)
        outage_end = start + len(_OUTAGE_SHARE)
        outage[start:outage_end] = _OUTAGE_SHARE
        volume[start:outage_end] *= _OUTAGE_VOLUME
        start = _event_start(max(round(0.68 * days), outage_end), 1, 4, weekday, days)
        if start >= outage_end:  # a short window may have no room left for the conference
            conference[start : start + 4] = _CONFERENCE_SHARE
            volume[start : start + 4] *= _CONFERENCE_VOLUME
    hour = np.arange(24)
    hourly = 0.35 + np.exp(-(((hour - 15) / 4.5) ** 2))  # Europe's afternoon, America's morning
    weights = np.outer(volume, hourly)
    if days >= 14:  # the launch, after the conference: a burst of posts, then a conversation
        launch_day = days - len(_LAUNCH_SHARE)
        launch[launch_day:] = _LAUNCH_SHARE
        start_hour, end_hour, factor = _LAUNCH_BURST
        weights[launch_day, start_hour:end_hour] *= factor
    return Plan(
        posts=posts,
        start_us=micros(first),
        span_s=days * 86400.0,
        hours=Categorical(weights.ravel()),
        outage=outage,
        conference=conference,
        launch=launch,
        lookback=max(50, posts // (days * 4)),  # about six hours of posts
    )


def _event_start(near: int, weekday: int, length: int, weekdays: np.ndarray, days: int) -> int:
    """The first `weekday` at or after day `near`, moved back if the event would end too late."""
    start = near + (weekday - weekdays[min(near, days - 1)]) % 7
    return int(min(start, days - length))


def times(idx: np.ndarray, plan: Plan, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(created_at in µs since the epoch, day of the window) of each index."""
    share = (idx + 0.5) / plan.posts
    hour = plan.hours(share)
    end = plan.hours.cdf[hour]
    p = end - np.where(hour > 0, plan.hours.cdf[hour - 1], 0.0)
    seconds = (hour + 1 - (end - share) / p) * 3600.0
    gap = 3600.0 / (plan.posts * p)  # mean seconds between posts in this hour
    jitter = np.minimum(1.5 * gap, _MAX_JITTER_S) * (2 * unit(hash_bits(idx, seed, S_JITTER)) - 1)
    seconds = np.clip(seconds + jitter, 0.0, plan.span_s - 1e-6)
    return plan.start_us + (seconds * 1e6).astype(np.int64), (seconds // 86400).astype(np.int64)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
