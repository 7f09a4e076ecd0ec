"""`configuration.conf` → one typed, validated `Config`, read once.

Every key can be overridden by an environment variable named ``PULSE_<SECTION>_<KEY>`` (upper
case), e.g. ``PULSE_PIPELINE_LAKE=gs://my-bucket/lake``. With no file and no overrides the result
is the embedded default: the sample source, a local lake folder, DuckDB and the offline NLP backend.

A wrong key or value raises `ConfigError` before any work starts; its message names the section,
the key, where it was read from and how to fix it.
"""

from __future__ import annotations

import configparser
import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.nlp.tweetnlp.settings import TweetnlpConfig
# sources declare their own sections
from flows.sources.registry import SOURCE_SETTINGS, STREAM_SECTIONS, STREAM_SETTINGS
from flows.settings import (
    LAKE_SCHEMES,
    NLP_BACKENDS,
    NLP_DEVICES,
    NLP_PRECISIONS,
    ConfigError,
    parse_warehouse_url,
)
from flows.warehouse.signals import SIGNAL_KINDS

DEFAULT_PATH = Path("configuration.conf")
ENV_PREFIX = "PULSE"



@dataclass(frozen=True)
class GcpConfig:
    """The original project's `[gcp_config]`: where the lake and the warehouse live on GCP."""

    project_id: str = ""
    data_lake_bucket: str = ""
    bucket_filename: str = ""  # a prefix inside the bucket (the original wrote one file here)
    bq_dataset: str = ""
    bq_location: str = ""  # where the pipeline creates a missing dataset; empty: US
    bq_table: str = ""  # kept for old files; the warehouse tables are named by DESIGN.md


@dataclass(frozen=True)
class PrefectConfig:
    """The original project's `[prefect_config]`: names of the Prefect blocks to use on GCP."""

    gcp_credentials: str = ""
    gcs_bucket_block_name: str = ""


@dataclass(frozen=True)
class TwitterConfig:
    """The original project's `[twitter_config]`: what to follow, and how much per source per run."""

    hashtag: str = "dataengineering"
    limit: int = 0  # 0: no limit

    def __post_init__(self) -> None:
        # the original project's file writes `hashtag = #dataengineering`: the '#' is not the tag
        object.__setattr__(self, "hashtag", self.hashtag.strip().removeprefix("#"))


@dataclass(frozen=True)
class PipelineConfig:
    """`[pipeline]`: which sources to read and where the lake and the warehouse are."""

    sources: tuple[str, ...] = ("sample",)
    lake: str = "data/lake"
    warehouse: str = "duckdb:///data/warehouse.duckdb"
    nlp_backend: str = "lite"
    nlp_device: str = "auto"
    nlp_batch_size: int = 64


@dataclass(frozen=True)
class AlertsConfig:
    """`[alerts]`: which new signals analyze sends, once each, and where.

    Attributes:
        urls_env: the environment variable that holds Apprise URLs (space separated: Slack,
            Discord, Teams, mailto://, ntfy://, json://...); URLs are secrets, never in the file.
        block: a Prefect notification block, ``<block type>/<name>`` (``slack-webhook/team``).
        kinds: the kinds of signal to send.
        min_score: the least score a signal needs to be sent.
        max_age_hours: signals whose window ended longer before the hashtag's newest post are
            history (a first run over old posts sends none of it).
        retries: tries of a failed send before it is reported and left for the next run.
        digest: also send the weekly digest.
    """

    urls_env: str = ""
    block: str = ""
    kinds: tuple[str, ...] = SIGNAL_KINDS
    min_score: float = 5.0
    max_age_hours: int = 48
    retries: int = 3
    digest: bool = False

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.kinds if kind not in SIGNAL_KINDS]
        if unknown:
            raise ValueError(
                f"kinds: unknown {', '.join(unknown)}; choose from {', '.join(SIGNAL_KINDS)}"
            )
        if self.urls_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.urls_env):
            raise ValueError(
                f"urls_env = {self.urls_env!r}: name an environment variable (PULSE_ALERT_URLS), "
                "not the URLs themselves"
            )
        if self.block and "/" not in self.block:
            raise ValueError(
                f"block = {self.block!r}: write <block type>/<name>, "
                f"e.g. slack-webhook/{self.block}"
            )
        if self.min_score < 0 or self.max_age_hours < 1 or self.retries < 1:
            raise ValueError("min_score must be 0 or more, max_age_hours and retries 1 or more")


@dataclass(frozen=True)
class RefreshConfig:
    """`[refresh]`: which collected posts a refresh reads again (`python -m flows refresh`).

    Attributes:
        days: posts younger than this many days are read again; older ones keep their last
            counts.
        growth: a post is read again once its age has grown this many times since its last
            reading (2: at about 1, 2, 4, 8 … hours old): young posts often, old ones seldom.
    """

    days: int = 7
    growth: float = 2.0

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"days: must be 1 or more, got {self.days}")
        if self.growth <= 1:
            raise ValueError(f"growth: must be more than 1, got {self.growth}")


@dataclass(frozen=True)
class StreamConfig:
    """`[stream]`: the live mode, ``python -m flows stream``.

    Attributes:
        sources: the streaming sources to run: ``jetstream`` (Bluesky, no account) and/or
            ``mastodon`` (the instances of ``[mastodon]`` that have a token).
        flush_seconds: what arrived is written to the lake at least this often...
        flush_posts: ...or as soon as this many posts wait.
        analyze_seconds: analyze runs this often while streaming (0: never; the hourly
            ``gcs-to-bq`` run then does it), so a post is on the dashboard about
            ``flush_seconds + analyze_seconds`` after its event.
    """

    sources: tuple[str, ...] = ()
    flush_seconds: float = 60.0
    flush_posts: int = 1000
    analyze_seconds: float = 60.0

    def __post_init__(self) -> None:
        unknown = [name for name in self.sources if name not in STREAM_SECTIONS]
        if unknown:
            raise ValueError(
                f"sources: unknown streaming source {', '.join(unknown)}; choose from "
                f"{', '.join(STREAM_SECTIONS)}"
            )
        if len(set(self.sources)) != len(self.sources):
            raise ValueError("sources: a source is named twice")
        if self.flush_seconds <= 0 or self.flush_posts < 1:
            raise ValueError("flush_seconds must be more than 0 and flush_posts 1 or more")
        if self.analyze_seconds < 0:
            raise ValueError(f"analyze_seconds: 0 (off) or more, got {self.analyze_seconds}")


@dataclass(frozen=True)
class Config:
    """The whole configuration. Build it with `load_config`."""

    twitter: TwitterConfig = field(default_factory=TwitterConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    gcp: GcpConfig = field(default_factory=GcpConfig)
    prefect: PrefectConfig = field(default_factory=PrefectConfig)
    tweetnlp: TweetnlpConfig = field(default_factory=TweetnlpConfig)
    refresh: RefreshConfig = field(default_factory=RefreshConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    # typed settings of each source, by source name (see flows.sources.SOURCE_SETTINGS)
    source_settings: Mapping[str, Any] = field(default_factory=dict)
    origin: str = "embedded default"

    @property
    def hashtag(self) -> str:
        return self.twitter.hashtag

    @property
    def limit(self) -> int | None:
        return self.twitter.limit or None

    @property
    def lake(self) -> str:
        """The lake URL: a local folder (absolute) or ``gs://bucket/prefix``."""
        if self.pipeline.lake != PipelineConfig.lake or not self.gcp.data_lake_bucket:
            return _absolute_lake(self.pipeline.lake)
        prefix = self.gcp.bucket_filename.strip("/")
        return f"gs://{self.gcp.data_lake_bucket}" + (f"/{prefix}" if prefix else "")

    @property
    def warehouse(self) -> str:
        """The warehouse URL: ``duckdb:///path`` or ``bigquery://project/dataset``."""
        if self.pipeline.warehouse != PipelineConfig.warehouse or not (
            self.gcp.project_id and self.gcp.bq_dataset
        ):
            return self.pipeline.warehouse
        return f"bigquery://{self.gcp.project_id}/{self.gcp.bq_dataset}"

    def settings(self, source: str) -> Any:
        return self.source_settings[source]


_SECTIONS: dict[str, type] = {
    "twitter_config": TwitterConfig,
    "pipeline": PipelineConfig,
    "gcp_config": GcpConfig,
    "prefect_config": PrefectConfig,
    "tweetnlp": TweetnlpConfig,
    "refresh": RefreshConfig,
    "alerts": AlertsConfig,
    "stream": StreamConfig,
}


def _absolute_lake(lake: str) -> str:
    if "://" in lake and not lake.startswith("file://"):
        return lake.rstrip("/")  # gs://, or a scheme that validation rejects
    return str(Path(lake.removeprefix("file://")).expanduser().resolve())


def parse_section(cls: type, values: Mapping[str, str], section: str, where: str) -> Any:
    """Build dataclass `cls` from the string values of one INI section, checking every key.

    Sources use this for their own sections, so that all sections fail the same way.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"[{section}] {key}: unknown key in {where}.{hint} "
                f"Known keys: {', '.join(fields)}."
            )
        kwargs[key] = _convert(raw, hints[key], section, key, where)
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a settings class's own __post_init__ check
        raise ConfigError(f"[{section}] {exc} (in {where})") from exc


def _convert(raw: str, hint: Any, section: str, key: str, where: str) -> Any:
    raw = raw.strip()
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):  # `X | None`
        if raw == "":
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is tuple:
        return tuple(item.strip() for item in re.split(r"[,\n]", raw) if item.strip())
    if hint is bool:
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"[{section}] {key} = {raw!r} in {where}: expected true or false.")
    if hint is int:
        try:
            return int(raw or 0)
        except ValueError:
            raise ConfigError(
                f"[{section}] {key} = {raw!r} in {where}: expected a whole number."
            ) from None
    if hint is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"[{section}] {key} = {raw!r} in {where}: expected a number.") from None
    return raw


def _read_ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 (byte {exc.start} cannot be read): save the file as UTF-8."
        ) from None
    except configparser.Error as exc:
        errors = getattr(exc, "errors", None)  # ParsingError: (line number, repr of the line)
        detail = (
            f"line {errors[0][0]}: {errors[0][1]} is neither [section] nor key = value"
            if errors
            else exc.message.splitlines()[0]
        )
        raise ConfigError(
            f"{path}: not a valid INI file ({detail}). Start from configuration.conf.example."
        ) from None
    return parser


def _env_overrides(sections: dict[str, dict[str, str]], known: Mapping[str, type]) -> list[str]:
    """Apply ``PULSE_<SECTION>_<KEY>`` variables; return the names that were applied."""
    applied = []
    for section, cls in known.items():
        for f in dataclasses.fields(cls):
            name = f"{ENV_PREFIX}_{section}_{f.name}".upper()
            if name in os.environ:
                sections.setdefault(section, {})[f.name] = os.environ[name]
                applied.append(name)
    return applied


def load_config(path: str | Path | None = None, *, embedded: bool = False) -> Config:
    """Read the configuration once and validate it.

    Args:
        path: an INI file. ``None`` reads ``./configuration.conf`` when it exists and otherwise
            uses the embedded default. A path that was named but does not exist is an error.
        embedded: ignore ``./configuration.conf`` and start from the embedded default (the demo).

    Example:
        >>> load_config(None).pipeline.nlp_backend
        'lite'
    """
    sections: dict[str, dict[str, str]] = {}
    where = "the embedded default"
    if path is not None or (DEFAULT_PATH.exists() and not embedded):
        file = Path(path) if path is not None else DEFAULT_PATH
        if not file.exists():
            raise ConfigError(
                f"{file}: no such configuration file. Copy configuration.conf.example to "
                f"{file} or leave out --config to run on the embedded default."
            )
        if not file.is_file():
            raise ConfigError(f"{file}: not a file; name the configuration file itself.")
        parser = _read_ini(file)
        sections = {name: dict(parser[name]) for name in parser.sections()}
        where = str(file)
    known = {**_SECTIONS, **SOURCE_SETTINGS, **STREAM_SETTINGS}
    for name in sections:
        if name not in known:  # its keys would be ignored: the run would go on without them
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean [{close[0]}]?" if close else ""
            raise ConfigError(
                f"[{name}] in {where}: unknown section.{hint} Sections: {', '.join(known)}."
            )
    applied = _env_overrides(sections, known)
    if applied:
        where += " + environment " + ", ".join(applied)

    parsed = {
        name: parse_section(cls, sections.get(name, {}), name, where)
        for name, cls in _SECTIONS.items()
    }
    config = Config(
        twitter=parsed["twitter_config"],
        pipeline=parsed["pipeline"],
        gcp=parsed["gcp_config"],
        prefect=parsed["prefect_config"],
        tweetnlp=parsed["tweetnlp"],
        refresh=parsed["refresh"],
        alerts=parsed["alerts"],
        stream=parsed["stream"],
        source_settings={
            name: parse_section(cls, sections.get(name, {}), name, where)
            for name, cls in {**SOURCE_SETTINGS, **STREAM_SETTINGS}.items()
        },
        origin=where,
    )
    _validate(config, where)
    return config


def _validate(config: Config, where: str) -> None:
    hashtag = config.twitter.hashtag
    if not re.fullmatch(r"\w{1,100}", hashtag):
        raise ConfigError(
            f"[twitter_config] hashtag = {hashtag!r} in {where}: a hashtag is letters, digits and "
            "underscores, without '#' (one leading '#' is dropped; for example: dataengineering)."
        )
    if config.twitter.limit < 0:
        raise ConfigError(f"[twitter_config] limit in {where}: use a positive number, or 0 for none.")
    p = config.pipeline
    if not p.sources:
        raise ConfigError(f"[pipeline] sources in {where}: name at least one source.")
    for source in p.sources:
        if source in STREAM_SECTIONS and source not in SOURCE_SETTINGS:
            raise ConfigError(
                f"[pipeline] sources in {where}: {source} is a live source; name it in [stream] "
                "sources instead and run `python -m flows stream` (or the stream/twitter "
                "deployment)."
            )
        if source not in SOURCE_SETTINGS:
            raise ConfigError(
                f"[pipeline] sources in {where}: unknown source {source!r}. "
                f"Choose from: {', '.join(SOURCE_SETTINGS)}."
            )
    if "mastodon" in config.stream.sources and not config.settings("mastodon").access_token_env:
        raise ConfigError(
            f"[stream] sources in {where} names mastodon, but [mastodon] access_token_env is "
            "empty: Mastodon's streaming needs a login since 4.2. Name the environment variable "
            "that holds a token (docs/sources.md), or leave mastodon to [pipeline] sources, "
            "which polls without one."
        )
    if len(set(p.sources)) != len(p.sources):
        raise ConfigError(f"[pipeline] sources in {where}: a source is named twice.")
    if not p.lake.strip():  # it would be the working directory
        raise ConfigError(
            f"[pipeline] lake in {where} is empty: name a folder (data/lake) or gs://bucket/prefix."
        )
    lake_scheme = config.lake.split("://", 1)[0] if "://" in config.lake else "file"
    if lake_scheme not in LAKE_SCHEMES:
        raise ConfigError(
            f"[pipeline] lake = {config.lake!r} in {where}: use a folder path or gs://bucket/prefix."
        )
    parse_warehouse_url(config.warehouse, f"[pipeline] warehouse = {config.warehouse!r} in {where}")
    if p.nlp_backend not in NLP_BACKENDS:
        raise ConfigError(
            f"[pipeline] nlp_backend = {p.nlp_backend!r} in {where}: choose "
            + " or ".join(NLP_BACKENDS)
            + "."
        )
    if p.nlp_device not in NLP_DEVICES:
        raise ConfigError(
            f"[pipeline] nlp_device = {p.nlp_device!r} in {where}: choose {', '.join(NLP_DEVICES)}."
        )
    if p.nlp_batch_size < 1:
        raise ConfigError(f"[pipeline] nlp_batch_size in {where}: must be at least 1.")
    if config.tweetnlp.precision not in NLP_PRECISIONS:
        raise ConfigError(
            f"[tweetnlp] precision = {config.tweetnlp.precision!r} in {where}: choose "
            f"{', '.join(NLP_PRECISIONS)}."
        )
    if config.tweetnlp.token_budget < 0:
        raise ConfigError(f"[tweetnlp] token_budget in {where}: use 0 (automatic) or more.")
