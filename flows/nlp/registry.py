"""`load_backend`: an NLP backend by name, on the device asked for.

Importing this module is cheap: torch and the models load inside :func:`load_backend`.

Example:
    >>> from flows.nlp.stream import classify_texts
    >>> backend = load_backend("lite")
    >>> for table in classify_texts(backend, ["Our dbt models build in minutes now, love it 🎉"]):
    ...     print(table.column("sentiment").to_pylist())
    ['positive']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.nlp.backend import Backend, BackendUnavailable
from flows.settings import NLP_BACKENDS, NLP_DEVICES

if TYPE_CHECKING:
    from flows.nlp.tweetnlp.settings import TweetnlpConfig


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
    if name not in NLP_BACKENDS:
        raise ValueError(f"unknown NLP backend {name!r}: choose one of {', '.join(NLP_BACKENDS)}")
    if device not in NLP_DEVICES:
        raise ValueError(f"unknown device {device!r}: choose one of {', '.join(NLP_DEVICES)}")
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(
            "device 'cuda' was asked for but torch sees no CUDA GPU: use device auto or cpu"
        )
    if name == "tweetnlp":
        from flows.nlp.tweetnlp.backend import TweetnlpBackend

        return TweetnlpBackend(tweetnlp, device=device)
    from flows.nlp.lite import LiteBackend

    return LiteBackend(device=device, batch_size=batch_size)
