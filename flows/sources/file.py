"""PLACEHOLDER — the helper building the file source replaces this file."""
from __future__ import annotations
from dataclasses import dataclass


@dataclass(frozen=True)
class FileSettings:
    paths: tuple[str, ...] = ()
    batch_size: int = 10_000


class FileSource:
    name = "file"

    def __init__(self, settings: FileSettings) -> None:
        self.settings = settings
