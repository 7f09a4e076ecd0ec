"""Emerging conversations: stable clusters and labels on a fixed set of posts with the real
encoder; the vectors the lite backend classifies with are those stored, and never recomputed;
growth against the window before; the view."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from conftest import EchoBackend

from flows.nlp.backend import EmbeddingBackend
from flows.nlp.conversations import cluster, quantize
from flows.nlp.lite import LiteBackend
from flows.schema import posts_table
from flows.stages.analyze import analyse_posts
from flows.stages import conversations as stages_conversations
from flows.stages.conversations import update_conversations
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse
from test_warehouse_duckdb import post

THEMES = {
    "outage": [
        "The cloud outage took our pipelines down again",
        "Another region outage, dashboards stale all morning",
        "Outage postmortem: the storage layer failed first",
        "Still waiting for the provider to fix the outage",
        "Our on-call night was ruined by the cloud outage",
        "Outage update: services slowly coming back",
    ],
    "iceberg": [
        "Migrating our tables to Apache Iceberg this quarter",
        "Iceberg snapshots make time travel queries easy",
        "Comparing Iceberg and Delta for our lakehouse",
        "Iceberg hidden partitioning saved us a rewrite",
        "Great talk on Iceberg table maintenance",
        "Iceberg catalogs explained in one diagram",
    ],
    "hiring": [
        "We are hiring a senior data engineer in Berlin",
        "Job opening: analytics engineer, remote in Europe",
        "Hiring: data platform engineer, apply today",
        "Our team is hiring two data engineers",
        "New job posted: junior data engineer role",
        "Recruiting data engineers for our Lisbon office",
    ],
}
TEXTS = [
    f"{text} #dataengineering ({k})" for theme in THEMES.values() for text in theme for k in range(3)
]


def test_the_real_encoder_gives_the_same_clusters_and_labels_on_fixed_posts():
    vectors = LiteBackend().embed(TEXTS)
    assert vectors.dtype == np.int8 and vectors.shape == (54, 384)
    runs = [cluster(vectors, TEXTS, ["dataengineering"], min_size=5) for _ in range(2)]
    for found in runs:
        assert [c.label for c in found] == [
            "outage · cloud · coming",
            "iceberg · apache · catalogs",
            "data · engineer · hiring",
        ]
        assert [sorted(c.members.tolist()) for c in found] == [
            list(range(0, 18)), list(range(18, 36)), list(range(36, 54))
        ]


def test_the_lite_backend_hands_over_the_vectors_it_classifies_with():
    backend = LiteBackend()
    texts = [*TEXTS[::9], "https://example.invalid/a-link-alone @someone"]
    table = backend.classify_embedded(texts)
    assert isinstance(backend, EmbeddingBackend)
    assert table.drop_columns(["embedding"]).equals(backend.classify(texts))
    stored = table.column("embedding").to_pylist()
    assert stored[-1] is None  # no content: classified without the encoder
    vectors = np.frombuffer(b"".join(stored[:-1]), np.int8).reshape(-1, 384)
    assert np.array_equal(vectors, backend.embed(texts[:-1]))


class ThemeEncoder:
    """A vector per theme word, plus a little noise from the text; counts what it embeds."""

    def __init__(self) -> None:
        self.embedded: list[str] = []
        self.axes = {word: np.eye(384)[i] for i, word in enumerate(("outage", "iceberg", "hiring"))}

    def embed(self, texts):
        self.embedded += texts
        rows = []
        for text in texts:
            noise = np.random.default_rng(zlib.crc32(text.encode())).normal(0, 0.05, 384)
            axis = next(a for word, a in self.axes.items() if word in text)
            vector = axis + noise
            rows.append(vector / np.linalg.norm(vector))
        return quantize(np.array(rows))


def themed(theme: str, n: int, day: datetime, first: int) -> list[dict]:
    return [
        post("mastodon", f"{theme}{first + i}", day + timedelta(minutes=9 * i), f"u{i % 4}",
             text=f"{theme} post {first + i}")
        for i in range(n)
    ]


def two_windows() -> list[dict]:
    end = datetime(2026, 11, 21, tzinfo=UTC)
    return (
        themed("outage", 20, end - timedelta(days=10), 0)  # the window before
        + themed("hiring", 20, end - timedelta(days=9), 0)  # fades out
        + themed("outage", 40, end - timedelta(days=3), 100)  # grows
        + themed("iceberg", 30, end - timedelta(days=2), 0)  # new
    )


def test_conversations_grow_against_the_window_before_and_embed_each_post_once(tmp_path):
    encoder = ThemeEncoder()
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        warehouse.load_posts(posts_table(two_windows()))
        assert update_conversations(warehouse, "dataengineering", encoder) == 2
        assert len(encoder.embedded) == 110
        assert update_conversations(warehouse, "dataengineering", encoder) == 2
        assert len(encoder.embedded) == 110  # read back from post_embeddings
        found = warehouse.query(
            "SELECT label, size, previous_size, growth, window_start, window_end,"
            " example_post_ids FROM emerging_conversations ORDER BY label"
        ).to_pylist()
    assert [(c["label"], c["size"], c["previous_size"], c["growth"]) for c in found] == [
        ("iceberg · post", 30, 0, 30),
        ("outage · post", 40, 20, 20),
    ]
    # the week up to midnight after the newest post (19 Nov, 04:21)
    assert {(c["window_start"], c["window_end"]) for c in found} == {
        (datetime(2026, 11, 13, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC))
    }
    assert all(len(c["example_post_ids"]) == 3 for c in found)


class ThemeBackend(EchoBackend):
    """Classifies as EchoBackend and hands over ThemeEncoder's vectors, as the lite backend does;
    embedding a post again fails."""

    def classify_embedded(self, texts):
        vectors = [v.tobytes() for v in ThemeEncoder().embed(texts)]
        return self.classify(texts).append_column("embedding", pa.array(vectors, pa.binary()))

    def embed(self, texts):
        raise AssertionError(f"embedded again: {texts[:3]}")


def test_analysis_stores_the_vectors_it_classified_with_and_conversations_use_them(tmp_path):
    posts = posts_table(two_windows())
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        warehouse.load_posts(posts)
        analyse_posts(posts, ThemeBackend(), warehouse)
        assert warehouse.counts()["post_embeddings"] == posts.num_rows
        assert update_conversations(warehouse, "dataengineering", ThemeBackend()) == 2
        found = warehouse.query("SELECT label, size FROM emerging_conversations ORDER BY label")
    assert found.to_pylist() == [
        {"label": "iceberg · post", "size": 30}, {"label": "outage · post", "size": 40}
    ]


def test_the_dashboard_shows_the_emerging_conversations(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from dashboard import WAREHOUSE_ENV

    test_conversations_grow_against_the_window_before_and_embed_each_post_once(tmp_path)
    monkeypatch.setenv(WAREHOUSE_ENV, f"duckdb:///{tmp_path / 'w.duckdb'}")
    app = AppTest.from_file(str(Path(__file__).parent.parent / "dashboard" / "app.py"))
    app.run(timeout=60)
    assert not app.exception
    assert [h.value for h in app.subheader].count("Emerging conversations") == 1
    shown = next(
        frame.value for frame in app.dataframe if "label" in frame.value.columns
    )
    assert shown[["label", "size", "growth"]].values.tolist() == [
        ["iceberg · post", 30, 30],
        ["outage · post", 40, 20],
    ]


def test_a_window_is_computed_again_only_once_it_has_grown_a_tenth(tmp_path):
    encoder = ThemeEncoder()
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        warehouse.load_posts(posts_table(two_windows()))
        assert update_conversations(warehouse, "dataengineering", encoder) == 2
        computed = "SELECT DISTINCT computed_at FROM conversations"
        first = warehouse.query(computed).column(0).to_pylist()
        end = datetime(2026, 11, 19, 5, tzinfo=UTC)  # in the window, before its newest post
        warehouse.load_posts(posts_table(themed("iceberg", 6, end, 30)))  # 70 → 76: < 10%
        assert update_conversations(warehouse, "dataengineering", encoder) == 2
        assert warehouse.query(computed).column(0).to_pylist() == first
        assert len(encoder.embedded) == 110  # nothing read, nothing embedded
        warehouse.load_posts(posts_table(themed("iceberg", 2, end, 36)))  # 78: 70 × 1.1 = 77
        assert update_conversations(warehouse, "dataengineering", encoder) == 2
        assert len(warehouse.query(computed)) == 2
        assert len(encoder.embedded) == 118  # the new posts only
        latest = warehouse.query(
            "SELECT label, size, window_posts FROM emerging_conversations ORDER BY label"
        ).to_pylist()
    assert latest == [
        {"label": "iceberg · post", "size": 38, "window_posts": 78},
        {"label": "outage · post", "size": 40, "window_posts": 78},
    ]


def test_a_large_window_is_clustered_on_a_fixed_sample_and_sized_to_the_whole(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(stages_conversations, "MAX_POSTS", 50)
    encoder = ThemeEncoder()
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        warehouse.load_posts(posts_table(two_windows()))  # 40 before; 70 now: 50 of them
        assert update_conversations(warehouse, "dataengineering", encoder) == 2
        found = warehouse.query(
            "SELECT label, size, window_posts FROM emerging_conversations ORDER BY label"
        ).to_pylist()
    assert len(encoder.embedded) == 40 + 50
    assert [c["label"] for c in found] == ["iceberg · post", "outage · post"]
    assert all(c["window_posts"] == 70 for c in found)
    # sized to the whole window: near the true 30 and 40, summing to it
    assert abs(found[0]["size"] - 30) <= 5 and abs(found[1]["size"] - 40) <= 5
    assert found[0]["size"] + found[1]["size"] == 70


def test_a_window_without_conversations_is_not_computed_again_and_shows_none(tmp_path):
    encoder = ThemeEncoder()
    day = datetime(2026, 11, 18, tzinfo=UTC)
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        warehouse.load_posts(posts_table(themed("outage", 10, day, 0)))  # too few to cluster
        assert update_conversations(warehouse, "dataengineering", encoder) == 0
        assert update_conversations(warehouse, "dataengineering", encoder) == 0
        computations = warehouse.query("SELECT size, window_posts FROM conversations")
        shown = warehouse.query("SELECT * FROM emerging_conversations")
    assert computations.to_pylist() == [{"size": 0, "window_posts": 10}]  # one, not two
    assert shown.num_rows == 0
