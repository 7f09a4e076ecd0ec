"""Every source by name: its settings class (also its INI section) and how to build it."""

from __future__ import annotations

from typing import Any

from flows.sources.base import Source, Spent, StreamSource
from flows.sources.bluesky import BlueskySettings, BlueskySource
from flows.sources.file.source import FileSettings, FileSource
from flows.sources.jetstream import JetstreamSettings, JetstreamSource
from flows.sources.mastodon import MastodonSettings, MastodonSource
from flows.sources.mastodon_stream import MastodonStreamSource
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

# Streaming sources (`python -m flows stream`), as ``[stream] sources`` names them → the INI
# section of their settings: Jetstream has its own, Mastodon's stream shares ``[mastodon]``.
STREAM_SECTIONS = {"jetstream": "jetstream", "mastodon": "mastodon"}
# the sections only streaming sources read
STREAM_SETTINGS: dict[str, type] = {"jetstream": JetstreamSettings}


# The sources that bill per use: they are told what was spent before, to keep to their budget.
PAID_SOURCES = frozenset({"x"})


def make_source(name: str, settings: Any, spent: Spent = Spent()) -> Source:
    if name in PAID_SOURCES:
        return _SOURCES[name](settings, spent=spent)
    return _SOURCES[name](settings)


# Streaming source classes, by their ``[stream] sources`` name.
_STREAMS: dict[str, type] = {"jetstream": JetstreamSource, "mastodon": MastodonStreamSource}


def make_stream(name: str, settings: Any) -> StreamSource:
    """The streaming source `name`, built from the settings of its section (`STREAM_SECTIONS`)."""
    return _STREAMS[name](settings)
