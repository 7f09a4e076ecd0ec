"""What kind of post each index is, and which earlier post a repost or a reply refers to."""

from __future__ import annotations

import numpy as np

from flows.sources.sample.rng import S_KIND, hash_bits, pick, unit

_P_DUPLICATE = 0.02
_P_REPOST = 0.12
_P_EMPTY = 0.006  # of original posts, so ~0.5% of rows
_P_LONG = 0.011
MIN_GAP = 5  # a reply or repost refers to a post at least this many indices earlier


def kinds(idx: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    """(duplicate, repost, empty, long) flags of each index."""
    bits = hash_bits(idx, seed, S_KIND)
    kind, form = unit(bits), pick(bits) * 2.0**-31
    duplicate = (kind < _P_DUPLICATE) & (idx >= 1)
    repost = (kind >= _P_DUPLICATE) & (kind < _P_DUPLICATE + _P_REPOST) & (idx >= MIN_GAP)
    original = ~duplicate & ~repost & (idx >= 1)  # post 0 is always a plain one
    empty = original & (form < _P_EMPTY)
    long = original & (form >= _P_EMPTY) & (form < _P_EMPTY + _P_LONG)
    return duplicate, repost, empty, long


def delivered(idx: np.ndarray, seed: int) -> np.ndarray:
    """The post each row shows: a duplicate row shows the row before it (chains resolve)."""
    src = idx.copy()
    todo = np.flatnonzero(kinds(src, seed)[0])
    while todo.size:
        src[todo] -= 1
        todo = todo[kinds(src[todo], seed)[0]]
    return src


def earlier_original(idx: np.ndarray, seed: int, stream: int, lookback: int) -> np.ndarray:
    """A recent earlier post with text of its own (not a duplicate, repost or empty post)."""
    room = np.minimum(idx - MIN_GAP + 1, lookback)
    target = idx - MIN_GAP - pick(hash_bits(idx, seed, stream)) % room
    todo = np.arange(target.size)
    while todo.size:
        duplicate, repost, empty, _ = kinds(target[todo], seed)
        todo = todo[duplicate | repost | empty]
        target[todo] -= 1
    return target
