"""What every NLP backend offers, and how it says it cannot run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import pyarrow as pa

from flows.nlp.conversations import Encoder

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


@runtime_checkable
class EmbeddingBackend(Backend, Encoder, Protocol):
    """A backend that computes the conversations' sentence vectors (`Encoder.embed`) while it
    classifies, and hands them over, so that analysis embeds a post once."""

    def classify_embedded(self, texts: Sequence[str]) -> pa.Table:
        """`classify`'s table plus a column ``embedding``: each text's `embed` row, as bytes."""
        ...


class BackendUnavailable(RuntimeError):
    """The backend or device asked for cannot run here; the message says what to use instead."""
