"""Every source by name: its settings class (also its INI section) and how to build it."""

from __future__ import annotations

from typing import Any

from flows.sources.base import Source, Spent
from flows.sources.bluesky import BlueskySettings, BlueskySource
from flows.sources.file.source import FileSettings, FileSource
from flows.sources.mastodon import MastodonSettings, MastodonSource
from flows.sources.reddit import RedditSettings, RedditSource
from flows.sources.sample.source import SampleSettings, SampleSource
from flows.sources.snscrape import SnscrapeSettings, SnscrapeSource
from flows.sources.x import XSettings, XSource

# Each source's settings class is also its INI section: [sample], [file], ...
SOURCE_SETTINGS: dict[str, type] = {
    "sample": SampleSettings,
    "file": FileSettings,
    "mastodon": MastodonSettings,
    "x": XSettings,
    "bluesky": BlueskySettings,
    "reddit": RedditSettings,
    "snscrape": SnscrapeSettings,
}
_SOURCES: dict[str, type] = {
    "sample": SampleSource,
    "file": FileSource,
    "mastodon": MastodonSource,
    "x": XSource,
    "bluesky": BlueskySource,
    "reddit": RedditSource,
    "snscrape": SnscrapeSource,
}


# The sources that bill per use: they are told what was spent before, to keep to their budget.
PAID_SOURCES = frozenset({"x"})


def make_source(name: str, settings: Any, spent: Spent = Spent()) -> Source:
    if name in PAID_SOURCES:
        return _SOURCES[name](settings, spent=spent)
    return _SOURCES[name](settings)
