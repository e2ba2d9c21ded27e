"""Streaming batch scoring: review files in, one scored row per input row out, in input order.

```python
from sentiment import load_model
from sentiment.serving.scoring import score_files
summary = score_files(load_model("runs/clothing"), ["reviews.csv"], "scores.parquet", keep_columns=["id"])
summary.rows, summary.scored, summary.errors      # 1000, 998, {"empty_text": 2}
```

Rows are read (`read_records`: .txt lines, .csv/.tsv/.jsonl records, .parquet batches, or
stdin) in chunks, each chunk is tokenized and scored by one of a few worker threads
(`score_records`), and written in input order (`OUTPUT_FORMATS`), so memory stays bounded
whatever the input size. The model sorts each chunk by length into batches.

Every input record gets exactly one output row. A row that cannot be scored keeps its place
with an empty label and probabilities and says why in the `error` column (see `ERRORS`);
a review longer than the model's `max_len` is scored on its first `max_len` tokens and
flagged `truncated`. What a record is, per format:

- .txt: what lies between two "\\n" (a final line without one counts; a trailing newline adds
  no row); other line breaks (\\r, \\x0b, \\u2028...) are part of the review, a final \\r of
  "\\r\\n" is not.
- .csv/.tsv: a record as the CSV format (RFC 4180, as Python's `csv` reads it) defines it: it
  ends at an unquoted \\n, \\r\\n or \\r, and a quoted field may hold line breaks and doubled
  quotes. Blank lines are not records. A file whose quoting is broken (a quoted field that never
  closes, text after a closing quote) is refused, naming the line where the bad record starts:
  guessing where its rows end could silently merge or split reviews.
- .jsonl: every line that is not blank; one that is not a JSON object is flagged `invalid_json`.
- .parquet: every row.

Files are UTF-8 (a UTF-8 byte-order mark is skipped) unless they start with a UTF-16 or UTF-32
byte-order mark, which is decoded (`_open_binary`); bytes invalid in the file's encoding are
replaced by U+FFFD and the row flagged `invalid_utf8`.

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

import codecs
import contextlib
import csv
import glob
import io
import json
import math
import os
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np

from sentiment.artifacts import atomic_file
from sentiment.data.text import (  # noqa: F401  (part of this module's interface)
    ERRORS,  # noqa: F401  (the `error` reasons, listed in this module's docs)
    check_texts,
    text_problem,
)
from sentiment.data.text import NO_TEXT as _NO_TEXT
from sentiment.data.text import repair_text as _repair
from sentiment.data.text import text_value as _text_value
from sentiment.errors import SentimentError, os_error
from sentiment.progress import progress_bar

INPUT_FORMATS = {".txt": "txt", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
STDIN = "-"
STDIN_SOURCE = "<stdin>"
CHUNK_SIZE = 8192
"""Rows read, tokenized and scored together; the model batches each chunk by length."""

"""The values of the `error` column. Every one but `truncated` leaves the row unscored."""
SCORED_WITH_FLAG = frozenset({"truncated"})


BYTE_ORDER_MARKS = (  # UTF-32 first: its little-endian mark begins with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

BASE_COLUMNS = ("source", "row", "label")


class Record(NamedTuple):
    """One input row: where it came from, its text, the kept columns' values, a reading error."""

    source: str
    row: int
    text: str
    extra: tuple
    error: str | None = None


@dataclass(frozen=True)
class InputFile:
    path: str
    """A file path, or `-` for standard input."""
    format: str

    @property
    def source(self) -> str:
        return STDIN_SOURCE if self.path == STDIN else self.path


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


# ---- inputs ----------------------------------------------------------------------------------


def resolve_inputs(inputs: Iterable[str | os.PathLike], input_format: str | None = None) -> list[InputFile]:
    """Expand globs, check that each input exists and has a format we read; `-` is stdin (.txt by default)."""
    if input_format is not None and input_format not in INPUT_FORMATS.values():
        raise SentimentError(
            f"unknown input format {input_format!r}; choose one of: {', '.join(INPUT_FORMATS.values())}"
        )
    files: list[InputFile] = []
    for given in (os.fspath(item) for item in inputs):
        if "\x00" in given:
            raise SentimentError(f"input path {given!r} contains a NUL character")
        if given == STDIN:
            if any(f.path == STDIN for f in files):
                raise SentimentError("standard input (-) can be read only once")
            if input_format == "parquet":
                raise SentimentError("parquet cannot be read from standard input (it needs a seekable file)")
            files.append(InputFile(STDIN, input_format or "txt"))
            continue
        paths = [given]
        if not os.path.exists(given) and glob.has_magic(given):
            paths = sorted(glob.glob(given, recursive=True))
            if not paths:
                raise SentimentError(f"no input file matches {given}")
        for path in paths:
            if not os.path.exists(path):
                raise SentimentError(f"input file not found: {path}")
            if os.path.isdir(path):
                raise SentimentError(f"input {path} is a directory; give the files (or a glob such as {path}/*.csv)")
            file_format = input_format or INPUT_FORMATS.get(Path(path).suffix.lower())
            if file_format is None:
                raise SentimentError(
                    f"cannot tell the format of {path} from its extension; "
                    f"use one of {', '.join(INPUT_FORMATS)} or --format"
                )
            files.append(InputFile(path, file_format))
    if not files:
        raise SentimentError("no input files given")
    return files


def check_columns(file: InputFile, text_column: str, keep_columns: Sequence[str]) -> None:
    """Fail before any scoring when a file lacks a needed column (stdin is checked as it is read)."""
    if file.format == "txt":
        if keep_columns:
            raise SentimentError(f"{file.source}: a .txt file has no columns to keep ({', '.join(keep_columns)})")
        return
    if file.path == STDIN:
        return
    if file.format == "parquet":
        _require_columns(file, _parquet_file(file).schema_arrow.names, text_column, keep_columns)
        return
    # Reading the first record checks the header; nothing more is read.
    with contextlib.closing(read_records(file, text_column, keep_columns)) as records:
        next(records, None)


def read_records(
    file: InputFile, text_column: str = "text", keep_columns: Sequence[str] = ()
) -> Generator[Record, None, None]:
    """The file's rows in order, streamed; row numbers are 1-based data rows (a header is not a row)."""
    if file.format == "txt" and keep_columns:
        raise SentimentError(f"{file.source}: a .txt file has no columns to keep ({', '.join(keep_columns)})")
    if file.format == "parquet":
        yield from _read_parquet(file, text_column, keep_columns)
        return
    with _open_binary(file) as stream:
        if file.format == "txt":
            yield from _read_txt(stream, file.source)
        elif file.format == "jsonl":
            yield from _read_jsonl(stream, file, text_column, keep_columns)
        else:
            yield from _read_delimited(stream, file, text_column, keep_columns)


@contextlib.contextmanager
def _open_binary(file: InputFile) -> Iterator[io.BufferedIOBase]:
    """The file's bytes as UTF-8: a UTF-16 or UTF-32 file (known by its byte-order mark) is decoded."""
    if file.path == STDIN:
        yield _as_utf8(sys.stdin.buffer)
        return
    try:
        stream = open(file.path, "rb")
    except OSError as error:
        raise SentimentError(f"cannot read {file.path}: {error.strerror}") from None
    with stream:
        yield _as_utf8(stream)


def _as_utf8(stream) -> io.BufferedIOBase:
    # The mark itself becomes a UTF-8 one, which each reader skips as it does in a UTF-8 file.
    head = stream.read(4)
    if stream.seekable():
        stream.seek(-len(head), io.SEEK_CUR)
    else:  # a pipe: put the bytes read back in front
        stream = io.BufferedReader(_Prefixed(head, stream))
    for mark, encoding in BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return io.BufferedReader(_Utf8Transcoder(stream, encoding), buffer_size=1 << 16)
    return stream


class _Prefixed(io.RawIOBase):
    """`head`, then the rest of `stream`; closing it leaves `stream` (standard input) open."""

    def __init__(self, head: bytes, stream):
        self.head, self.stream = memoryview(head), stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.head:
            return self.stream.readinto(buffer)
        count = min(len(buffer), len(self.head))
        buffer[:count] = self.head[:count]
        self.head = self.head[count:]
        return count


def _mark_invalid(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)  # registered for decoding only
    return "\udcff", error.end  # written as the byte 0xFF: invalid UTF-8, flagged like any other


codecs.register_error("sentiment.mark-invalid", _mark_invalid)


class _Utf8Transcoder(io.RawIOBase):
    """A UTF-16/32 byte stream read as UTF-8 bytes, so that one set of readers serves every encoding;
    input invalid in its encoding comes out as the byte 0xFF, which the readers flag `invalid_utf8`."""

    def __init__(self, stream, encoding: str):
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder(encoding)(errors="sentiment.mark-invalid")
        self.pending = memoryview(b"")
        self.finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending and not self.finished:
            block = self.stream.read(1 << 16)
            self.finished = not block
            text = self.decoder.decode(block, final=self.finished)
            self.pending = memoryview(text.encode("utf-8", "surrogateescape"))
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        return count


def _read_txt(stream, source: str) -> Iterator[Record]:
    # Iterating a binary file splits on b"\n" only, as a review file's lines should be.
    for row, line in enumerate(stream, 1):
        if row == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
            if not line:  # a file holding only its byte-order mark is empty
                return
        if line.endswith(b"\n"):
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        try:
            yield Record(source, row, line.decode("utf-8"), ())
        except UnicodeDecodeError:
            yield Record(source, row, line.decode("utf-8", "replace"), (), "invalid_utf8")


def _read_jsonl(stream, file: InputFile, text_column: str, keep_columns: Sequence[str]) -> Iterator[Record]:
    checked = False
    for row, line in enumerate(stream, 1):  # the row is the line number
        if row == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        if not line.strip():
            continue
        error = None
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError:
            decoded, error = line.decode("utf-8", "replace"), "invalid_utf8"
        try:
            value = json.loads(decoded)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            yield Record(file.source, row, "", (None,) * len(keep_columns), "invalid_json")
            continue
        if not checked:
            _require_columns(file, list(value), text_column, keep_columns)
            checked = True
        text, text_error = _text_value(value.get(text_column))  # absent and null alike: missing_text
        extra = tuple(_repair(value.get(column))[0] for column in keep_columns)
        yield Record(file.source, row, text, extra, error or text_error)


def _read_delimited(stream, file: InputFile, text_column: str, keep_columns: Sequence[str]) -> Iterator[Record]:
    csv.field_size_limit(2**31 - 1)  # a long review must not stop the run at 128 KiB
    text_stream = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        # strict: an unbalanced quote is an error, not a field that swallows the rest of the file.
        reader = csv.reader(text_stream, delimiter="\t" if file.format == "tsv" else ",", strict=True)
        start = 1  # the line the record being read starts on
        try:
            header = next(reader, None)
            if header is None:  # an empty file: no header, no rows
                return
            _require_columns(file, header, text_column, keep_columns)
            position = header.index(text_column)
            kept = [header.index(column) for column in keep_columns]
            row = 0
            while True:
                start = reader.line_num + 1
                fields = next(reader, None)
                if fields is None:
                    break
                if not fields:  # a blank line is not a record (as in csv.DictReader and pandas)
                    continue
                row += 1
                # A record shorter than the header has no text: missing_text.
                text, error = _text_value(fields[position] if position < len(fields) else None)
                extra = tuple(_repair(fields[i])[0] if i < len(fields) else None for i in kept)
                yield Record(file.source, row, text, extra, error)
        except csv.Error as error:
            quoting = "unexpected end of data" in str(error) or "expected after" in str(error)
            hint = (
                (
                    "; a quoted field there never closes or has text after its closing quote (a quote "
                    'inside a field is written twice: "")'
                )
                if quoting
                else ""
            )
            raise SentimentError(
                f"{file.source}, line {start}: not valid {file.format.upper()} ({error}){hint}; nothing was written"
            ) from None
    finally:
        text_stream.detach()  # leave closing the byte stream (or stdin) to its owner


def _parquet_file(file: InputFile):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(file.path)
    except (pa.ArrowException, OSError) as error:
        raise SentimentError(f"{file.path}: not a readable Parquet file ({error})") from None


def _read_parquet(file: InputFile, text_column: str, keep_columns: Sequence[str]) -> Iterator[Record]:
    import pyarrow as pa

    parquet = _parquet_file(file)
    _require_columns(file, parquet.schema_arrow.names, text_column, keep_columns)
    columns = list(dict.fromkeys([text_column, *keep_columns]))
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=CHUNK_SIZE, columns=columns):
            texts = batch.column(text_column).to_pylist()
            extras = (
                zip(*(batch.column(column).to_pylist() for column in keep_columns))
                if keep_columns
                else [()] * len(texts)
            )
            for value, extra in zip(texts, extras):
                row += 1
                text, error = _text_value(value)
                yield Record(file.source, row, text, tuple(extra), error)
    except (pa.ArrowException, OSError) as error:
        raise SentimentError(f"{file.path}: cannot read row group after row {row} ({error})") from None


def _require_columns(file: InputFile, columns: Sequence[str], text_column: str, keep_columns: Sequence[str]) -> None:
    missing = [column for column in dict.fromkeys([text_column, *keep_columns]) if column not in columns]
    if missing:
        which = "text column" if missing[0] == text_column else "column"
        hint = " (choose it with --text-column)" if missing[0] == text_column else ""
        shown = (str(_repair(column)[0]) for column in columns)
        raise SentimentError(
            f"{file.source}: no {which} {missing[0]!r}{hint}; "
            f"its columns: {', '.join(c if c.isprintable() else repr(c) for c in shown) or 'none'}"
        )


# ---- scoring ---------------------------------------------------------------------------------


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


def sentence_readings_type(classes: Sequence[str]):
    """The Arrow type of a nested `sentences` column (Parquet, and the Ray engine's batches): a
    list of {text, label, prob_<class>..., weight}, as `sentence_cell` makes them."""
    import pyarrow as pa

    return pa.list_(
        pa.struct(
            [
                pa.field("text", pa.string()),
                pa.field("label", pa.string()),
                *(pa.field(f"prob_{c}", pa.float64()) for c in classes),
                pa.field("weight", pa.float64()),
            ]
        )
    )


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
    and spaCy does not promise that threads may share one tokenizer). At most `workers + 1`
    chunks are in flight.
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
    pending: deque[Future] = deque()
    try:
        for chunk in chunks:
            pending.append(pool.submit(score_chunk, model, chunk, lock, False, min_confidence))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


RAMP_UP = 8
"""With several workers the first chunk is `chunk_size // RAMP_UP` rows, and each next one twice the last."""


def chunk_sizes(chunk_size: int, workers: int = 1) -> Iterator[int]:
    """Rows per chunk, in order. With several workers the first chunks are small and grow to
    `chunk_size`: the first chunk is tokenized before any forward pass can start (with a cold
    tokenizer, the slowest reading of all), and every other worker waits for it, so a small one
    sets them all to work sooner."""
    size = chunk_size if workers <= 1 else max(1, chunk_size // RAMP_UP)
    while True:
        yield size
        size = min(chunk_size, 2 * size)


T = TypeVar("T")


_END: Any = object()


def chunked(items: Iterable[T], chunk_size: int, workers: int = 1) -> Iterator[list[T]]:
    """`items` in lists of `chunk_sizes(chunk_size, workers)` items; the last one may be shorter.

    With several workers the last chunk is cut into `workers` near-equal pieces: whole, it would
    keep one worker busy for a chunk's forward pass (seconds at 8,192 rows) while the others idle.
    To know a chunk is the last, one item past it is read before it is handed out.
    """
    items, sizes = iter(items), chunk_sizes(chunk_size, workers)
    if workers <= 1:
        yield from iter(lambda: list(islice(items, next(sizes))), [])
        return
    ahead = next(items, _END)
    while ahead is not _END:
        chunk = [ahead, *islice(items, next(sizes) - 1)]
        ahead = next(items, _END)
        if ahead is _END:
            step = -(-len(chunk) // workers)  # ceiling: at most `workers` pieces
            yield from (chunk[start : start + step] for start in range(0, len(chunk), step))
        else:
            yield chunk


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


# ---- outputs ---------------------------------------------------------------------------------


def output_format(output: str | os.PathLike | None) -> str:
    """`csv` for standard output (None or `-`), else from the extension."""
    if output is None or os.fspath(output) == STDIN:
        return "csv"
    if "\x00" in os.fspath(output):
        raise SentimentError(f"output path {os.fspath(output)!r} contains a NUL character")
    if Path(output).is_dir():
        raise SentimentError(
            f"output {os.fspath(output)} is a directory; give a file name such as {Path(output) / 'scores.csv'}"
        )
    suffix = Path(output).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise SentimentError(
            f"cannot tell the output format of {os.fspath(output)}: use an extension among "
            f"{', '.join(OUTPUT_FORMATS)} (or no -o for CSV on standard output)"
        )
    return OUTPUT_FORMATS[suffix]


def check_output_is_not_an_input(output: str | os.PathLike | None, files: Sequence[InputFile]) -> None:
    """Refuse `-o` naming one of the inputs (by another path, a link, a hard link): the rename at the end
    would replace it."""
    if output is None or os.fspath(output) == STDIN:
        return
    target = os.path.realpath(output)  # also for a path that does not exist yet, such as new/../in.csv
    for file in files:
        if file.path != STDIN and (
            os.path.realpath(file.path) == target or os.path.exists(target) and os.path.samefile(file.path, target)
        ):
            raise SentimentError(
                f"the output {os.fspath(output)} is the input {file.path}; "
                "scoring would replace your reviews with their scores: choose another -o"
            )


def output_columns(
    classes: Sequence[str], keep_text: bool, keep_columns: Sequence[str], sentences: bool = False, abstain: bool = False
) -> list[str]:
    """source, row, label, prob_<class>..., error, then abstained, sentences, text and the kept columns.

    A kept column whose name an output column already has is renamed `input_<name>`.
    """
    columns = [*BASE_COLUMNS, *(f"prob_{label}" for label in classes), "error"]
    if abstain:
        columns.append("abstained")
    if sentences:
        columns.append("sentences")
    if keep_text:
        columns.append("text")
    for column in keep_columns:
        name = column
        while name in columns:
            name = f"input_{name}"
        columns.append(name)
    return columns


def _sentence_values(chunk: ScoredChunk) -> list:
    return chunk.sentences if chunk.sentences is not None else [None] * len(chunk.records)


def _abstained_values(chunk: ScoredChunk) -> list:
    return chunk.abstained if chunk.abstained is not None else [None] * len(chunk.records)


def _row_values(chunk: ScoredChunk, abstain: bool, sentences: bool, keep_text: bool) -> Iterator[list]:
    """Each output row's values in column order, None where a cell is empty: the CSV and JSON
    lines writers only format them (Parquet builds whole columns from the chunk instead)."""
    for record, label, probs, error, sentence_cell, abstained in zip(
        chunk.records,
        chunk.labels,
        chunk.probabilities.tolist(),
        chunk.errors,
        _sentence_values(chunk),
        _abstained_values(chunk),
    ):
        values = [record.source, record.row, label, *(None if math.isnan(p) else p for p in probs), error]
        if abstain:
            values.append(abstained)
        if sentences:
            values.append(sentence_cell)
        if keep_text:
            values.append(record.text)
        values.extend(record.extra)
        yield values


class _CsvWriter:
    """The csv module writes None as an empty field and a float as its repr; only the flag, the
    sentence readings and a kept list or dict need formatting here."""

    def __init__(self, stream, columns: list[str], keep_text: bool, owned: bool = True):
        self.stream, self.keep_text, self.owned = stream, keep_text, owned
        self.sentences, self.abstain = "sentences" in columns, "abstained" in columns
        self.abstained_at = columns.index("abstained") if self.abstain else None
        self.sentences_at = columns.index("sentences") if self.sentences else None
        self.kept_from = columns.index("error") + 1 + self.abstain + self.sentences + keep_text
        self.writer = csv.writer(stream)  # "\r\n" ends records, so fields holding \r or \n get quoted
        self.writer.writerow(columns)

    def write(self, chunk: ScoredChunk) -> None:
        self.writer.writerows(map(self._format, _row_values(chunk, self.abstain, self.sentences, self.keep_text)))

    def _format(self, values: list) -> list:
        if self.abstained_at is not None and values[self.abstained_at] is not None:
            values[self.abstained_at] = str(values[self.abstained_at]).lower()
        if self.sentences_at is not None and values[self.sentences_at] is not None:
            values[self.sentences_at] = json.dumps(values[self.sentences_at], ensure_ascii=False)
        for index in range(self.kept_from, len(values)):
            if isinstance(values[index], (dict, list)):
                values[index] = json.dumps(values[index])
        return values

    def close(self) -> None:
        self.stream.close() if self.owned else self.stream.flush()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


class _JsonlWriter:
    def __init__(self, stream, columns: list[str], keep_text: bool):
        self.stream, self.columns, self.keep_text = stream, columns, keep_text
        self.sentences, self.abstain = "sentences" in columns, "abstained" in columns

    def write(self, chunk: ScoredChunk) -> None:
        lines = [
            json.dumps(dict(zip(self.columns, values)), ensure_ascii=False, default=str)
            for values in _row_values(chunk, self.abstain, self.sentences, self.keep_text)
        ]
        self.stream.write("\n".join(lines) + "\n")

    def close(self) -> None:
        self.stream.close()


class _ParquetWriter:
    """One row group per chunk; a kept column keeps its Parquet type (see `_kept_column_types`)."""

    def __init__(self, path: str, columns: list[str], keep_text: bool, n_classes: int, extra_types: list):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa, self.keep_text, self.k = pa, keep_text, n_classes
        types = [pa.string(), pa.int64(), pa.string(), *([pa.float64()] * n_classes), pa.string()]
        self.sentences, self.abstain = "sentences" in columns, "abstained" in columns
        if self.abstain:
            types.append(pa.bool_())
        if self.sentences:
            probabilities = [name for name in columns if name.startswith("prob_")][:n_classes]
            types.append(sentence_readings_type([name.removeprefix("prob_") for name in probabilities]))
        if keep_text:
            types.append(pa.string())
        self.schema = pa.schema([pa.field(name, kind) for name, kind in zip(columns, [*types, *extra_types])])
        self.writer = pq.ParquetWriter(path, self.schema)

    def write(self, chunk: ScoredChunk) -> None:
        pa = self.pa
        records = chunk.records
        unscored = np.isnan(chunk.probabilities[:, 0])
        arrays = [[r.source for r in records], [r.row for r in records], chunk.labels]
        arrays += [pa.array(chunk.probabilities[:, j], mask=unscored) for j in range(self.k)]
        arrays.append(chunk.errors)
        if self.abstain:
            arrays.append(_abstained_values(chunk))
        if self.sentences:
            arrays.append(_sentence_values(chunk))
        if self.keep_text:
            arrays.append([r.text for r in records])
        fields = list(self.schema)
        for values, kept in zip(zip(*(r.extra for r in records)), fields[len(arrays) :]):
            if kept.type == pa.string():  # a text column from CSV or JSONL: JSON numbers become text too
                arrays.append([None if v is None else v if isinstance(v, str) else _csv_cell(v) for v in values])
            else:
                arrays.append(list(values))
        try:
            table = pa.Table.from_arrays(
                [a if isinstance(a, pa.Array) else pa.array(a, type=f.type) for a, f in zip(arrays, fields)],
                schema=self.schema,
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as error:
            raise SentimentError(
                f"a kept column does not fit the output type ({error}): its type differs "
                "between input files or rows; write CSV or JSONL instead"
            ) from None
        self.writer.write_table(table)

    def close(self) -> None:
        self.writer.close()


def _kept_column_types(files: Sequence[InputFile], keep_columns: Sequence[str]) -> list:
    """Parquet output: a kept column keeps its Parquet type when every input is Parquet, else it is text."""
    import pyarrow as pa

    if not all(f.format == "parquet" for f in files):
        return [pa.string()] * len(keep_columns)
    schema = _parquet_file(files[0]).schema_arrow
    return [schema.field(column).type for column in keep_columns]


@contextlib.contextmanager
def _open_writer(output, kind: str, columns: list[str], keep_text: bool, n_classes: int, extra_types: list):
    """A writer for standard output (CSV) or for a temporary file that becomes `output` on success."""
    writer: _ParquetWriter | _CsvWriter | _JsonlWriter
    if output is None or os.fspath(output) == STDIN:
        with _writing(output):  # the header too: standard output can be a full disk
            writer = _CsvWriter(sys.stdout, columns, keep_text, owned=False)
        yield writer
        with _writing(output):
            writer.close()
        return
    with atomic_file(output, "the output") as temporary, _writing(output):
        if kind == "parquet":
            writer = _ParquetWriter(temporary, columns, keep_text, n_classes, extra_types)
        else:
            # errors="replace": a stray surrogate in a kept JSON value must not stop the run
            stream = open(temporary, "w", encoding="utf-8", errors="replace", newline="")
            writer = (_CsvWriter if kind == "csv" else _JsonlWriter)(stream, columns, keep_text)
        try:
            yield writer
        except BaseException:
            with contextlib.suppress(Exception):
                writer.close()
            raise
        writer.close()


@contextlib.contextmanager
def _writing(output) -> Iterator[None]:
    """Name the output in a failure to write it (disk full, permissions)."""
    try:
        yield
    except OSError as error:
        name = "standard output" if output is None or os.fspath(output) == STDIN else output
        raise os_error(f"cannot write the output {name}", error) from None


# ---- the whole job ---------------------------------------------------------------------------


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
    extra_types = _kept_column_types(files, keep_columns) if kind == "parquet" else []
    workers = 1 if sentences else default_workers(model) if workers is None else workers

    summary = ScoringSummary(output=None if output is None or os.fspath(output) == STDIN else os.fspath(output))
    records = (record for file in files for record in read_records(file, text_column, keep_columns))
    with (
        progress_bar(desc="scoring", unit=" reviews", enabled=progress) as bar,
        _open_writer(output, kind, columns, keep_text, len(model.classes), extra_types) as writer,
        _one_torch_thread_per_worker(workers),
        _short_gil_switch_interval(workers),
    ):
        for chunk in score_records(model, records, chunk_size, workers, sentences, min_confidence):
            with _writing(output):
                writer.write(chunk)
            summary.rows += len(chunk.records)
            summary.errors.update(error for error in chunk.errors if error)
            bar.update(len(chunk.records))
    summary.scored = summary.rows - sum(n for error, n in summary.errors.items() if error not in SCORED_WITH_FLAG)
    summary.seconds = time.perf_counter() - started
    return summary
