"""Who posts: the sample's authors (names in ``people.toml``), their languages and clients."""

from __future__ import annotations

import functools
import tomllib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TypeVar

import numpy as np
import pyarrow as pa

from flows.sources.sample.rng import (
    S_AUTHOR,
    S_CLIENT,
    S_LANG,
    S_PEOPLE,
    Categorical,
    hash_bits,
    pick,
    unit,
)

_T = TypeVar("_T")

LANGS = ("en", "de", "es", "fr", "pt", "ja")
_P_OTHER_LANG = 0.08
_EN_AUTHORS = 600
_LANG_AUTHORS = 30
_ZIPF_SHIFT = 2.7  # Zipf-Mandelbrot: the top account writes ~6% of English posts, not ~15%

# fmt: off
_CLIENTS = ("Twitter Web App", "Twitter for iPhone", "Twitter for Android", "TweetDeck",
            "Buffer", "Hootsuite")
# fmt: on
CLIENT_NAMES = pa.array(_CLIENTS)
_CLIENT = Categorical(np.array([0.36, 0.25, 0.2, 0.08, 0.06, 0.05]))
_P_FAVOURITE_CLIENT = 0.75


@dataclass(frozen=True)
class People:
    """Every author's handle and name, by author number, and what the draws need about them."""

    handle: pa.Array
    name: pa.Array
    # "" first, then one entry per author: take(author + 1), with author -1 for none
    reply_prefix: pa.Array  # "@handle "
    rt_prefix: pa.Array  # "RT @handle: "
    cc: pa.Array  # " cc @handle"
    pool_start: np.ndarray  # first author of each language's pool
    rank_en: Categorical  # Zipf-like
    rank_lang: Categorical
    popularity: np.ndarray  # engagement multiplier by author
    favourite_client: np.ndarray


def _ascii(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()


def _nth(items: Sequence[_T], b: int) -> _T:
    return items[b % len(items)]


@functools.cache
def authors() -> People:
    """Every author, deterministic: English pool first, then one pool per other language."""
    names = tomllib.loads(resources.files(__package__).joinpath("people.toml").read_text("utf-8"))
    bits = pick(hash_bits(np.arange(_EN_AUTHORS + 5 * _LANG_AUTHORS), 0, S_PEOPLE)).tolist()
    people = [(handle, name) for handle, name in names["regulars"]]
    for k in range(len(people), _EN_AUTHORS):
        b = bits[k]
        first, last = _nth(names["first_names"], b), _nth(names["last_names"], b >> 6)
        f, l_ = _ascii(first), _ascii(last)
        handle = _nth(
            (
                f"{f}{l_}",
                f"{f}_{l_[0]}",
                f"{f[0]}{l_}",
                f"{f}_data",
                f"{l_}{f}{k % 97}",
                f"{f}codes",
                f"data{f}",
                f"{f}_{l_}_de",
            ),
            b >> 12,
        )
        people.append((handle, f"{first} {last}{_nth(names['name_suffixes'], b >> 16)}"))
    japanese = names["japanese"]
    for lang in LANGS[1:]:
        for _ in range(_LANG_AUTHORS):
            b = bits[len(people)]
            if lang == "ja":
                (gr, gk), (fr, fk) = _nth(japanese["given"], b), _nth(japanese["family"], b >> 4)
                people.append((f"{gr}_{fr}", f"{fk} {gk}"))
            else:
                pool = names["languages"][lang]
                first, last = _nth(pool["first"], b), _nth(pool["last"], b >> 4)
                people.append((f"{_ascii(first)}_{_ascii(last)}", f"{first} {last}"))
    seen: set[str] = set()
    handles = []
    for k, (handle, _) in enumerate(people):
        handle = handle if handle not in seen else f"{handle}{k}"
        seen.add(handle)
        handles.append(handle)

    rank = np.concatenate([np.arange(_EN_AUTHORS)] + [np.arange(_LANG_AUTHORS)] * 5)
    return People(
        handle=pa.array(handles),
        name=pa.array([name for _, name in people]),
        reply_prefix=pa.array([""] + [f"@{h} " for h in handles]),
        rt_prefix=pa.array([""] + [f"RT @{h}: " for h in handles]),
        cc=pa.array([""] + [f" cc @{h}" for h in handles]),
        pool_start=np.array([0] + [_EN_AUTHORS + i * _LANG_AUTHORS for i in range(5)]),
        rank_en=Categorical(1.0 / (np.arange(_EN_AUTHORS) + _ZIPF_SHIFT)),
        rank_lang=Categorical(1.0 / (np.arange(_LANG_AUTHORS) + _ZIPF_SHIFT)),
        popularity=1 + 12.0 / (rank + 1) ** 0.7,
        favourite_client=_CLIENT((np.array(bits) >> 24) / 2.0**7),
    )


def language_of(idx: np.ndarray, seed: int) -> np.ndarray:
    """Index into `LANGS`: the language an index writes in (and its author's pool)."""
    bits = hash_bits(idx, seed, S_LANG)
    return np.where(unit(bits) < _P_OTHER_LANG, 1 + pick(bits) % 5, 0)


def author_of(idx: np.ndarray, seed: int) -> np.ndarray:
    """The author of each index, drawn from its language's pool."""
    people = authors()
    lang = language_of(idx, seed)
    u = unit(hash_bits(idx, seed, S_AUTHOR))
    return np.where(lang == 0, people.rank_en(u), people.pool_start[lang] + people.rank_lang(u))


def client_of(idx: np.ndarray, author: np.ndarray, seed: int) -> np.ndarray:
    """Index into `CLIENT_NAMES`: mostly the author's favourite client."""
    u = unit(hash_bits(idx, seed, S_CLIENT))
    other = _CLIENT(np.maximum(u - _P_FAVOURITE_CLIENT, 0) / (1 - _P_FAVOURITE_CLIENT))
    return np.where(u < _P_FAVOURITE_CLIENT, authors().favourite_client[author], other)
