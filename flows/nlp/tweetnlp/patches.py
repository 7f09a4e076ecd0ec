"""Fixes to tweetnlp 0.4.5's side effects and slow spots, applied from outside the library.

Its import turns the Rust tokenizer's threads off for the whole process, its loader asks the
network whether it is online with no timeout, and its link finder scans every text with a pattern
of ~1,850 alternatives; ``import_tweetnlp``, ``load_model`` and ``speed_up_link_search`` undo or
bound each, without changing what tweetnlp computes.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROBE_TIMEOUT_S = 3.0
# Where an alternative of URLExtract's top-level-domain pattern can start: every one begins with
# "." (a domain, an IPv4 octet) or is "localhost"; same engine and flags, so the same characters.
_TLD_STARTS = re.compile(r"\.|localhost", re.IGNORECASE)


def import_tweetnlp() -> Any:
    """The ``tweetnlp`` module, imported without its side effect on tokenization.

    tweetnlp's trainer module sets ``TOKENIZERS_PARALLELISM=false`` for the whole process when it is
    imported, which leaves the Rust tokenizer on one core (1.4 times slower on two cores, more on a
    GPU machine's many); the variable gets back the value it had before the first import.
    """
    if "tweetnlp" in sys.modules:
        return sys.modules["tweetnlp"]
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    import tweetnlp

    if before is None:
        os.environ.pop("TOKENIZERS_PARALLELISM", None)
    else:
        os.environ["TOKENIZERS_PARALLELISM"] = before
    return tweetnlp


def load_model(task: str, folder: Path) -> Any:
    """tweetnlp's model object for `task`, loaded from `folder` with no network."""
    tweetnlp = import_tweetnlp()
    with _bounded_network_probe(), warnings.catch_warnings():
        # tweetnlp 0.4.5 passes transformers 4.x an argument it deprecates
        warnings.filterwarnings("ignore", "The `use_auth_token`", FutureWarning)
        return tweetnlp.load_model(task, model_name=str(folder))


def speed_up_link_search(preprocess: Callable[[str], str]) -> None:
    """Make the link finder of a tweetnlp preprocessor find the same links, faster.

    URLExtract, tweetnlp's link finder, starts with ``findall`` of one pattern of ~1,850
    alternatives (each top-level domain, IPv4 octet, "localhost") over the whole text: ~1 ms for a
    tweet with a dot, 90% of tweetnlp's preprocessing, which would cap a GPU at a few thousand
    posts/s. ``_TldsAtStarts`` tries the same pattern only where an alternative can start.
    """
    from urlextract import URLExtract

    for cell in preprocess.__closure__ or ():
        finder = cell.cell_contents
        if isinstance(finder, URLExtract) and not isinstance(finder._tlds_re, _TldsAtStarts):
            finder._tlds_re = _TldsAtStarts(finder._tlds_re)


class _TldsAtStarts:
    """A pattern whose ``findall`` matches it only at ``_TLD_STARTS``, left to right, skipping
    starts inside the previous match: the matches of ``pattern.findall``, which tries every
    position the same way, as no match can start elsewhere."""

    def __init__(self, pattern: re.Pattern) -> None:
        self.pattern = pattern

    def findall(self, text: str) -> list[str]:
        found = []
        end = 0
        for start in _TLD_STARTS.finditer(text):
            if start.start() < end:
                continue
            match = self.pattern.match(text, start.start())
            if match:
                found.append(match.group())
                end = match.end()
        return found


@contextmanager
def _bounded_network_probe() -> Iterator[None]:
    # tweetnlp asks http://google.com whether it is online before loading, with no timeout: behind
    # a firewall that drops packets, that holds the load for minutes. The models are local by
    # now, so its answer changes nothing.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(PROBE_TIMEOUT_S)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
