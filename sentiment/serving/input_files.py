"""Reading review files for scoring: one `Record` per input row, streamed, in input order.

`resolve_inputs` expands globs and names each file's format (`INPUT_FORMATS`, or `-` for standard
input); `check_columns` fails before any scoring when a file lacks a needed column;
`read_records` yields the rows. A row that cannot be read keeps its place with the reason in
`Record.error` (`sentiment.data.text.ERRORS`). What a record is, per format:

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
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import glob
import io
import json
import os
import sys
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from sentiment.data.text import repair_text as _repair
from sentiment.data.text import text_value as _text_value
from sentiment.errors import SentimentError

INPUT_FORMATS = {".txt": "txt", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
STDIN = "-"
STDIN_SOURCE = "<stdin>"
PARQUET_BATCH = 8192
"""Parquet rows read per batch."""

BYTE_ORDER_MARKS = (  # UTF-32 first: its little-endian mark begins with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


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
        _require_columns(file, parquet_file(file).schema_arrow.names, text_column, keep_columns)
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


def parquet_file(file: InputFile):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(file.path)
    except (pa.ArrowException, OSError) as error:
        raise SentimentError(f"{file.path}: not a readable Parquet file ({error})") from None


def _read_parquet(file: InputFile, text_column: str, keep_columns: Sequence[str]) -> Iterator[Record]:
    import pyarrow as pa

    parquet = parquet_file(file)
    _require_columns(file, parquet.schema_arrow.names, text_column, keep_columns)
    columns = list(dict.fromkeys([text_column, *keep_columns]))
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH, columns=columns):
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
