"""`[tweetnlp]`: the settings of the tweetnlp backend, declared here as sources declare theirs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TweetnlpConfig:
    """`[tweetnlp]`: the models of the tweetnlp NLP backend and how they run."""

    # a Hugging Face model name or a local folder; empty: tweetnlp's default model for the task
    sentiment_model: str = ""
    topic_model: str = ""
    precision: str = "auto"  # see flows.nlp.engine
    token_budget: int = 0  # padded tokens per batch; 0: 1024 on CPU, 65536 on CUDA
    # named entities through tweetnlp's NER (e.g. tner/roberta-large-tweetner7-all); empty: the
    # gazetteer of data tools and companies
    ner_model: str = ""
