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

Models are found at construction, cheaply: a folder, or the Hugging Face cache; missing from both,
they are downloaded into the cache, and with no network the error says how to pre-download them
(``python -m flows download-models``). tweetnlp (a 7-15 s import) and the weights load when the
backend first has a text to classify.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from flows.nlp.tweetnlp.settings import TweetnlpConfig
from flows.nlp.backend import BackendUnavailable
from flows.nlp.engine import Engine, Part, limit_torch_threads, resolve_precision
from flows.nlp.gazetteer import CAPITALISED_ONLY, GAZETTEER, find_all_entities
from flows.schema import NLP_RESULT_SCHEMA, SENTIMENT_LABELS, TOPIC_LABELS

# tweetnlp's own defaults (tweetnlp.text_classification.model.MODEL_LIST); a test keeps them equal.
DEFAULT_MODELS = {
    "sentiment": "cardiffnlp/twitter-roberta-base-sentiment-latest",
    "topic_classification": "cardiffnlp/twitter-roberta-base-dec2021-tweet-topic-multi-all",
}
EXPECTED_LABELS = {"sentiment": SENTIMENT_LABELS, "topic_classification": TOPIC_LABELS}
NER_BATCH = {"cpu": 32, "cuda": 512}  # texts per NER batch (of one token length, see entities)
# What loading needs from a model repository: config, tokenizer files, PyTorch weights (the
# cardiffnlp repositories also hold TensorFlow and Flax weights that would triple the download).
MODEL_FILES = ["*.json", "*.txt", "*.safetensors", "pytorch_model.bin"]
TOPIC_THRESHOLD = 0.5  # tweetnlp's: a label is predicted when its sigmoid is over 0.5
PROBE_TIMEOUT_S = 3.0
# Where an alternative of URLExtract's top-level-domain pattern can start: every one begins with
# "." (a domain, an IPv4 octet) or is "localhost"; same engine and flags, so the same characters.
_TLD_STARTS = re.compile(r"\.|localhost", re.IGNORECASE)


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
            f"{_short_name(names[task] or DEFAULT_MODELS[task])}@{_folder_digest(folder)}"
            for task, folder in self.folders.items()
        )
        self.ner_folder = locate(settings.ner_model) if settings.ner_model else None
        entities = (
            f"ner-{_short_name(settings.ner_model)}@{_folder_digest(self.ner_folder)}"
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
            classifier = _load_tweetnlp(task, folder)
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


def _load_tweetnlp(task: str, folder: Path) -> Any:
    """tweetnlp's model object for `task`, loaded from `folder` with no network."""
    tweetnlp = import_tweetnlp()
    with _bounded_network_probe(), warnings.catch_warnings():
        # tweetnlp 0.4.5 passes transformers 4.x an argument it deprecates
        warnings.filterwarnings("ignore", "The `use_auth_token`", FutureWarning)
        return tweetnlp.load_model(task, model_name=str(folder))


def _load_ner(folder: Path, device: str) -> Any:
    """tweetnlp's NER model from `folder`, on `device` (tweetnlp picks a GPU by itself)."""
    import torch

    ner = _load_tweetnlp("ner", folder)
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


def locate(name: str) -> Path:
    """The local folder of a model: ``name`` itself, or its copy in the Hugging Face cache (fetched
    there when missing).

    Raises:
        BackendUnavailable: no folder, no cached copy, and no download possible (offline).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
    from huggingface_hub.utils import validate_repo_id

    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BackendUnavailable(
                f"{path}: not a model folder (no config.json); point the [tweetnlp] setting at "
                "the folder that `python -m flows download-models --dir DIR` wrote"
            )
        return path
    try:
        validate_repo_id(name)
    except HFValidationError:  # a folder, then, and there is none
        raise BackendUnavailable(
            f"{path.absolute()}: no such model folder (a relative one is taken from the working "
            "directory); point the [tweetnlp] setting at a folder that `python -m flows "
            "download-models --dir DIR` wrote, or at a Hugging Face model id"
        ) from None
    try:
        return Path(snapshot_download(name, allow_patterns=MODEL_FILES, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    try:
        return _download(name)
    except BackendUnavailable as error:
        raise BackendUnavailable(
            f"the tweetnlp backend needs the model {name!r}, which is not in the Hugging Face "
            "cache and cannot be downloaded "
            f"({error}). On a machine with network run `python -m flows "
            "download-models` (fills the Hugging Face cache; copy ~/.cache/huggingface over, or "
            "set HF_HOME) or `python -m flows download-models --dir DIR` and set "
            "[tweetnlp] sentiment_model and topic_model to the folders it prints; or set "
            "nlp_backend = lite, which needs no download"
        ) from None


def download_models(settings: TweetnlpConfig, directory: Path | None = None) -> dict[str, Path]:
    """Fetch the configured models: into the Hugging Face cache, or into ``directory``/<name>.

    Returns:
        The local folder of each task's model.
    """
    names = {"sentiment": settings.sentiment_model, "topic_classification": settings.topic_model}
    if settings.ner_model:
        names["ner"] = settings.ner_model
    folders = {}
    for task, name in names.items():
        name = name or DEFAULT_MODELS[task]
        if Path(name).expanduser().is_dir():
            folders[task] = Path(name).expanduser()
        else:
            target = None if directory is None else Path(directory) / name.replace("/", "--")
            folders[task] = _download(name, target)
    return folders


def _download(name: str, folder: Path | None = None) -> Path:
    """Fetch a model into the Hugging Face cache, or into ``folder``; its local folder.

    Raises:
        BackendUnavailable: offline, an unknown name, or no access; the message says which.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, allow_patterns=MODEL_FILES, local_dir=folder))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as error:  # OSError: network
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise BackendUnavailable(
            f"cannot download {name}: {type(error).__name__} {first_line}".strip()
        ) from None


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


def _short_name(name: str) -> str:
    # "cardiffnlp/x", ".../cardiffnlp--x" (a download-models folder) and ".../x" are all "x"
    return Path(name.rstrip("/")).name.split("--")[-1]


def _folder_digest(folder: Path) -> str:
    """Eight hex digits over a model folder's configuration, tokenizer and weights.

    The same files give the same id whether they sit in the cache or in a copied folder.
    """
    digest = hashlib.sha256()
    for small in sorted([*folder.glob("*.json"), *folder.glob("*.txt")]):  # config, tokenizer
        digest.update(f"{small.name}:".encode() + small.read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("pytorch_model.bin")):
        digest.update(f"{weights.name}:{_weights_sha256(weights)}".encode())
    return digest.hexdigest()[:8]


def _weights_sha256(path: Path) -> str:
    target = path.resolve()
    if path.is_symlink() and target.parent.name == "blobs":
        return target.name  # the Hugging Face cache names a weights blob by its sha256
    with target.open("rb") as weights:
        return hashlib.file_digest(weights, "sha256").hexdigest()


def _gazetteer_digest() -> str:
    data = repr((GAZETTEER, sorted(CAPITALISED_ONLY)))  # sorted: set order varies per process
    return hashlib.sha256(data.encode()).hexdigest()[:8]


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
