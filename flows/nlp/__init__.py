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
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from flows.config import TweetnlpConfig

BACKEND_NAMES = ("lite", "tweetnlp")
DEVICES = ("auto", "cpu", "cuda")
# Texts classified together, by device; a chunk is also the step of the progress reports. A GPU
# runs tens of thousands of posts a second, and one of its batches holds ~1,600 tweets (65,536
# tokens): CPU-sized chunks would starve it. Each chunk also waits once for the engine's workers'
# first part (at most 2,048 texts: ~0.14 s at ~15,000 texts/s a worker): ~4% of two models' GPU
# time at 40,000 posts/s each with 65,536 texts, ~8% with 16,384 (parts of ~1,100).
CHUNK_TEXTS = {"cpu": 512, "cuda": 65_536}


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
        cache_size: results kept from recent chunks, so that a repost a few chunks later is not
            classified again; at least the latest chunk's, whole chunks' results dropped oldest
            first beyond this many, so memory stays flat.

    Yields:
        ``NLP_RESULT_SCHEMA`` tables; concatenated, one row per input text in input order.
    """
    if total is None and isinstance(texts, Sequence):
        total = len(texts)
    # Results stay Arrow tables, one per chunk, and rows are picked with `take`: a Python row per
    # post cost ~5 µs, a tenth of a GPU's time for two models.
    where: dict[str, tuple[int, int]] = {}  # text -> (chunk number, row in that chunk's results)
    results: OrderedDict[int, tuple[list[str], pa.Table]] = OrderedDict()
    iterator = iter(texts)
    with tqdm(
        total=total, unit=" posts", desc=f"classify {backend.model_id}", disable=not progress
    ) as bar:
        for number, chunk in enumerate(iter(lambda: list(islice(iterator, chunk_size)), [])):
            new = list(dict.fromkeys(text for text in chunk if text not in where))
            if new:
                results[number] = (new, backend.classify(new))
                where.update((text, (number, row)) for row, text in enumerate(new))
            starts, rows = {}, 0
            for kept, (_, table) in results.items():
                starts[kept], rows = rows, rows + table.num_rows
            picked = [starts[kept] + row for kept, row in map(where.__getitem__, chunk)]
            yield pa.concat_tables(table for _, table in results.values()).take(picked)
            while rows > cache_size and len(results) > 1:
                old, table = results.popitem(last=False)[1]
                rows -= table.num_rows
                for text in old:
                    del where[text]
            bar.update(len(chunk))
