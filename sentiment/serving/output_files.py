"""Writing scored rows: one output row per input row, in input order, as CSV, JSON lines or Parquet.

`output_format` names the format from `-o`'s extension (CSV on standard output without `-o`),
`output_columns` lists the columns (source, row, label, prob_<class>..., error, then abstained,
sentences, text and the kept columns), and `open_writer` writes each `ScoredChunk` as it comes:
to standard output, or to a temporary file beside the target that is renamed into place only when
every row is written, so a failed run never leaves a partial file. A kept column keeps its Parquet
type where every input is Parquet (`kept_column_types`); the sentence readings are JSON text in CSV
and nested lists in JSON lines and Parquet (`sentence_readings_type`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentiment.artifacts import atomic_file
from sentiment.errors import SentimentError, os_error
from sentiment.serving.input_files import STDIN, InputFile, parquet_file

if TYPE_CHECKING:
    from sentiment.serving.scoring import ScoredChunk

OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
BASE_COLUMNS = ("source", "row", "label")


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


def kept_column_types(files: Sequence[InputFile], keep_columns: Sequence[str]) -> list:
    """Parquet output: a kept column keeps its Parquet type when every input is Parquet, else it is text."""
    import pyarrow as pa

    if not all(f.format == "parquet" for f in files):
        return [pa.string()] * len(keep_columns)
    schema = parquet_file(files[0]).schema_arrow
    return [schema.field(column).type for column in keep_columns]


@contextlib.contextmanager
def open_writer(output, kind: str, columns: list[str], keep_text: bool, n_classes: int, extra_types: list):
    """A writer for standard output (CSV) or for a temporary file that becomes `output` on success."""
    writer: _ParquetWriter | _CsvWriter | _JsonlWriter
    if output is None or os.fspath(output) == STDIN:
        with writing(output):  # the header too: standard output can be a full disk
            writer = _CsvWriter(sys.stdout, columns, keep_text, owned=False)
        yield writer
        with writing(output):
            writer.close()
        return
    with atomic_file(output, "the output") as temporary, writing(output):
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
def writing(output) -> Iterator[None]:
    """Name the output in a failure to write it (disk full, permissions)."""
    try:
        yield
    except OSError as error:
        name = "standard output" if output is None or os.fspath(output) == STDIN else output
        raise os_error(f"cannot write the output {name}", error) from None


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
