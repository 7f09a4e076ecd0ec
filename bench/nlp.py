"""NLP benchmark: tweetnlp's own ``predict``, one text at a time, against our engine, and the bound.

A classifier of the real architecture (roberta-base's configuration, 3 labels, random weights: they
run at the same speed as trained ones) is built here, saved to a temporary folder and loaded
through tweetnlp, as the backend loads a real model; no download. Texts are tweet-like: about 40
tokens on average, 8 to 128, all distinct (reposts cost nothing and are not counted). It measures,
in one run:

(a) the original style: tweetnlp's ``predict``, one text at a time, fp32;
(b) our engine (``flows.nlp.engine``), preprocessing and tokenization included;
(c) the machine's bound: the best FLOP/s of a plain matrix multiply of the model's commonest
    shape, (tokens × 768) @ (768 × 3072), over batch sizes of tokens a run would use (in the
    engine's precision), divided by the model's FLOP per post; and, where the engine runs bf16
    (``auto`` on a GPU, or on a CPU with bf16 instructions), the fp32 bound as well;
(d) the whole tweetnlp backend as ``analyze`` runs it: this model and a topic model of the same
    size, the gazetteer's entities and the result rows, through ``classify_texts``.

The last line is one JSON object: device, cpu_kernels (PyTorch's: AVX2, AVX512...), precision,
baseline_posts_per_s, engine_posts_per_s, speedup, bound_posts_per_s, efficiency (engine / bound),
fp32_bound_posts_per_s, of_fp32_bound (engine / fp32 bound), cpu_side_posts_per_s (preprocessing
and tokenization alone, in the engine's worker processes where it has them: what a GPU waits for)
and backend_posts_per_s (d).

    python -m bench.nlp --device cpu              # ~4 minutes on 2 cores
    python -m bench.nlp --device cuda             # one GPU
    python -m bench.nlp --device cpu --precision fp32 --posts 256
    python -m bench.nlp --device cpu --precision fp32 --isa avx2   # an AVX2 CPU's code paths
    python -m bench.nlp --device cuda --profile   # and the top kernels, how busy the GPU is
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from flows.schema import SENTIMENT_LABELS, TOPIC_LABELS

# roberta-base
HIDDEN, LAYERS, HEADS, FFN, VOCAB = 768, 12, 12, 3072, 50265
DEFAULTS = {"cpu": (512, 64), "cuda": (200_000, 1000)}  # (engine posts, baseline posts)
# Tokens per batch the bound's matrix multiply is timed at; the best counts. A CPU is fastest at a
# thousand or two (at 4,096 the operands outgrow its caches: 10% slower), a GPU at the largest.
BOUND_TOKENS = {"cpu": (512, 1024, 2048, 4096), "cuda": (4096, 16384, 65536)}
# What limits MKL, oneDNN and PyTorch's own kernels to an older instruction set: `--isa avx2`
# measures the default VM's (AVX2) code paths on an AVX-512 CPU.
ISA_ENVIRONMENT = {
    "avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "ATEN_CPU_CAPABILITY": "avx2"},
}
WORDS = (
    "data pipeline dbt airflow dagster kafka spark duckdb bigquery warehouse lake love hate great "
    "awful broken fixed release today tomorrow team query model cost fast slow why how really the "
    "a to of and is in it for on with this that was be at so just we our new now you your all"
).split()


def tweet_like(rng: random.Random) -> str:
    """A text of about 8-128 tokens, mean ~40, sometimes with a mention, a link or a hashtag."""
    count = min(120, max(2, int(rng.lognormvariate(3.3, 0.6))))
    words = [rng.choice(WORDS) for _ in range(count)]
    if rng.random() < 0.3:
        words.insert(0, f"@user{rng.randrange(10_000)}")
    if rng.random() < 0.3:
        words.append(f"https://example.com/{rng.randrange(10**6)}")
    if rng.random() < 0.3:
        words.append(f"#{rng.choice(WORDS)}{rng.randrange(100)}")
    words.append(str(rng.randrange(10**9)))  # every text distinct
    return " ".join(words)


def save_tokenizer(
    folder: Path, corpus: list[str], vocab_size: int = 2000, max_length: int = 512
) -> object:
    """A RoBERTa byte-level BPE tokenizer trained on ``corpus``, saved into ``folder``; returned."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus, vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    bpe.save_model(str(folder))
    tokenizer = RobertaTokenizerFast.from_pretrained(folder, model_max_length=max_length)
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_model(
    folder: Path, corpus: list[str], labels: tuple[str, ...] = SENTIMENT_LABELS, multi_label=False
) -> None:
    """A roberta-base-sized classifier with random weights and a BPE tokenizer: sentiment's three
    labels (softmax) by default, or the topics' (``multi_label``: sigmoid)."""
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    save_tokenizer(folder, corpus)
    config = RobertaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        max_position_embeddings=514,
        type_vocab_size=1,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type="multi_label_classification" if multi_label else "single_label_classification",
    )
    torch.manual_seed(0)
    RobertaForSequenceClassification(config).save_pretrained(folder)


def flop_per_post(tokens: np.ndarray) -> float:
    """Multiply-adds ×2 of the encoder for texts of these token counts, on average."""
    dense = 2 * tokens * LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)
    attention = 2 * LAYERS * 2 * tokens.astype(np.float64) ** 2 * HIDDEN  # QKᵀ and AV
    return float((dense + attention).mean())


def matmul_flops(device: str, dtype: object, tokens: int, seconds: float = 2.0) -> float:
    """FLOP/s of (tokens × 768) @ (768 × 3072), the encoder's commonest shape."""
    import torch

    a = torch.randn(tokens, HIDDEN, device=device, dtype=dtype)
    b = torch.randn(HIDDEN, FFN, device=device, dtype=dtype)
    synchronize = torch.cuda.synchronize if device == "cuda" else lambda: None
    for _ in range(3):
        a @ b
    synchronize()
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            a @ b
        runs += 10
        synchronize()
    return 2 * tokens * HIDDEN * FFN * runs / (time.perf_counter() - start)


def start_run(
    parser: argparse.ArgumentParser, defaults: dict[str, tuple[int, int]]
) -> tuple[argparse.Namespace, list[str], int]:
    """The common start of the NLP benchmarks: ``--device``, ``--posts`` and ``--baseline-posts``
    added to ``parser`` and parsed (``defaults``: per device, posts and baseline posts), no network,
    torch's threads limited on the CPU. Returns the options, the texts (the posts, then the
    baseline's) and how many posts."""
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--posts", type=int, default=None, help="texts through the fast path")
    parser.add_argument("--baseline-posts", type=int, default=None, help="texts one at a time")
    parser.add_argument(
        "--isa", choices=sorted(ISA_ENVIRONMENT), default=None,
        help="run as on a CPU with only these instructions (a newer CPU measures an older one's "
        "code paths: MKL, oneDNN and PyTorch's kernels are told to use no more)",
    )
    args = parser.parse_args()
    if args.isa and any(os.environ.get(k) != v for k, v in ISA_ENVIRONMENT[args.isa].items()):
        # the libraries read these when they load: start again with them set
        os.environ.update(ISA_ENVIRONMENT[args.isa])
        spec = sys.modules["__main__"].__spec__
        again = ["-m", spec.name] if spec else [sys.argv[0]]
        os.execv(sys.executable, [sys.executable, *again, *sys.argv[1:]])
    posts, baseline_posts = defaults[args.device]
    posts, baseline_posts = args.posts or posts, args.baseline_posts or baseline_posts
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.device == "cpu":
        from flows.nlp.engine import limit_torch_threads

        limit_torch_threads()
    rng = random.Random(1)
    return args, [tweet_like(rng) for _ in range(posts + baseline_posts)], posts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16 or fp16")
    parser.add_argument("--token-budget", type=int, default=0, help="0: the engine's default")
    parser.add_argument(
        "--workers", type=int, default=None, help="processes preparing texts; default: the engine's"
    )
    parser.add_argument(
        "--profile", action="store_true", help="the engine's top operations; how busy the GPU is"
    )
    parser.add_argument(
        "--compile", action="store_true", help="experiment: the engine's model via torch.compile"
    )
    args, texts, posts = start_run(parser, DEFAULTS)
    with tempfile.TemporaryDirectory() as folder:
        run(args, texts, posts, Path(folder))


def run(args: argparse.Namespace, texts: list[str], posts: int, folder: Path) -> None:
    """(a), (b), the engine's CPU side, (c) and (d), models built in ``folder``; the JSON line."""
    import torch

    from flows.nlp.engine import Engine
    from flows.nlp.tweetnlp.patches import import_tweetnlp, speed_up_link_search

    start = time.perf_counter()
    build_model(folder / "sentiment", texts[:5000])
    classifier = import_tweetnlp().load_model("sentiment", model_name=str(folder / "sentiment"))
    classifier.model.to(args.device)
    classifier.device = torch.device(args.device)
    print(f"model built and loaded through tweetnlp in {time.perf_counter() - start:.0f} s")

    tokens = np.array([len(ids) for ids in classifier.tokenizer(texts[:posts], truncation=True,
                                                                 max_length=128)["input_ids"]])
    print(
        f"{args.device} ({torch.backends.cpu.get_cpu_capability()} kernels), "
        f"{torch.get_num_threads()} threads; {posts:,} texts of {tokens.mean():.1f} "
        f"tokens on average ({tokens.min()}-{tokens.max()}); load average {os.getloadavg()[0]:.2f}"
    )

    baseline = texts[posts:]
    classifier.predict(baseline[0])
    start = time.perf_counter()
    for text in baseline:
        classifier.predict(text, return_probability=True)
    baseline_rate = len(baseline) / (time.perf_counter() - start)
    print(f"(a) tweetnlp predict, one text at a time, fp32: {baseline_rate:,.1f} posts/s")

    speed_up_link_search(classifier.preprocess)  # as the backend does
    engine = Engine(
        classifier.model,
        classifier.tokenizer,
        classifier.preprocess,
        multi_label=False,
        device=args.device,
        precision=args.precision,
        token_budget=args.token_budget,
        workers=args.workers,
    )
    if args.compile:
        # an experiment, not the engine's path: shapes symbolic, so one compilation serves all
        engine._model = torch.compile(engine._model, dynamic=True)
    for warm_up in (texts[:64], texts[: min(posts, 4096)] if args.compile else []):
        engine.probabilities(warm_up)  # allocator, kernels, workers; compilation
    if args.device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    engine.probabilities(texts[:posts])
    engine_rate = posts / (time.perf_counter() - start)
    print(
        f"(b) engine, {engine.precision}, token budget {engine.token_budget}"
        f"{', torch.compile' if args.compile else ''}: "
        f"{engine_rate:,.1f} posts/s ({engine_rate * 60:,.0f} posts/min)"
    )
    if args.profile:
        print_profile(engine, texts[: min(posts, 20_000)], args.device)
    # What a GPU waits for: preprocessing and tokenization, in the engine's worker processes or
    # in this one; over at least 20,000 texts (the texts again if fewer), which it does not dedupe.
    sample = (texts[:posts] * (20_000 // posts + 1))[: max(posts, 20_000)]
    ways = {"in this process": 0} | (
        {f"in {engine.workers} worker processes": engine.workers} if engine.workers else {}
    )
    rates = {}
    for name, workers in ways.items():
        engine.workers = workers
        start = time.perf_counter()
        for _ in engine.encode_parts(sample):
            pass
        rates[name] = len(sample) / (time.perf_counter() - start)
    cpu_side = rates[name]  # the engine's own way, the last
    print(
        "    its CPU side, preprocessing and tokenization: "
        + "; ".join(f"{name} {rate:,.0f} texts/s" for name, rate in rates.items())
    )
    engine.close()

    bounds = {}
    for precision in dict.fromkeys((engine.precision, "fp32")):
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
        flops = max(matmul_flops(args.device, dtype, rows) for rows in BOUND_TOKENS[args.device])
        bounds[precision] = flops / flop_per_post(tokens)
        print(
            f"(c) bound: {flops / 1e9:,.0f} GFLOP/s ({precision} matmul) / "
            f"{flop_per_post(tokens) / 1e9:.2f} GFLOP per post = {bounds[precision]:,.1f} posts/s; "
            f"the engine runs at {engine_rate / bounds[precision]:.1%} of it"
        )
    precision, bound = engine.precision, bounds[engine.precision]
    del classifier, engine  # the GPU memory, for (d)
    backend_rate = backend_posts_per_s(args, folder, texts[:posts])
    print(
        f"(d) the whole backend as analyze runs it (two models, entities, rows): "
        f"{backend_rate:,.1f} posts/s ({backend_rate * 60:,.0f} posts/min)"
    )
    print(
        json.dumps(
            {
                "device": args.device,
                "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
                "precision": precision,
                "baseline_posts_per_s": round(baseline_rate, 2),
                "engine_posts_per_s": round(engine_rate, 2),
                "speedup": round(engine_rate / baseline_rate, 2),
                "bound_posts_per_s": round(bound, 2),
                "efficiency": round(engine_rate / bound, 3),
                "fp32_bound_posts_per_s": round(bounds["fp32"], 2),
                "of_fp32_bound": round(engine_rate / bounds["fp32"], 3),
                "cpu_side_posts_per_s": round(cpu_side),
                "backend_posts_per_s": round(backend_rate, 2),
            }
        )
    )


def print_profile(engine: object, texts: list[str], device: str) -> None:
    """The engine's 15 costliest operations over ``texts`` (on a GPU, by GPU time), and on a GPU
    the share of the run its kernels kept it busy: near 100% the kernels are the limit, well
    under, the host (launches, waits, CPU side) is."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as run:
        start = time.perf_counter()
        engine.probabilities(texts)
        if device == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
    events = run.key_averages()
    key = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    print(events.table(sort_by=key, row_limit=15))
    if device == "cuda":
        busy = sum(e.self_device_time_total for e in events if e.self_device_time_total > 0)
        print(f"    profiled: {len(texts):,} posts in {wall:.2f} s; GPU kernels busy "
              f"{busy / 1e6:.2f} s, {busy / 1e6 / wall:.0%} of it")


def backend_posts_per_s(args: argparse.Namespace, folder: Path, texts: list[str]) -> float:
    """Posts/s of the whole tweetnlp backend as analyze runs it: the sentiment model and a topic
    model of the same size (19 labels, sigmoid), the gazetteer's entities and the result rows,
    through ``classify_texts`` in analyze's chunks. Each post costs two models here, so at best
    half the engine's figure."""
    from flows.nlp.tweetnlp.settings import TweetnlpConfig
    from flows.nlp.backend import CHUNK_TEXTS
    from flows.nlp.stream import classify_texts
    from flows.nlp.tweetnlp.backend import TweetnlpBackend

    build_model(folder / "topic", texts[:5000], TOPIC_LABELS, multi_label=True)
    settings = TweetnlpConfig(
        str(folder / "sentiment"), str(folder / "topic"), args.precision, args.token_budget
    )
    backend = TweetnlpBackend(settings, device=args.device, workers=args.workers)
    for _ in classify_texts(backend, texts[:64]):  # warm-up: loading, allocator, kernels
        pass
    start = time.perf_counter()
    for _ in classify_texts(backend, texts, chunk_size=CHUNK_TEXTS[args.device]):
        pass
    return len(texts) / (time.perf_counter() - start)


if __name__ == "__main__":
    main()
