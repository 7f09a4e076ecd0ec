"""NER benchmark: tweetnlp's NER one text at a time against the backend's same-length batches.

A token classifier of the real architecture (roberta-large's configuration, the 15 BIO tags of
tner's tweetner7 models and a CRF, random weights: they run at the same speed as trained ones) is
built here, saved and loaded through tweetnlp, as the backend loads
``tner/roberta-large-tweetner7-all``; no download. The texts are those of ``bench/nlp.py``. It
measures (a) tweetnlp's ``predict``, one text at a time, and (b) ``ner_entities``, which the
backend runs: batches of texts of one token length (tweetnlp's CRF decodes padding too), fp32.
The last line is one JSON object: device, baseline_posts_per_s, batched_posts_per_s, speedup.

    python -m bench.ner --device cpu              # ~3 minutes on 2 cores
    python -m bench.ner --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench.nlp import save_tokenizer, start_run

TYPES = ("corporation", "creative_work", "event", "group", "location", "person", "product")
TAGS = ("O", *(f"{prefix}-{kind}" for kind in TYPES for prefix in ("B", "I")))
DEFAULTS = {"cpu": (256, 32), "cuda": (50_000, 500)}  # (batched posts, one-at-a-time posts)


def tner_config(**sizes: float) -> object:
    """A ``RobertaConfig`` of these sizes for tner's tweetner7 tags, with a CRF in it as tner saves
    its models (random transitions: seed torch first)."""
    from transformers import RobertaConfig
    from tweetnlp.ner.allennlp_crf import ConditionalRandomField, allowed_transitions

    id2label = dict(enumerate(TAGS))
    crf = ConditionalRandomField(len(TAGS), allowed_transitions("BIO", id2label))
    config = RobertaConfig(
        num_labels=len(TAGS),
        id2label=id2label,
        label2id={tag: i for i, tag in id2label.items()},
        **sizes,
    )
    config.crf_state_dict = {k: v.tolist() for k, v in crf.state_dict().items()}
    return config


def build_ner_model(folder: Path, corpus: list[str]) -> None:
    """A roberta-large-sized NER model with a CRF and a BPE tokenizer, saved into ``folder``."""
    import torch
    from transformers import RobertaForTokenClassification

    save_tokenizer(folder, corpus)
    torch.manual_seed(0)
    config = tner_config(
        vocab_size=50265,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=514,
        type_vocab_size=1,
    )
    RobertaForTokenClassification(config).save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args, texts, posts = start_run(parser, DEFAULTS)

    import torch

    from flows.nlp.tweetnlp.backend import NER_BATCH, _load_ner, ner_entities

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        build_ner_model(Path(folder), texts[:5000])
        ner = _load_ner(Path(folder), args.device)
        print(f"model built and loaded through tweetnlp in {time.perf_counter() - start:.0f} s")
    load = os.getloadavg()[0]
    print(f"{args.device}, {torch.get_num_threads()} threads; load average {load:.2f}")

    baseline = texts[posts:]
    ner.predict(baseline[0])
    start = time.perf_counter()
    for text in baseline:
        ner.predict(text)
    baseline_rate = len(baseline) / (time.perf_counter() - start)
    print(f"(a) tweetnlp NER predict, one text at a time, fp32: {baseline_rate:,.1f} posts/s")

    ner_entities(ner, texts[:16], NER_BATCH[args.device])  # warm-up
    start = time.perf_counter()
    ner_entities(ner, texts[:posts], NER_BATCH[args.device])
    if args.device == "cuda":
        torch.cuda.synchronize()
    batched_rate = posts / (time.perf_counter() - start)
    print(
        f"(b) same-length batches of at most {NER_BATCH[args.device]}, fp32: "
        f"{batched_rate:,.1f} posts/s ({batched_rate * 60:,.0f} posts/min)"
    )
    print(
        json.dumps(
            {
                "device": args.device,
                "baseline_posts_per_s": round(baseline_rate, 2),
                "batched_posts_per_s": round(batched_rate, 2),
                "speedup": round(batched_rate / baseline_rate, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
