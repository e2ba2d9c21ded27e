"""Streaming batch scoring: review files in, one scored row per input row out, in input order.

```python
from sentiment import load_model
from sentiment.serving.scoring import score_files
summary = score_files(load_model("runs/clothing"), ["reviews.csv"], "scores.parquet", keep_columns=["id"])
summary.rows, summary.scored, summary.errors      # 1000, 998, {"empty_text": 2}
```

Rows are read (`sentiment.serving.input_files`: .txt lines, .csv/.tsv/.jsonl records, .parquet
batches, or stdin; what a record is in each format and how files are decoded) in chunks, each
chunk is tokenized and scored by one of a few worker threads (`score_records`), and written in
input order (`sentiment.serving.output_files`), so memory stays bounded whatever the input size.
The model sorts each chunk by length into batches.

Every input record gets exactly one output row. A row that cannot be scored keeps its place
with an empty label and probabilities and says why in the `error` column (the reasons:
`sentiment.data.text.ERRORS`); a review longer than the model's `max_len` is scored on its
first `max_len` tokens and flagged `truncated`.

The model's probabilities must be finite: NaN or infinity (corrupt weights) stops the run with
one error rather than writing labels that mean nothing.

The output is written to a temporary file beside the target and renamed into place at
the end, so a failed run never leaves a partial file.

With `min_confidence=P` (`score --min-confidence P`) an `abstained` column, after `error`, is
true where the top probability is below P: the row keeps its label, marked for a person to
check (empty where the row is not scored).

With `sentences=True` (`score --sentences`) a `sentences` column, after `error`, holds each
scored row's sentences with their own readings: a list of {"text", "label", "prob_<class>"...,
"weight"} (weight: the sentence head's attention, else null); JSON text in CSV, a nested list in
JSONL and Parquet. Still one output row per input row.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import TypeVar

import numpy as np

from sentiment.data.text import NO_TEXT as _NO_TEXT
from sentiment.errors import SentimentError
from sentiment.progress import progress_bar
from sentiment.serving.input_files import STDIN, Record, check_columns, read_records, resolve_inputs
from sentiment.serving.output_files import (
    check_output_is_not_an_input,
    kept_column_types,
    open_writer,
    output_columns,
    output_format,
    writing,
)

CHUNK_SIZE = 8192
"""Rows read, tokenized and scored together; the model batches each chunk by length."""
SCORED_WITH_FLAG = frozenset({"truncated"})
"""The `error` values whose rows are scored all the same (every other one leaves the row unscored)."""


@dataclass
class ScoringSummary:
    rows: int = 0
    scored: int = 0
    errors: Counter = field(default_factory=Counter)
    """Rows per `error` value, `truncated` included (those rows are scored)."""
    seconds: float = 0.0
    output: str | None = None
    """The output path; None for standard output."""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class TokenizedChunk:
    records: list[Record]
    tokens: list[Sequence | None]
    """Each row as the model reads it (`scoring_inputs`: tokens, or the trained model's token ids);
    None where the row is not scored."""
    errors: list[str | None]


@dataclass
class ScoredChunk:
    records: list[Record]
    labels: list[str | None]
    probabilities: np.ndarray
    """[n, k] float64, columns in the order of the model's classes; NaN where not scored."""
    errors: list[str | None]
    sentences: list[list[dict] | None] | None = None
    """With `sentences=True`: per row its sentences' readings (None where the row is not scored)."""
    abstained: list[bool | None] | None = None
    """With `min_confidence`: per row whether its top probability is below it (None where not scored)."""


def tokenize_chunk(model, records: list[Record]) -> TokenizedChunk:
    """Tokenize the rows that can be scored; find the empty ones and flag those beyond max_len."""
    errors = [record.error for record in records]
    todo = [i for i, error in enumerate(errors) if error is None]
    tokens: list[Sequence | None] = [None] * len(records)
    max_len = model.max_len
    for i in todo:
        if _NO_TEXT.fullmatch(records[i].text):
            errors[i] = "empty_text"
    todo = [i for i in todo if errors[i] is None]
    for i, row_tokens in zip(todo, model.scoring_inputs(records[i].text for i in todo)):
        if not row_tokens:
            errors[i] = "no_tokens"
            continue
        tokens[i] = row_tokens
        if max_len is not None and len(row_tokens) > max_len:
            errors[i] = "truncated"
    return TokenizedChunk(records, tokens, errors)


def check_finite(probabilities: np.ndarray, records: Sequence[Record]) -> None:
    """Refuse NaN or infinite probabilities (corrupt weights): they would still make a label."""
    finite = np.isfinite(probabilities).all(axis=1)
    if not finite.all():
        record = records[int(np.argmin(finite))]
        raise SentimentError(
            f"{record.source}, row {record.row}: the model's probabilities are not finite "
            f"({probabilities[int(np.argmin(finite))].tolist()}); its weights are corrupt, "
            "train the run again"
        )


def predict_chunk(model, chunk: TokenizedChunk, sentences: bool = False) -> ScoredChunk:
    """The model's probabilities for the tokenized rows, in input order (and their sentences')."""
    import torch

    probabilities = np.full((len(chunk.records), len(model.classes)), np.nan)
    labels: list[str | None] = [None] * len(chunk.records)
    scored = [i for i, tokens in enumerate(chunk.tokens) if tokens is not None]
    readings: list[list[dict] | None] | None = [None] * len(chunk.records) if sentences else None
    if scored:
        with torch.inference_mode():
            predicted = model.predict_inputs([chunk.tokens[i] for i in scored])
            if readings is not None:
                for i, row in zip(scored, model.predict_sentences([chunk.records[i].text for i in scored])):
                    readings[i] = [sentence_cell(s, model.classes) for s in row]
        check_finite(predicted, [chunk.records[i] for i in scored])
        probabilities[scored] = predicted
        for i, best in zip(scored, model.decide(predicted).tolist()):
            labels[i] = model.classes[best]
    return ScoredChunk(chunk.records, labels, probabilities, chunk.errors, readings)


def sentence_cell(sentence, classes: Sequence[str]) -> dict:
    """One sentence's reading as the `sentences` column holds it."""
    return {
        "text": sentence.text,
        "label": sentence.label,
        **{f"prob_{c}": float(p) for c, p in zip(classes, sentence.probabilities)},
        "weight": sentence.weight,
    }


def score_chunk(
    model,
    records: list[Record],
    tokenizer_lock: threading.Lock | None = None,
    sentences: bool = False,
    min_confidence: float | None = None,
) -> ScoredChunk:
    with tokenizer_lock or contextlib.nullcontext():
        tokenized = tokenize_chunk(model, records)
    scored = predict_chunk(model, tokenized, sentences)
    if min_confidence is not None:
        top = scored.probabilities.max(axis=1)
        scored.abstained = [None if np.isnan(p) else bool(p < min_confidence) for p in top.tolist()]
    return scored


def score_records(
    model,
    records: Iterable[Record],
    chunk_size: int = CHUNK_SIZE,
    workers: int = 1,
    sentences: bool = False,
    min_confidence: float | None = None,
) -> Iterator[ScoredChunk]:
    """Score records chunk by chunk, in order; `workers` threads score chunks side by side.

    spaCy holds the GIL but torch's kernels release it, so with two workers one tokenizes
    while the other runs the model, and two forward passes can use two cores at once.
    Tokenizing is serialized by a lock (it costs nothing, as the tokenizer holds the GIL anyway,
    and spaCy does not promise that threads may share one tokenizer). Beside the chunk being
    handed back, at most `workers + 1` chunks' rows are in flight: the pieces at the end of the
    input are small (`chunked`), and a worker done with two of them must not wait for the next
    while the oldest chunk is still on the other worker.
    """
    if chunk_size < 1:
        raise SentimentError(f"chunk size must be at least 1, got {chunk_size}")
    chunks = chunked(records, chunk_size, workers)
    if workers <= 1:
        for chunk in chunks:
            yield score_chunk(model, chunk, sentences=sentences, min_confidence=min_confidence)
        return
    if sentences:  # sentence readings tokenize outside the tokenizer lock: one worker
        raise SentimentError("sentence readings are scored by one worker; pass workers=1")
    lock = threading.Lock()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sentiment-score")
    pending: deque[tuple[Future, int]] = deque()
    rows, most_rows = 0, (workers + 1) * chunk_size
    try:
        for chunk in chunks:
            pending.append((pool.submit(score_chunk, model, chunk, lock, False, min_confidence), len(chunk)))
            rows += len(chunk)
            while rows > most_rows:
                oldest, size = pending.popleft()
                rows -= size
                yield oldest.result()
        while pending:
            yield pending.popleft()[0].result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


RAMP_UP = 8
"""With several workers the first chunk is `chunk_size // RAMP_UP` rows, and each next one twice the last."""


def chunk_sizes(chunk_size: int, workers: int = 1) -> Iterator[int]:
    """Rows per chunk, in order. With several workers the first chunks are small and grow to
    `chunk_size`: the first chunk is tokenized before any forward pass can start (with a cold
    tokenizer, the slowest reading of all), and every other worker waits for it, so a small one
    sets them all to work sooner."""
    size = first_chunk_size(chunk_size, workers)
    while True:
        yield size
        size = min(chunk_size, 2 * size)


def first_chunk_size(chunk_size: int, workers: int = 1) -> int:
    """The first chunk's rows: `chunk_size`, or with several workers `chunk_size // RAMP_UP` (at least 1)."""
    return chunk_size if workers <= 1 else max(1, chunk_size // RAMP_UP)


T = TypeVar("T")


def chunked(items: Iterable[T], chunk_size: int, workers: int = 1) -> Iterator[list[T]]:
    """`items` in lists of `chunk_sizes(chunk_size, workers)` items; the last one may be shorter,
    and with several workers the end is cut finer. The workers take the chunks in turn, so one
    that draws a whole chunk near the end keeps working (seconds at 8,192 rows) while the others
    idle. So the items are read `workers` chunks ahead, and once the input has ended, each piece
    is 1/(2 * workers) of what is left (at least the first chunk's size): the pieces shrink and
    the workers finish close together.
    """
    items, sizes = iter(items), chunk_sizes(chunk_size, workers)
    if workers <= 1:
        yield from iter(lambda: list(islice(items, next(sizes))), [])
        return
    ahead, smallest = workers * chunk_size, first_chunk_size(chunk_size, workers)
    buffer: list[T] = []
    ended = False
    for size in sizes:
        if not ended:
            buffer.extend(islice(items, size + ahead - len(buffer)))
            ended = len(buffer) < size + ahead
        if ended:
            if not buffer:
                return
            size = min(size, max(smallest, -(-len(buffer) // (2 * workers))))  # ceiling
        yield buffer[:size]
        del buffer[:size]


def default_workers(model) -> int:
    """Scoring threads: one per core on CPU (each running torch single-threaded), two on a GPU."""
    if not str(getattr(model, "device", "cpu")).startswith("cpu"):
        return 2
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@contextlib.contextmanager
def _one_torch_thread_per_worker(workers: int) -> Iterator[None]:
    """Several workers each with several torch threads oversubscribe the cores, and torch's spinning
    worker threads then collapse (measured here: 2 threads beside one busy core ran 10x slower)."""
    import torch

    before = torch.get_num_threads()
    if workers <= 1 or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


GIL_SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the GIL while another waits for it (Python's default is 0.005)."""


@contextlib.contextmanager
def _short_gil_switch_interval(workers: int) -> Iterator[None]:
    """While one worker tokenizes (holding the GIL), the other's forward pass needs the GIL back
    after every torch op; at Python's default 5 ms hand-over it idles for most of that wait.
    A 0.5 ms interval measured 2,644 -> 2,978 reviews/s (100k clothing reviews, 3 runs each)."""
    before = sys.getswitchinterval()
    if workers <= 1 or before <= GIL_SWITCH_INTERVAL:
        yield
        return
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


GC_YOUNG_THRESHOLD = 50_000
"""Allocations between passes of Python's cyclic garbage collector while scoring (its default is 700)."""


@contextlib.contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Scoring allocates a few containers per row (its record, its ids). At Python's default
    threshold the cyclic collector ran 176 times while 20,000 reviews were scored, once through
    every object the loaded libraries hold (323,000 after loading a model): 0.36 s of a 4.0 s run,
    all of it holding the GIL that tokenizing needs. Scoring makes almost no cycles (150 objects
    per 20,000 reviews were left for the collector), so while it runs, the objects alive before it
    are frozen (`gc.freeze`: left out of every pass) and a pass waits for 50,000 allocations.
    A caller that froze objects of its own keeps its settings."""
    threshold = gc.get_threshold()
    if threshold[0] == 0 or gc.get_freeze_count() > 0:  # collection off, or the caller freezes
        yield
        return
    gc.freeze()
    gc.set_threshold(max(threshold[0], GC_YOUNG_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def score_files(
    model,
    inputs: Iterable[str | os.PathLike],
    output: str | os.PathLike | None = None,
    *,
    text_column: str = "text",
    keep_text: bool = False,
    keep_columns: Sequence[str] = (),
    input_format: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    workers: int | None = None,
    progress: bool = False,
    sentences: bool = False,
    min_confidence: float | None = None,
) -> ScoringSummary:
    """Score every row of `inputs` with `model` (from `load_model`, or a path to load) into `output`.

    The output format follows the extension of `output` (.csv, .jsonl, .parquet; None or `-` for
    CSV on standard output). Everything a user can get wrong (a missing file or column, an
    unknown format, an unwritable output) raises `SentimentError` before anything is written.
    """
    started = time.perf_counter()
    keep_columns = list(dict.fromkeys(keep_columns))
    kind = output_format(output)
    files = resolve_inputs(inputs, input_format)
    check_output_is_not_an_input(output, files)
    for file in files:
        check_columns(file, text_column, keep_columns)
    if isinstance(model, (str, os.PathLike)):
        from sentiment.serving.inference import load_model

        model = load_model(model)
    if min_confidence is not None and not 0 <= min_confidence <= 1:
        raise SentimentError(f"--min-confidence must be between 0 and 1, got {min_confidence}")
    columns = output_columns(model.classes, keep_text, keep_columns, sentences, min_confidence is not None)
    extra_types = kept_column_types(files, keep_columns) if kind == "parquet" else []
    workers = 1 if sentences else default_workers(model) if workers is None else workers

    summary = ScoringSummary(output=None if output is None or os.fspath(output) == STDIN else os.fspath(output))
    records = (record for file in files for record in read_records(file, text_column, keep_columns))
    with (
        progress_bar(desc="scoring", unit=" reviews", enabled=progress) as bar,
        open_writer(output, kind, columns, keep_text, len(model.classes), extra_types) as writer,
        _one_torch_thread_per_worker(workers),
        _short_gil_switch_interval(workers),
        _fewer_gc_passes(),
    ):
        for chunk in score_records(model, records, chunk_size, workers, sentences, min_confidence):
            with writing(output):
                writer.write(chunk)
            summary.rows += len(chunk.records)
            summary.errors.update(error for error in chunk.errors if error)
            bar.update(len(chunk.records))
    summary.scored = summary.rows - sum(n for error, n in summary.errors.items() if error not in SCORED_WITH_FLAG)
    summary.seconds = time.perf_counter() - started
    return summary
