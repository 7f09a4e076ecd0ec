"""The NLP layer: a backend turns post texts into sentiment, topics and entities.

A backend is chosen by name with :func:`load_backend` and used through :func:`classify_texts`,
which streams: it classifies each distinct text once (reposts repeat texts), in chunks so memory
stays flat, and yields ``flows.schema.NLP_RESULT_SCHEMA`` tables in input order.

Importing this package is cheap: torch and the models load inside :func:`load_backend`.

Example:
    >>> backend = load_backend("lite")
    >>> for table in classify_texts(backend, ["Our dbt models build in minutes now, love it 🎉"]):
    ...     print(table.column("sentiment").to_pylist())
    ['positive']
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
from tqdm.auto import tqdm

from flows.schema import NLP_RESULT_SCHEMA

if TYPE_CHECKING:
    from flows.config import TweetnlpConfig

BACKEND_NAMES = ("lite", "tweetnlp")
DEVICES = ("auto", "cpu", "cuda")


class Backend(Protocol):
    """What every NLP backend offers.

    Attributes:
        model_id: names the models and their version; it changes whenever outputs would change,
            so a post is classified once per model id.
        device: "cpu" or "cuda".
    """

    model_id: str
    device: str

    def classify(self, texts: Sequence[str]) -> pa.Table:
        """Classify texts; one ``NLP_RESULT_SCHEMA`` row per text, in the same order."""
        ...


class BackendUnavailable(RuntimeError):
    """The backend or device asked for cannot run here; the message says what to use instead."""


def load_backend(
    name: str,
    device: str = "auto",
    batch_size: int = 64,
    tweetnlp: TweetnlpConfig | None = None,
) -> Backend:
    """Load an NLP backend by name.

    Args:
        name: "lite" (offline, CPU, no download) or "tweetnlp".
        device: "auto" (a CUDA GPU when torch sees one, else the CPU), "cpu" or "cuda".
        batch_size: texts per encoder batch (lite; tweetnlp batches by ``token_budget``).
        tweetnlp: the ``[tweetnlp]`` settings (models, precision, token budget); default when None.

    Raises:
        ValueError: an unknown name or device.
        BackendUnavailable: "cuda" was asked for and torch sees no GPU, or the tweetnlp models
            are neither local nor downloadable (the message says how to pre-download them).
    """
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown NLP backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}")
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(
            "device 'cuda' was asked for but torch sees no CUDA GPU: use device auto or cpu"
        )
    if name == "tweetnlp":
        from flows.nlp.tweetnlp_backend import TweetnlpBackend

        return TweetnlpBackend(tweetnlp, device=device)
    from flows.nlp.lite import LiteBackend

    return LiteBackend(device=device, batch_size=batch_size)


def classify_texts(
    backend: Backend,
    texts: Iterable[str],
    *,
    chunk_size: int = 2048,
    progress: bool = False,
    total: int | None = None,
    cache_size: int = 50_000,
) -> Iterator[pa.Table]:
    """Classify a stream of texts, each distinct text once, chunk by chunk.

    Args:
        backend: from :func:`load_backend`.
        texts: any iterable; read ``chunk_size`` texts at a time.
        chunk_size: texts per yielded table (the last one may be shorter).
        progress: show a progress bar (tqdm) on stderr.
        total: how many texts to expect, for the progress bar; ``len(texts)`` when it has one.
        cache_size: how many recent distinct texts keep their result, so that a repost a few
            chunks later is not classified again; bounded so memory stays flat.

    Yields:
        ``NLP_RESULT_SCHEMA`` tables; concatenated, one row per input text in input order.
    """
    if total is None and isinstance(texts, Sequence):
        total = len(texts)
    cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
    iterator = iter(texts)
    with tqdm(
        total=total, unit=" posts", desc=f"classify {backend.model_id}", disable=not progress
    ) as bar:
        while chunk := list(islice(iterator, chunk_size)):
            new = list(dict.fromkeys(text for text in chunk if text not in cache))
            if new:
                for text, row in zip(new, backend.classify(new).to_pylist(), strict=True):
                    cache[text] = row
            rows = []
            for text in chunk:
                cache.move_to_end(text)
                rows.append(cache[text])
            while len(cache) > cache_size:
                cache.popitem(last=False)
            bar.update(len(chunk))
            yield pa.Table.from_pylist(rows, schema=NLP_RESULT_SCHEMA)
