"""PLACEHOLDER — the helper building the sample source replaces this file."""
from __future__ import annotations
from dataclasses import dataclass


@dataclass(frozen=True)
class SampleSettings:
    posts: int = 5000
    days: int = 42
    seed: int = 7
    end_date: str = "2026-11-23"
    batch_size: int = 10_000


class SampleSource:
    name = "sample"

    def __init__(self, settings: SampleSettings) -> None:
        self.settings = settings
