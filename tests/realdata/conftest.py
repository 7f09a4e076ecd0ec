"""Replaying answers shaped like recorded ones: load a fixture, collect it into a lake, read back.

Each fixture file is ``{"follows": [...], "answer": ...}``: `follows` names the recordings of
other open-source projects (repository, path, what was taken from it) whose structure, escaping,
HTML, markdown, facets, embeds and edge cases the answer copies field for field; the texts, names
and ids are our own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.config import Config, PipelineConfig, TwitterConfig
from flows.lake.lake import Lake
from flows.stages.collect import collect_source

HERE = Path(__file__).parent


@pytest.fixture
def recorded() -> Callable[[str], Any]:
    """The answer of fixture `name` (``tests/realdata/<name>.json``)."""

    def load(name: str) -> Any:
        fixture = json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))
        assert fixture["follows"], f"{name}.json must name the recordings it follows"
        return fixture["answer"]

    return load


@pytest.fixture
def collect_into_lake(tmp_path) -> Callable[..., dict[str, dict[str, Any]]]:
    """Collect one source (its settings pointing at a running fake) into a fresh lake, as
    ``python -m flows collect`` does, and return the landed posts by ``native_id``."""

    def collect(name: str, settings: Any, hashtag: str = "dataengineering") -> dict[str, Any]:
        config = Config(
            twitter=TwitterConfig(hashtag=hashtag),
            pipeline=PipelineConfig(sources=(name,), lake=str(tmp_path / "lake")),
            source_settings={name: settings},
        )
        report = collect_source(config, name, "replay")
        assert report.error is None and not report.warnings, report
        lake = Lake(str(tmp_path / "lake"))
        rows = [row for path in lake.manifest() for row in lake.read_posts(path).to_pylist()]
        return {row["native_id"]: row for row in rows}

    return collect
