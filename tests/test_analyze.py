"""`analyse_posts`: what a run stopped half-way keeps, and what the next one does."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pytest
from conftest import EchoBackend, make_posts

from flows.nlp.conversations import quantize
from flows.stages import analyze
from flows.stages.collect import collect
from flows.config import load_config
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse
from flows.warehouse.tables import TABLES

NO_ROWS = {table.name: 0 for table in TABLES}  # counts() of an empty warehouse


class StoppingBackend(EchoBackend):
    """Stops the run (as Ctrl+C would) on its `stop_at`-th call."""

    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.stop_at = stop_at

    def classify(self, texts: Sequence[str]) -> pa.Table:
        if len(self.calls) + 1 == self.stop_at:
            raise KeyboardInterrupt
        return super().classify(texts)


def test_a_stopped_run_keeps_what_it_classified_and_the_next_does_the_rest(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(analyze.CHUNK_TEXTS, "cpu", 10)
    monkeypatch.setattr(analyze, "LOAD_EVERY_S", 0.0)  # a load after every chunk
    posts = make_posts(range(50))
    with DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout=5) as warehouse:
        warehouse.load_posts(posts)
        with pytest.raises(KeyboardInterrupt):
            analyze.analyse_posts(posts, StoppingBackend(stop_at=4), warehouse)
        assert warehouse.counts()["post_nlp"] == 30  # three chunks of ten, loaded
        rest = EchoBackend()
        assert analyze.analyse_posts(posts, rest, warehouse).num_rows == 20
        classified = [text for call in rest.calls for text in call]
        assert classified == posts.column("text").to_pylist()[30:]  # only those
        stored = warehouse.query("SELECT post_id FROM post_nlp ORDER BY post_id")
        assert sorted(stored.column(0).to_pylist()) == sorted(posts.column("post_id").to_pylist())


def test_results_wait_for_a_whole_load_interval(tmp_path, monkeypatch):
    monkeypatch.setitem(analyze.CHUNK_TEXTS, "cpu", 10)  # LOAD_EVERY_S stays a minute
    posts = make_posts(range(50))
    with DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout=5) as warehouse:
        warehouse.load_posts(posts)
        with pytest.raises(KeyboardInterrupt):
            analyze.analyse_posts(posts, StoppingBackend(stop_at=4), warehouse)
        assert warehouse.counts()["post_nlp"] == 0  # one load at the end: none yet
        results = analyze.analyse_posts(posts, EchoBackend(), warehouse)
        assert results.column("post_id").equals(posts.column("post_id"))
        assert warehouse.counts()["post_nlp"] == 50


class CountingEncoder:
    """Vectors from a hash of the text, no model; counts the texts it embeds."""

    def __init__(self) -> None:
        self.embedded = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += len(texts)
        rng = [np.random.default_rng(zlib.crc32(text.encode())) for text in texts]
        rows = np.array([r.normal(size=384) for r in rng])
        return quantize(rows / np.linalg.norm(rows, axis=1, keepdims=True))


def test_a_recreated_warehouse_is_filled_again(tmp_path, caplog):
    conf = tmp_path / "c.conf"
    conf.write_text(
        f"[pipeline]\nlake = {tmp_path / 'lake'}\nwarehouse = duckdb:///{tmp_path / 'w.duckdb'}\n"
        "[sample]\nposts = 300\n"
    )
    config = load_config(conf)
    collect(config)
    encoder = CountingEncoder()  # kept across runs, as a long-running caller does
    first = analyze.analyze(config, backend=EchoBackend(), encoder=encoder)
    assert first.posts_loaded == first.analysed > 0
    embedded = encoder.embedded  # the posts of the latest two weeks, for conversations
    assert 0 < embedded <= first.posts_loaded
    (tmp_path / "w.duckdb").unlink()  # dropped, or a new file: the manifest still says loaded
    again = analyze.analyze(config, backend=EchoBackend(), encoder=encoder)
    assert (again.posts_loaded, again.analysed) == (first.posts_loaded, first.analysed)
    assert (first.runs_loaded, again.runs_loaded) == (1, 1)  # the sample run's record, again
    assert again.totals == {
        **NO_ROWS, "posts": first.posts_loaded, "post_nlp": first.analysed, "collection_runs": 1
    }
    assert "holds no posts: loading every lake file into it again" in caplog.text
    assert encoder.embedded == 2 * embedded  # the recreated warehouse had no embeddings either
    # then nothing pending, and nothing embedded again
    assert analyze.analyze(config, backend=EchoBackend(), encoder=encoder).files == 0
    assert encoder.embedded == 2 * embedded
