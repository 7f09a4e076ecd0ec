"""The ``tweetnlp`` NLP backend: cardiffnlp's tweet models, through tweetnlp, run by our engine.

Sentiment is ``cardiffnlp/twitter-roberta-base-sentiment-latest`` and topics
``cardiffnlp/twitter-roberta-base-dec2021-tweet-topic-multi-all`` (19 labels, multi-label),
tweetnlp's defaults for its ``sentiment`` and ``topic_classification`` tasks; either can be
replaced by another Hugging Face name or a local folder. tweetnlp loads them and supplies their
label maps and its tweet preprocessing (the topic model has its own); ``flows.nlp.engine``
computes the same probabilities as tweetnlp's ``predict``, much faster. Entities come from the
gazetteer of ``flows.nlp.gazetteer`` by default; with ``[tweetnlp] ner_model`` set, from tweetnlp's
NER (``tner/roberta-large-tweetner7-all``: a roberta-large with a CRF, about three times the cost
of the two classifiers together, for entity types - person, location, product... - that say less
about a data community than the gazetteer's tools), run by tweetnlp's own ``predict`` on
batches of texts of one token length.

Models are found at construction, cheaply (``flows.nlp.tweetnlp.models``): a folder, or the Hugging
Face cache; missing from both, they are downloaded into the cache, and with no network the error
says how to pre-download them (``python -m flows download-models``). tweetnlp (a 7-15 s import,
its side effects undone by ``flows.nlp.tweetnlp.patches``) and the weights load when the backend
first has a text to classify.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from flows.nlp.backend import BackendUnavailable
from flows.nlp.engine import Engine, Part, limit_torch_threads, resolve_precision
from flows.nlp.gazetteer import CAPITALISED_ONLY, GAZETTEER, find_all_entities
from flows.nlp.tweetnlp.models import DEFAULT_MODELS, locate, model_tag
from flows.nlp.tweetnlp.patches import load_model, speed_up_link_search
from flows.nlp.tweetnlp.settings import TweetnlpConfig
from flows.schema import NLP_RESULT_SCHEMA, SENTIMENT_LABELS, TOPIC_LABELS

EXPECTED_LABELS = {"sentiment": SENTIMENT_LABELS, "topic_classification": TOPIC_LABELS}
NER_BATCH = {"cpu": 32, "cuda": 512}  # texts per NER batch (of one token length, see entities)
TOPIC_THRESHOLD = 0.5  # tweetnlp's: a label is predicted when its sigmoid is over 0.5


class TweetnlpBackend:
    """Sentiment and topics from cardiffnlp's models through tweetnlp; entities from the
    gazetteer, or from tweetnlp's NER when ``ner_model`` is set.

    Args:
        settings: the ``[tweetnlp]`` section: models, precision, token budget.
        device: "cpu" or "cuda".
        workers: processes that prepare texts for each model; None: ``default_workers(device)``.

    Raises:
        BackendUnavailable: a model is neither a folder, nor in the Hugging Face cache, nor
            downloadable; or a precision the device cannot run.

    Example:
        >>> backend = TweetnlpBackend(TweetnlpConfig(), device="cpu")
        >>> backend.classify(["I love this!"]).column("sentiment").to_pylist()
        ['positive']
    """

    def __init__(
        self,
        settings: TweetnlpConfig | None = None,
        device: str = "cpu",
        workers: int | None = None,
    ) -> None:
        settings = settings or TweetnlpConfig()
        self.device = device
        self.workers = workers
        self.settings = settings
        try:
            self.precision = resolve_precision(settings.precision, device)
        except ValueError as error:
            raise BackendUnavailable(f"[tweetnlp] precision: {error}") from None
        names = {
            "sentiment": settings.sentiment_model,
            "topic_classification": settings.topic_model,
        }
        self.folders = {task: locate(name or DEFAULT_MODELS[task]) for task, name in names.items()}
        models = "+".join(
            model_tag(names[task] or DEFAULT_MODELS[task], folder)
            for task, folder in self.folders.items()
        )
        self.ner_folder = locate(settings.ner_model) if settings.ner_model else None
        entities = (
            f"ner-{model_tag(settings.ner_model, self.ner_folder)}"
            if self.ner_folder
            else f"gazetteer-{_gazetteer_digest()}"
        )
        self.model_id = f"tweetnlp-{version('tweetnlp')}/{models}/{self.precision}+{entities}"
        self._engines: dict[str, tuple[Engine, list[str]]] = {}
        self._ner: Any = None

    def _load(self) -> None:
        if self._engines:
            return
        if self.device == "cpu":
            limit_torch_threads()
        for task, folder in self.folders.items():
            classifier = load_model(task, folder)
            labels = [classifier.id_to_label[str(i)] for i in range(len(classifier.id_to_label))]
            unexpected = sorted(set(labels) - set(EXPECTED_LABELS[task]))
            if unexpected:
                raise BackendUnavailable(
                    f"{folder}: the {task} model's labels {unexpected} are not among "
                    f"{', '.join(EXPECTED_LABELS[task])}, which the warehouse views expect"
                )
            speed_up_link_search(classifier.preprocess)
            engine = Engine(
                classifier.model,
                classifier.tokenizer,
                classifier.preprocess,
                multi_label=classifier.multi_label,
                device=self.device,
                precision=self.precision,
                max_length=classifier.max_length,
                token_budget=self.settings.token_budget,
                workers=self.workers,
            )
            self._engines[task] = (engine, labels)
        if self.ner_folder is not None:
            self._ner = _load_ner(self.ner_folder, self.device)

    def probabilities(
        self, task: str, texts: Sequence[str], parts: Iterator[Part] | None = None
    ) -> tuple[np.ndarray, list[str]]:
        """One task's probabilities for ``texts`` and the model's labels in column order
        (``parts``: see ``Engine.probabilities``)."""
        self._load()
        engine, labels = self._engines[task]
        return engine.probabilities(texts, parts), labels

    def entities(self, texts: Sequence[str]) -> list[list[dict[str, str]]]:
        """Named entities per text, ``{"text", "type"}``: tweetnlp's NER, or the gazetteer."""
        if self.ner_folder is None:
            return find_all_entities(texts)
        self._load()
        return ner_entities(self._ner, texts, NER_BATCH[self.device])

    def classify(self, texts: Sequence[str]) -> pa.Table:
        """Classify texts; one ``NLP_RESULT_SCHEMA`` row per text, in the same order."""
        if not texts:
            return NLP_RESULT_SCHEMA.empty_table()
        self._load()
        # CPU work handed out before the model starts: each task's texts to its engine's workers
        # (the topics' are ready by the time the GPU is done with sentiment), and the gazetteer's
        # entities to the sentiment workers once they are idle (the NER model runs after)
        parts = {task: engine.encode_parts(texts) for task, (engine, _) in self._engines.items()}
        gazetteer = (
            self._engines["sentiment"][0].map_in_workers(find_all_entities, texts)
            if self.ner_folder is None
            else None
        )
        sentiment, sentiment_labels = self.probabilities("sentiment", texts, parts["sentiment"])
        topics, topic_labels = self.probabilities(
            "topic_classification", texts, parts["topic_classification"]
        )
        best_sentiment = sentiment.argmax(axis=1)
        ranked = np.argsort(-topics, axis=1, kind="stable")
        ranked_scores = np.take_along_axis(topics, ranked, axis=1)
        predicted = ranked_scores > TOPIC_THRESHOLD  # per row, a prefix of its ranked labels
        rows = np.arange(len(texts))
        # columns built by Arrow from label indices: a Python list per row cost ~10 µs a post,
        # a fifth of a GPU's time for two models
        offsets = np.concatenate([[0], np.cumsum(predicted.sum(axis=1))]).astype(np.int32)
        return pa.table(
            {
                "sentiment": pa.array(sentiment_labels).take(best_sentiment),
                "sentiment_score": sentiment[rows, best_sentiment].astype(np.float64),
                "topic": pa.array(topic_labels).take(ranked[:, 0]),
                "topic_score": ranked_scores[:, 0].astype(np.float64),
                "topics": pa.ListArray.from_arrays(
                    offsets, pa.array(topic_labels).take(ranked[predicted])
                ),
                "entities": list(gazetteer) if gazetteer is not None else self.entities(texts),
                "model_id": [self.model_id] * len(texts),
            },
            schema=NLP_RESULT_SCHEMA,
        )


def _load_ner(folder: Path, device: str) -> Any:
    """tweetnlp's NER model from `folder`, on `device` (tweetnlp picks a GPU by itself)."""
    import torch

    ner = load_model("ner", folder)
    if ner.crf_layer is None:
        # tweetnlp 0.4.5 decodes only through the CRF (its fallback calls torch.max on a list)
        raise BackendUnavailable(f"{folder}: not a tweetnlp NER model (its config has no CRF)")
    ner.device = torch.device(device)
    ner.model.to(ner.device)
    ner.crf_layer.to(ner.device)
    speed_up_link_search(ner.preprocess)
    return ner


def ner_entities(ner: Any, texts: Sequence[str], batch_size: int) -> list[list[dict[str, str]]]:
    """Per text, the entities tweetnlp's NER model ``ner`` finds in it alone, ``{"text", "type"}``.

    tweetnlp's CRF decodes padded positions too (it passes no mask), so padding can change a text's
    entities: a batch holds texts of one token length, which need no padding.
    """
    prepared = [ner.preprocess(text) for text in texts]
    tokens = ner.tokenizer(prepared, truncation=True, max_length=ner.max_length)["input_ids"]
    same_length: dict[int, list[int]] = {}
    for i, ids in enumerate(tokens):
        same_length.setdefault(len(ids), []).append(i)
    found: list[list[dict[str, str]]] = [[] for _ in texts]
    for members in same_length.values():
        for start in range(0, len(members), batch_size):
            batch = members[start : start + batch_size]
            predicted = ner.predict(
                [prepared[i] for i in batch], batch_size=len(batch), skip_preprocess=True
            )
            for i, entities in zip(batch, predicted, strict=True):
                found[i] = [{"text": e["entity"].strip(), "type": e["type"]} for e in entities]
    return found


def _gazetteer_digest() -> str:
    data = repr((GAZETTEER, sorted(CAPITALISED_ONLY)))  # sorted: set order varies per process
    return hashlib.sha256(data.encode()).hexdigest()[:8]

