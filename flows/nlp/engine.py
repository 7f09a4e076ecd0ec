"""Our inference engine for Hugging Face sequence classifiers: tweetnlp's answers, much faster.

tweetnlp's ``predict`` pads every batch to its longest text and runs the model in fp32; the original
project called it one tweet at a time. The engine gives the same probabilities by the shortest
path it can:

- texts are preprocessed (by the caller's function, tweetnlp's own) and tokenized in bulk by the
  fast (Rust) tokenizer, without padding; on a GPU machine by worker processes, a part of the
  texts each, ahead of the model, so the GPU runs while the CPU prepares what comes next;
- identical preprocessed texts are classified once: reposts, and posts that differ only in a
  link, cost nothing;
- they are sorted by length and cut into batches of at most ``token_budget`` padded tokens, so a
  batch of short posts is wide and a batch of long ones narrow, and padding is nearly nil;
- padding is one vectorised numpy assignment per batch, not a Python loop;
- on CUDA the weights are bf16 (fp16 on GPUs without bf16), inputs go through pinned memory with
  non-blocking copies, nothing asks the GPU a question between batches, and probabilities stay on
  the GPU until the last batch is done, so the host never waits for the device between batches;
- on the CPU, ``precision`` picks the arithmetic (below).

CPU precision, chosen by measurement: speed with a roberta-base classifier on texts of about 40
tokens (``bench/nlp.py``), labels with classifiers of trained weights (``bench/precision.py``);
the figures are in docs/nlp.md. fp32 in sorted batches reaches 80-90% of the fp32
matrix-multiply bound, by machine (12.8 posts/s on 2 AVX2 cores, 23-24.5 on 2 AVX-512 cores). On
a CPU with bf16 instructions (AVX-512 BF16 or AMX:
``torch.ops.mkldnn._is_mkldnn_bf16_supported()``), bf16 autocast runs 1.6-1.9 times as fast
and keeps >99% of a trained classifier's labels, so ``auto`` takes it there; elsewhere bf16
would run ten times slower than fp32, so ``auto`` is fp32 and ``bf16`` is refused. Dynamic int8
(``torch.ao``) is not offered: 9% faster than fp32 on AVX2, and it moved 13% of a trained
classifier's sentiment labels. ONNX Runtime ran slower than fp32 on AVX2 (5.9 posts/s; int8 11.0).
"""

from __future__ import annotations

import multiprocessing
import os
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from itertools import chain
from typing import TypeVar

import numpy as np
import torch

from flows.settings import NLP_PRECISIONS

# Padded tokens per batch. On the CPU ~25 posts of 40 tokens: 1,024-2,048 ran 10-20% faster than
# 4,096 (bench/nlp.py, 2 AVX-512 cores, fp32 and bf16), whose activations outgrow the caches. A GPU
# needs tens of thousands of tokens in flight to be busy.
DEFAULT_TOKEN_BUDGET = {"cpu": 1024, "cuda": 65536}
# Texts a worker prepares at a time, at most: the GPU starts once the first part is ready (fewer
# texts are cut into about one part per worker), and a part of ~80,000 tokens fills a batch of
# 65,536.
PART_TEXTS = 2048
MIN_PART_TEXTS = 16  # smaller parts would cost more to hand over than to prepare
MAX_WORKERS = 16

T = TypeVar("T")
Part = tuple[int, tuple[list[str], np.ndarray, np.ndarray]]
"""A part of the texts: its offset, its texts preprocessed, their token ids and token counts."""


def resolve_precision(precision: str, device: str) -> str:
    """The arithmetic ``precision`` means on ``device``.

    Raises:
        ValueError: an unknown precision, or one the device cannot run well.
    """
    if precision not in NLP_PRECISIONS:
        choices = ", ".join(NLP_PRECISIONS)
        raise ValueError(f"unknown precision {precision!r}: choose one of {choices}")
    if device == "cuda":
        if precision in ("auto", "bf16"):
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return precision
    if precision == "auto":
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    if precision == "fp16":
        raise ValueError("precision fp16 is a GPU path: on the CPU use auto, fp32 or bf16")
    if precision == "bf16" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise ValueError(
            "precision bf16 needs a CPU with bf16 instructions (AVX-512 BF16 or AMX), which this "
            "one lacks: it would run about ten times slower than fp32. Use auto or fp32"
        )
    return precision


class Engine:
    """Probabilities of a sequence classifier for many texts, fast, in input order.

    Args:
        model: a ``transformers`` sequence-classification model (weights are converted in place).
        tokenizer: its fast tokenizer.
        preprocess: applied to every text first (tweetnlp's tweet preprocessing).
        multi_label: sigmoid per label (True) or softmax over labels (False), as tweetnlp does.
        device: "cpu" or "cuda".
        precision: one of ``NLP_PRECISIONS``; see ``resolve_precision``.
        max_length: tokens per text at most (tweetnlp truncates at 128).
        token_budget: padded tokens per batch; 0 picks ``DEFAULT_TOKEN_BUDGET[device]``.
        workers: processes that preprocess and tokenize, ahead of the model; None picks
            ``default_workers(device)``, 0 does it in this process.

    Example:
        >>> engine = Engine(model, tokenizer, str, multi_label=False)
        >>> engine.probabilities(["so good", "so bad"]).shape
        (2, 3)
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: object,
        preprocess: Callable[[str], str],
        *,
        multi_label: bool,
        device: str = "cpu",
        precision: str = "auto",
        max_length: int = 128,
        token_budget: int = 0,
        workers: int | None = None,
    ) -> None:
        self.device = device
        self.precision = resolve_precision(precision, device)
        self.multi_label = multi_label
        self.max_length = max_length
        self.token_budget = max(token_budget or DEFAULT_TOKEN_BUDGET[device], max_length)
        self.workers = default_workers(device) if workers is None else workers
        self._tokenizer = tokenizer
        self._preprocess = preprocess
        self._pad_id = tokenizer.pad_token_id
        self._model = _prepare(model, device, self.precision)
        self._dtype = torch.bfloat16 if self.precision == "bf16" and device == "cpu" else None
        self._pool: ProcessPoolExecutor | None = None
        self._stop_workers: weakref.finalize | None = None

    def probabilities(
        self, texts: Sequence[str], parts: Iterator[Part] | None = None
    ) -> np.ndarray:
        """Per text, the probability of each of the model's labels (float32, input order).

        ``parts``: ``encode_parts(texts)`` called earlier, so that the workers prepared these texts
        while the model ran on others (the backend's other task).
        """
        found = torch.empty((len(texts), self._model.config.num_labels), device=self.device)
        rows = np.empty(len(texts), dtype=np.int64)  # per text, its row of `found`
        seen: dict[str, int] = {}  # preprocessed text -> row: each classified once
        with torch.inference_mode(), _autocast(self._dtype):
            if parts is None:
                parts = self.encode_parts(texts)
            for start, (prepared, flat, lengths) in parts:
                first, new = len(seen), []
                for i, text in enumerate(prepared):
                    rows[start + i] = row = seen.setdefault(text, len(seen))
                    if row == first + len(new):
                        new.append(i)
                self._classify(flat, lengths, np.array(new, dtype=np.int64), first, found)
        return found[: len(seen)].cpu().numpy()[rows]

    def encode_parts(self, texts: Sequence[str]) -> Iterator[Part]:
        """The CPU work a GPU waits for, begun now: per part of ``texts``, in order, its offset and
        ``encode_texts`` of it (see ``_map_parts``), so that the workers prepare the next parts
        while the caller runs the model on this one."""
        if self.workers:
            return self._map_parts(_encode_in_worker, texts)
        encode = partial(encode_texts, self._preprocess, self._tokenizer, self.max_length)
        return self._map_parts(encode, texts)

    def map_in_workers(
        self, function: Callable[[Sequence[str]], list[T]], texts: Sequence[str]
    ) -> Iterator[T]:
        """``function`` (module-level: it goes to the workers by name) of the texts, part by part,
        begun now by the workers, which are idle while the model runs; without workers, done here
        and now. Per text, in order, its result."""
        return chain.from_iterable(results for _, results in self._map_parts(function, texts))

    def _map_parts(
        self, function: Callable[[Sequence[str]], T], texts: Sequence[str]
    ) -> Iterator[tuple[int, T]]:
        """Per part of ``texts``, in order, its offset and ``function`` of it. With workers, every
        part is handed out at once (about one part per worker, at most ``PART_TEXTS`` texts);
        without, the texts are one part, done here and now."""
        if not texts:
            return iter(())
        if not self.workers:
            return iter([(0, function(texts))])
        size = max(MIN_PART_TEXTS, min(PART_TEXTS, -(-len(texts) // self.workers)))
        starts = range(0, len(texts), size)
        parts = self._workers().map(function, (texts[s : s + size] for s in starts))
        return zip(starts, parts, strict=True)

    def close(self) -> None:
        """Stop the worker processes now (they also stop once the engine is garbage-collected,
        or when the program ends)."""
        if self._pool is not None:
            self._stop_workers()
            self._pool = None

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # fork: the workers inherit the preprocessing function (a closure, not picklable)
            # and the tokenizer instead of loading them again
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_start_worker,
                initargs=(self._preprocess, self._tokenizer, self.max_length),
            )
            # Shut down with the engine, or at exit while modules still stand: a pool left to
            # the interpreter's teardown prints "Exception ignored ... has no attribute 'util'".
            self._stop_workers = weakref.finalize(self, self._pool.shutdown, cancel_futures=True)
        return self._pool

    def _classify(
        self, flat: np.ndarray, lengths: np.ndarray, keep: np.ndarray, first: int, out: torch.Tensor
    ) -> None:
        """Run the model on the texts ``keep`` of a part, shortest first, into ``out[first:]``."""
        order = np.argsort(lengths[keep], kind="stable")
        chosen = keep[order]
        sorted_lengths = lengths[chosen].astype(np.int64)
        tokens = _gather(flat, (np.cumsum(lengths) - lengths)[chosen], sorted_lengths)
        ends = np.cumsum(sorted_lengths)
        rows = first + order  # row of `out` of each sorted text
        start = 0
        for stop in _batch_stops(sorted_lengths, self.token_budget):
            ids, mask = _pad(tokens, sorted_lengths, ends, start, stop, self._pad_id)
            # The mask as [batch, 1, tokens]: from a 2-D one, transformers' SDPA path first asks
            # whether it pads at all (torch.all), which waits for the GPU to finish every batch
            # before the host may queue the next; from 3-D it builds the same additive mask.
            logits = self._model(
                input_ids=self._to_device(ids), attention_mask=self._to_device(mask[:, None, :])
            ).logits.float()
            probabilities = torch.sigmoid(logits) if self.multi_label else logits.softmax(-1)
            out[self._to_device(rows[start:stop])] = probabilities
            start = stop

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        if self.device == "cuda":
            # pinned host memory lets the copy run asynchronously while the GPU works (a copy
            # from ordinary memory would wait for the GPU first)
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor


def default_workers(device: str) -> int:
    """Processes that prepare texts: none on the CPU, whose cores the model needs and where the
    preparing is ~1% of the time; on a GPU machine every core but the one feeding the GPU (one
    process preprocesses and tokenizes ~15,000 texts/s, a GPU classifies tens of thousands)."""
    if device == "cpu" or "fork" not in multiprocessing.get_all_start_methods():
        return 0
    return max(1, min(MAX_WORKERS, available_cpus() - 1))


def available_cpus() -> int:
    """The CPUs this process may run on: a container's or a CPU quota's, not the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def limit_torch_threads() -> None:
    """Use no more intra-op threads than ``available_cpus()``.

    torch sizes its pool from the machine's cores, which in a container or under a CPU quota
    oversubscribes and runs slower than fewer threads.
    """
    if torch.get_num_threads() > available_cpus():
        torch.set_num_threads(available_cpus())


def encode_texts(
    preprocess: Callable[[str], str], tokenizer: object, max_length: int, texts: Sequence[str]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The texts preprocessed, their token ids concatenated (int32), and each one's token count."""
    prepared = [preprocess(text) for text in texts]
    ids = tokenizer(
        prepared,
        truncation=True,
        max_length=max_length,
        return_attention_mask=False,
        return_token_type_ids=False,
    )["input_ids"]
    lengths = np.fromiter(map(len, ids), dtype=np.int32, count=len(ids))
    flat = np.fromiter(chain.from_iterable(ids), dtype=np.int32, count=int(lengths.sum()))
    return prepared, flat, lengths


_worker: tuple[Callable[[str], str], object, int] | None = None  # a worker's encode_texts args


def _start_worker(preprocess: Callable[[str], str], tokenizer: object, max_length: int) -> None:
    global _worker
    _worker = (preprocess, tokenizer, max_length)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the workers are the parallelism


def _encode_in_worker(texts: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    assert _worker is not None, "runs in a process started by Engine._workers"
    return encode_texts(*_worker, texts)


def _prepare(model: torch.nn.Module, device: str, precision: str) -> torch.nn.Module:
    model = getattr(model, "module", model).eval()  # tweetnlp wraps it in DataParallel on >1 GPU
    if device == "cuda":
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
        return model.to(device=device, dtype=dtype)
    return model.to("cpu", dtype=torch.float32)


def _autocast(dtype: torch.dtype | None) -> torch.autocast:
    # CPU bf16 through autocast: the weights stay fp32 and oneDNN runs the matmuls in bf16
    return torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def _batch_stops(sorted_lengths: np.ndarray, token_budget: int) -> list[int]:
    """End indices of batches over ascending lengths, each within ``token_budget`` tokens."""
    stops = []
    start = 0
    total = len(sorted_lengths)
    while start < total:
        # lengths ascend, so a batch [start, stop) is padded to sorted_lengths[stop - 1]
        rows = np.arange(1, total - start + 1)
        fits = rows * sorted_lengths[start:] <= token_budget
        stop = start + max(1, int(np.argmin(fits)) if not fits.all() else len(fits))
        stops.append(stop)
        start = stop
    return stops


def _pad(
    flat: np.ndarray,
    lengths: np.ndarray,
    ends: np.ndarray,
    start: int,
    stop: int,
    pad_id: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask of the length-sorted texts [start, stop), right-padded."""
    batch_lengths = lengths[start:stop]
    mask = np.arange(int(batch_lengths[-1])) < batch_lengths[:, None]
    ids = np.full(mask.shape, pad_id, dtype=np.int64)
    first = int(ends[start - 1]) if start else 0
    ids[mask] = flat[first : int(ends[stop - 1])]  # row-major order is the concatenation order
    return ids, mask.astype(np.int64)


def _gather(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``flat[starts[i] : starts[i] + lengths[i]]`` for each i, concatenated, without a loop."""
    shifts = starts - (np.cumsum(lengths) - lengths)  # where each segment is read minus written
    return flat[np.repeat(shifts, lengths) + np.arange(int(lengths.sum()))]
