"""The tweetnlp backend and our engine, offline, on tiny RoBERTa classifiers built here.

The models have random weights and a byte-level BPE tokenizer trained in the test; they are saved
to a folder and loaded through the same path as a real model (tweetnlp's ``load_model``), so the
engine is compared with tweetnlp's own ``predict`` on the same weights.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from bench.ner import TYPES, tner_config
from bench.nlp import save_tokenizer
from flows.stages.analyze import analyse_posts
from flows.config import load_config
from flows.nlp.tweetnlp.settings import TweetnlpConfig
from flows.settings import ConfigError
from flows.nlp.backend import BackendUnavailable
from flows.nlp.registry import load_backend
from flows.nlp.stream import classify_texts
from flows.nlp import engine as engine_module
from flows.nlp.engine import Engine, _batch_stops, _gather, _pad
from flows.nlp.gazetteer import find_entities
from flows.nlp.tweetnlp.backend import TweetnlpBackend
from flows.nlp.tweetnlp.models import DEFAULT_MODELS, locate
from flows.nlp.tweetnlp.patches import _TldsAtStarts
from flows.schema import NLP_RESULT_SCHEMA, SENTIMENT_LABELS, TOPIC_LABELS
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse
from tests.conftest import make_posts

# tweetnlp 0.4.5 passes transformers an argument it deprecates; the backend silences it too
pytestmark = pytest.mark.filterwarnings("ignore:The `use_auth_token`:FutureWarning")
ROOT = Path(__file__).parents[1]
WORDS = (
    "data pipeline dbt airflow dagster kafka spark duckdb bigquery warehouse lake love hate great "
    "awful broken fixed release today tomorrow team query model cost fast slow why how really "
    "football match concert film recipe travel gym exam family coffee news election game song"
).split()


def _tweet(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.choice([1, 3, 6, 10, 15, 25, 40, 90]))]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words) + 1), f"@User{rng.randrange(50)}")
    if rng.random() < 0.3:
        words.append(f"https://example.com/{rng.randrange(1000)}")
    if rng.random() < 0.2:
        words.append(rng.choice(["🎉", "😡", "#DataEngineering", ":)"]))
    return " ".join(words)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rng = random.Random(3)
    distinct = [_tweet(rng) for _ in range(150)]
    # reposts, a post twice with different links, and an empty post
    links = [f"{distinct[0]} https://example.com/{n}" for n in ("a", "b")]
    return distinct + distinct[:20] + links + [""]


def _tokenizer(folder: Path, corpus: list[str]):
    """A RoBERTa tokenizer of 1,000 tokens trained on `corpus`, saved into the new `folder`."""
    folder.mkdir()
    return save_tokenizer(folder, corpus, vocab_size=1000, max_length=128)


def _build(
    folder: Path, labels: tuple[str, ...], multi_label: bool, corpus: list[str], seed: int = 0
) -> Path:
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    tokenizer = _tokenizer(folder, corpus)
    config = RobertaConfig(
        vocab_size=1000,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type="multi_label_classification" if multi_label else "single_label_classification",
        initializer_range=0.1,  # wider than the default: outputs that depend more on the text
    )
    torch.manual_seed(seed)
    model = RobertaForSequenceClassification(config).eval()
    # A random model gives nearly every text the same label. Scale the output layer so that each
    # logit spreads over the corpus like a trained model's (mean 0, standard deviation 3).
    encoded = tokenizer(corpus, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        cls = model.roberta(**encoded).last_hidden_state[:, 0]
        logits = torch.tanh(model.classifier.dense(cls)) @ model.classifier.out_proj.weight.T
        scale = 3 / logits.std(0)
        model.classifier.out_proj.weight.mul_(scale[:, None])
        model.classifier.out_proj.bias.copy_(-logits.mean(0) * scale)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return [_tweet(random.Random(seed)) for seed in range(400)]


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory, corpus: list[str]) -> TweetnlpConfig:
    root = tmp_path_factory.mktemp("tweetnlp-models")
    return TweetnlpConfig(
        sentiment_model=str(_build(root / "sentiment", SENTIMENT_LABELS, False, corpus)),
        topic_model=str(_build(root / "topic", TOPIC_LABELS, True, corpus, seed=1)),
        precision="fp32",
    )


@pytest.fixture(scope="module")
def other_models(
    tmp_path_factory: pytest.TempPathFactory, corpus: list[str], models: TweetnlpConfig
) -> TweetnlpConfig:
    """The same topic model with another sentiment model: another model id."""
    folder = tmp_path_factory.mktemp("tweetnlp-other") / "sentiment"
    return TweetnlpConfig(
        str(_build(folder, SENTIMENT_LABELS, False, corpus, seed=2)), models.topic_model, "fp32"
    )


@pytest.fixture(scope="module")
def backend(models: TweetnlpConfig) -> TweetnlpBackend:
    return load_backend("tweetnlp", device="cpu", tweetnlp=models)


@pytest.fixture(scope="module")
def tweetnlp_models(models: TweetnlpConfig) -> dict:
    import tweetnlp

    return {
        "sentiment": tweetnlp.load_model("sentiment", model_name=models.sentiment_model),
        "topic_classification": tweetnlp.load_model(
            "topic_classification", model_name=models.topic_model
        ),
    }


def test_tweetnlp_default_models_are_tweetnlps_own() -> None:
    from tweetnlp.text_classification.model import MODEL_LIST

    assert DEFAULT_MODELS == {
        "sentiment": MODEL_LIST["sentiment"]["default"],
        "topic_classification": MODEL_LIST["topic_classification"]["multi_label"],
    }


@pytest.mark.parametrize("task", ["sentiment", "topic_classification"])
def test_tweetnlp_fp32_engine_equals_tweetnlp_predict(
    backend: TweetnlpBackend, tweetnlp_models: dict, texts: list[str], task: str
) -> None:
    probabilities, labels = backend.probabilities(task, texts)
    # the original style: one text at a time through tweetnlp's own predict
    expected = [tweetnlp_models[task].predict(t, return_probability=True) for t in texts]
    assert probabilities.shape == (len(texts), len(labels))
    for row, want in zip(probabilities, expected, strict=True):
        np.testing.assert_allclose(
            row, [want["probability"][label] for label in labels], atol=1e-4, rtol=0
        )
    if task == "sentiment":
        assert [labels[i] for i in probabilities.argmax(axis=1)] == [w["label"] for w in expected]
        assert len({w["label"] for w in expected}) > 1  # the tiny model does discriminate
    else:
        got = [{labels[i] for i in np.flatnonzero(row > 0.5)} for row in probabilities]
        assert got == [set(w["label"]) for w in expected]


def test_tweetnlp_rows_follow_the_schema_and_tweetnlps_labels(
    backend: TweetnlpBackend, tweetnlp_models: dict, texts: list[str]
) -> None:
    table = backend.classify(texts)
    assert table.schema.equals(NLP_RESULT_SCHEMA)
    sentiment = tweetnlp_models["sentiment"].predict(texts, return_probability=True)
    topics = tweetnlp_models["topic_classification"].predict(texts, return_probability=True)
    for text, row, s, t in zip(texts, table.to_pylist(), sentiment, topics, strict=True):
        assert row["sentiment"] == s["label"]
        assert row["sentiment_score"] == pytest.approx(max(s["probability"].values()), abs=1e-4)
        assert set(row["topics"]) == set(t["label"])
        assert row["topic"] == max(t["probability"], key=t["probability"].get)
        assert row["topic_score"] == pytest.approx(max(t["probability"].values()), abs=1e-4)
        scores = [t["probability"][label] for label in row["topics"]]
        assert scores == sorted(scores, reverse=True)
        assert row["entities"] == find_entities(text)
        assert row["model_id"] == backend.model_id
    assert backend.classify([]).num_rows == 0


def test_tweetnlp_model_id_names_the_models_and_the_precision(
    backend: TweetnlpBackend, models: TweetnlpConfig, other_models: TweetnlpConfig, tmp_path: Path
) -> None:
    assert backend.model_id.startswith("tweetnlp-0.4.5/sentiment@")
    assert "+topic@" in backend.model_id and "/fp32+gazetteer-" in backend.model_id
    assert TweetnlpBackend(models, device="cpu").model_id == backend.model_id
    assert TweetnlpBackend(other_models).model_id != backend.model_id
    # a copy of the folder is the same model; a changed tokenizer is not
    copy = tmp_path / "copy" / Path(models.sentiment_model).name
    shutil.copytree(models.sentiment_model, copy)
    moved = dataclasses.replace(models, sentiment_model=str(copy))
    assert TweetnlpBackend(moved, device="cpu").model_id == backend.model_id
    special = copy / "special_tokens_map.json"
    special.write_text(special.read_text().replace("<mask>", "<MASK>"))
    assert TweetnlpBackend(moved, device="cpu").model_id != backend.model_id


def test_tweetnlp_preprocessing_is_tweetnlps_own(
    backend: TweetnlpBackend, texts: list[str]
) -> None:
    from tweetnlp.util import get_preprocessor

    backend._load()
    tricky = [
        "see example.com and https://x.org/a?b=1, @Someone @ABC1",
        "v2.0 is out... e.g. 3.5x faster!",
        "ping 10.0.0.1 or LocalHost:8080 now",
        "Münich.de and bücher.рф",
        "@User7: no links. None at all.",
        "",
    ]
    for task, kind in (("sentiment", None), ("topic_classification", "tweet_topic")):
        engine, _ = backend._engines[task]
        reference = get_preprocessor(kind)
        assert [engine._preprocess(t) for t in texts + tricky] == [
            reference(t) for t in texts + tricky
        ]
    assert backend._engines["topic_classification"][0]._preprocess(tricky[0]) == (
        "see {{URL}} and {{URL}} @Someone {@ABC1@}"
    )


def test_tweetnlp_link_search_finds_what_urlextract_finds() -> None:
    """The faster top-level-domain search gives URLExtract's own matches, on tricky texts."""
    from urlextract import URLExtract

    pattern = URLExtract()._tlds_re
    fast = _TldsAtStarts(pattern)
    rng = random.Random(5)
    # dots, case, digits, "localhost", and characters the pattern's IGNORECASE folds (K, ſ)
    alphabet = "aAbcoOmMkK\u212a\u017f.lLocalhost0123456789/:@ -_\u00fc\u3002"
    texts = ["".join(rng.choices(alphabet, k=rng.randrange(60))) for _ in range(3000)] + [
        "LOCALHOST.COM", "localho\u017ft:80", "x.ComPANY", "1.2.3.4.5.6", "a..com", ".com.co.uk",
        "localhostlocalhost.org", "v2.0 e.g. www.Example.DE/x", "",
    ]
    assert [fast.findall(t) for t in texts] == [pattern.findall(t) for t in texts]
    assert sum(bool(pattern.findall(t)) for t in texts) > 500  # many texts do have matches


@contextmanager
def _batch_rows(engine: Engine) -> Iterator[list[int]]:
    """The rows of every batch the engine's model runs while in the block."""
    rows: list[int] = []
    hook = engine._model.register_forward_hook(
        lambda module, args, kwargs, output: rows.append(kwargs["input_ids"].shape[0]),
        with_kwargs=True,
    )
    try:
        yield rows
    finally:
        hook.remove()


def _python(code: str, *args: str, **run: object) -> subprocess.CompletedProcess:
    """``code`` run by a fresh interpreter of this one, in the repository, warnings off."""
    command = [sys.executable, "-W", "ignore", "-c", code, *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, **run)


def test_tweetnlp_identical_texts_run_through_the_model_once(
    backend: TweetnlpBackend, texts: list[str]
) -> None:
    backend._load()
    engine, _ = backend._engines["sentiment"]
    with _batch_rows(engine) as seen:
        engine.probabilities(texts)
    # reposts, and posts that differ only in a link (tweetnlp reads every link as "http")
    assert engine._preprocess("ok https://a.com/1") == engine._preprocess("ok https://b.org")
    assert sum(seen) == len({engine._preprocess(t) for t in texts}) < len(set(texts))


def test_tweetnlp_batches_fit_the_token_budget_and_pad_right() -> None:
    lengths = np.array([2, 3, 3, 5, 8, 8, 9, 20])
    stops = _batch_stops(lengths, 16)
    starts = [0, *stops[:-1]]
    assert stops[-1] == len(lengths)
    for start, stop in zip(starts, stops, strict=True):
        assert (stop - start) * lengths[stop - 1] <= 16 or stop - start == 1
    assert stops == [3, 5, 6, 7, 8]
    flat = np.arange(1, lengths.sum() + 1)
    ids, mask = _pad(flat, lengths, np.cumsum(lengths), 1, 4, pad_id=0)
    assert ids.tolist() == [[3, 4, 5, 0, 0], [6, 7, 8, 0, 0], [9, 10, 11, 12, 13]]
    assert mask.tolist() == (ids > 0).astype(int).tolist()
    segments = _gather(np.arange(10), np.array([5, 0, 9]), np.array([2, 3, 1]))
    assert segments.tolist() == [5, 6, 0, 1, 2, 9]


def test_tweetnlp_worker_processes_give_the_same_probabilities(
    backend: TweetnlpBackend, texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Texts prepared by two worker processes, 16 a part (reposts and link variants fall in other
    parts than their first): the same probabilities, each distinct text through the model once."""
    backend._load()
    base, _ = backend._engines["sentiment"]
    monkeypatch.setattr(engine_module, "PART_TEXTS", 16)
    engine = Engine(base._model, base._tokenizer, base._preprocess, multi_label=False,
                    precision="fp32", workers=2)
    try:
        with _batch_rows(engine) as seen:
            parallel = engine.probabilities(texts)
        workers = {process.pid for process in engine._pool._processes.values()}
    finally:
        engine.close()
    assert len(workers) == 2 and os.getpid() not in workers
    assert len(seen) >= len(texts) // 16  # a batch per part at least
    assert sum(seen) == len({base._preprocess(t) for t in texts})
    alone = base.probabilities(texts)
    np.testing.assert_allclose(parallel, alone, atol=1e-5, rtol=0)
    assert (parallel.argmax(axis=1) == alone.argmax(axis=1)).all()
    assert engine.probabilities([]).shape == (0, 3)
    # an engine dropped without close() (a backend at the end of an analyze run in a long-lived
    # Prefect worker) does not leave its processes behind
    dropped = Engine(base._model, base._tokenizer, base._preprocess, multi_label=False, workers=1)
    dropped.probabilities(texts[:20])
    (pid,) = [process.pid for process in dropped._pool._processes.values()]
    del dropped
    gc.collect()
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists()


def test_tweetnlp_backend_with_workers_gives_the_same_rows(
    backend: TweetnlpBackend, models: TweetnlpConfig, texts: list[str]
) -> None:
    """As on a GPU machine: texts and the gazetteer's entities done by worker processes."""
    parallel = TweetnlpBackend(models, device="cpu", workers=2)
    try:
        found, expected = parallel.classify(texts), backend.classify(texts)
    finally:
        for engine, _ in parallel._engines.values():
            engine.close()
    for name in ("sentiment", "topic", "topics", "entities", "model_id"):
        assert found.column(name).equals(expected.column(name)), name
    for name in ("sentiment_score", "topic_score"):
        np.testing.assert_allclose(found.column(name), expected.column(name), atol=1e-5)


def test_tweetnlp_workers_end_quietly_with_the_program(models: TweetnlpConfig) -> None:
    """A program that never closes its backend ends cleanly, its workers stopped."""
    code = (
        "import sys\n"
        "from flows.nlp.tweetnlp.settings import TweetnlpConfig\n"
        "from flows.nlp.tweetnlp.backend import TweetnlpBackend\n"
        "settings = TweetnlpConfig(sys.argv[1], sys.argv[2], 'fp32')\n"
        "backend = TweetnlpBackend(settings, device='cpu', workers=2)\n"
        "print(backend.classify(['dbt runs on duckdb', 'so slow']).num_rows)\n"
    )
    out = _python(code, models.sentiment_model, models.topic_model)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2"]
    assert "Exception ignored" not in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_tweetnlp_import_leaves_the_tokenizer_parallel() -> None:
    """tweetnlp turns the Rust tokenizer's threads off when imported; the backend's import does
    not let it (the reload shows that tweetnlp still would)."""
    code = (
        "import importlib, os\n"
        "from flows.nlp.tweetnlp.patches import import_tweetnlp\n"
        "import_tweetnlp()\n"
        "print(os.environ.get('TOKENIZERS_PARALLELISM'))\n"
        "importlib.reload(importlib.import_module('tweetnlp.text_classification.trainer'))\n"
        "print(os.environ.get('TOKENIZERS_PARALLELISM'))\n"
    )
    out = _python(code, env={k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "false"]


def test_tweetnlp_streams_through_classify_texts(
    backend: TweetnlpBackend, texts: list[str]
) -> None:
    whole = backend.classify(texts)
    chunks = list(classify_texts(backend, texts, chunk_size=64))
    assert [c.num_rows for c in chunks] == [64, 64, len(texts) - 128]
    assert pa.concat_tables(chunks).column("sentiment").equals(whole.column("sentiment"))


def test_tweetnlp_switching_model_adds_results_and_views_pick_the_newest(
    backend: TweetnlpBackend, other_models: TweetnlpConfig, tmp_path: Path
) -> None:
    posts = make_posts(range(30))
    other = TweetnlpBackend(other_models)
    with DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout=5) as warehouse:
        warehouse.load_posts(posts)
        assert analyse_posts(posts, backend, warehouse).num_rows == 30
        assert analyse_posts(posts, backend, warehouse).num_rows == 0  # classified once
        assert analyse_posts(posts, other, warehouse).num_rows == 30
        counts = warehouse.query(
            "SELECT model_id, COUNT(*) AS n FROM post_nlp GROUP BY model_id ORDER BY model_id"
        ).to_pylist()
        assert {row["model_id"]: row["n"] for row in counts} == {
            backend.model_id: 30,
            other.model_id: 30,
        }
        shown = warehouse.query("SELECT DISTINCT model_id FROM posts_enriched").to_pylist()
    assert shown == [{"model_id": other.model_id}]


def test_tweetnlp_a_folder_without_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="no config.json"):
        locate(str(tmp_path))


def test_tweetnlp_settings_are_read_and_checked(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text(
        "[tweetnlp]\nsentiment_model = /models/s\nprecision = bf16\ntoken_budget = 8192\n"
    )
    settings = load_config(conf).tweetnlp
    assert settings == TweetnlpConfig("/models/s", "", "bf16", 8192)
    conf.write_text("[tweetnlp]\nprecision = int4\n")
    with pytest.raises(ConfigError, match=r"\[tweetnlp\] precision"):
        load_config(conf)


def _offline_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "HF_HOME": str(cwd / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": path}
    command = [sys.executable, "-m", "flows", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_tweetnlp_offline_without_models_says_how_to_get_them(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("hello\n")
    out = _offline_cli("classify", "in.txt", "out.csv", "--backend", "tweetnlp", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "twitter-roberta-base-sentiment-latest" in out.stderr
    assert "python -m flows download-models" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "out.csv").exists()
    out = _offline_cli("download-models", cwd=tmp_path)
    assert out.returncode == 2 and "cannot download cardiffnlp/" in out.stderr, out.stderr


def test_a_model_folder_that_is_not_there_is_named(tmp_path: Path, models: TweetnlpConfig) -> None:
    (tmp_path / "in.txt").write_text("hello\n")
    missing = "models/cardiffnlp--twitter-roberta-base-sentiment-latest"  # no such folder here
    (tmp_path / "c.conf").write_text(f"[tweetnlp]\nsentiment_model = {missing}\n")
    out = _offline_cli("classify", "in.txt", "out.csv", "--backend", "tweetnlp", "--config",
                       "c.conf", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{tmp_path / missing}: no such model folder" in out.stderr, out.stderr
    # download-models names each model's own setting, the NER one too
    (tmp_path / "c.conf").write_text(
        f"[tweetnlp]\nsentiment_model = {models.sentiment_model}\n"
        f"topic_model = {models.topic_model}\nner_model = {models.sentiment_model}\n"
    )
    out = _offline_cli("download-models", "--dir", "m", "--config", "c.conf", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"ner: {models.sentiment_model}  ([tweetnlp] ner_model = " in out.stdout
    assert f"topic_classification: {models.topic_model}  ([tweetnlp] topic_model = " in out.stdout


def test_tweetnlp_classify_command_reads_the_models_from_the_configuration(
    tmp_path: Path, models: TweetnlpConfig
) -> None:
    (tmp_path / "in.txt").write_text("love this release\nhate this outage on bigquery\n")
    (tmp_path / "c.conf").write_text(
        f"[tweetnlp]\nsentiment_model = {models.sentiment_model}\n"
        f"topic_model = {models.topic_model}\n"
    )
    out = _offline_cli(
        "classify", "in.txt", "out.jsonl", "--backend", "tweetnlp", "--device", "cpu",
        "--config", "c.conf", cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["text"] for row in rows] == ["love this release", "hate this outage on bigquery"]
    assert all(row["model_id"].startswith("tweetnlp-0.4.5/sentiment@") for row in rows)
    assert rows[1]["entities"] == [{"text": "BigQuery", "type": "product"}]


def test_tweetnlp_engine_refuses_precisions_the_device_cannot_run(backend: TweetnlpBackend) -> None:
    backend._load()
    engine, _ = backend._engines["sentiment"]
    with pytest.raises(ValueError, match="GPU path"):
        Engine(engine._model, engine._tokenizer, str, multi_label=False, precision="fp16")
    with pytest.raises(BackendUnavailable, match="precision"):
        TweetnlpBackend(TweetnlpConfig(precision="fp16"), device="cpu")


def _build_ner(folder: Path, corpus: list[str]) -> Path:
    """A tiny token classifier with a CRF in its config, as tner's tweetner7 models have."""
    import torch
    from transformers import RobertaForTokenClassification

    _tokenizer(folder, corpus)
    torch.manual_seed(3)
    config = tner_config(
        vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=130, initializer_range=0.1,
    )
    model = RobertaForTokenClassification(config).eval()
    with torch.no_grad():  # logits spread like a trained model's, so that entities come out
        model.classifier.weight.mul_(30)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def ner_backend(tmp_path_factory, corpus: list[str], models: TweetnlpConfig) -> TweetnlpBackend:
    folder = _build_ner(tmp_path_factory.mktemp("tweetnlp-ner") / "ner", corpus)
    settings = dataclasses.replace(models, ner_model=str(folder))
    return load_backend("tweetnlp", device="cpu", tweetnlp=settings)


def test_tweetnlp_ner_entities_equal_tweetnlp_predict_one_text_at_a_time(
    ner_backend: TweetnlpBackend, backend: TweetnlpBackend, texts: list[str]
) -> None:
    import tweetnlp

    found = ner_backend.entities(texts)
    # the original style: tweetnlp's NER, one text at a time
    ner = tweetnlp.load_model("ner", model_name=str(ner_backend.ner_folder))
    expected = [
        [{"text": e["entity"].strip(), "type": e["type"]} for e in ner.predict(text)]
        for text in texts
    ]
    assert found == expected
    assert sum(len(e) for e in found) > len(texts) // 4  # the tiny model does find entities
    assert {e["type"] for entities in found for e in entities} <= set(TYPES)
    rows = ner_backend.classify(texts[:5])
    assert rows.column("entities").to_pylist() == found[:5]
    # the model id says which entities: another id than the gazetteer's, so both can coexist
    assert "+ner-ner@" in ner_backend.model_id and "+gazetteer-" in backend.model_id
    assert ner_backend.model_id.split("+")[0] == backend.model_id.split("+")[0]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="no CUDA device here")
def test_tweetnlp_cuda_batches_never_wait_for_the_gpu(
    models: TweetnlpConfig, texts: list[str]
) -> None:
    """Between batches the host only queues work: any call that waits for the GPU (a copy from
    ordinary memory, a question about a tensor's values) raises in sync-debug mode."""
    import torch

    backend = TweetnlpBackend(dataclasses.replace(models, precision="auto"), device="cuda")
    backend._load()
    engine, labels = backend._engines["sentiment"]
    expected = engine.probabilities(texts)  # warm: allocator, kernels, worker processes
    out = torch.empty((len(texts), len(labels)), device="cuda")
    parts = list(engine.encode_parts(texts))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for start, (prepared, flat, lengths) in parts:
            engine._classify(flat, lengths, np.arange(len(prepared)), start, out)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    # bf16 kernels may round differently in other batch shapes: the labels, not the digits
    assert (out.cpu().numpy().argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.95
