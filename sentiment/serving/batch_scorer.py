"""Scoring one batch of rows with `score`'s semantics, for any engine that maps over batches.

`BatchScorer(model_path)` loads the model and tokenizer in its constructor, so an engine sends
workers only the path and builds one scorer per worker (Ray Data's `map_batches` with a class:
one model per actor). Called on a batch (a pyarrow Table, a pandas DataFrame or a dict of
columns) holding `source`, `row`, the text column and any columns to keep, it returns a batch of
the same kind with `score`'s output columns (source, row, label, prob_<class>..., error, then the
batch's other columns, passed through), computed by the same `sentiment.serving.scoring.score_chunk` as
the local engine, so the two cannot drift. Without `source` and `row` columns the rows are
numbered from 1 within the batch. An `error` column in the batch (a reading error, as
`read_records` gives them) is kept and the row not scored. With `sentences=True` a `sentences`
column follows (`score --sentences`): each row's sentence readings as a nested list, or as JSON
text with `nested=False` (for CSV, which holds no nested values).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from sentiment.data.text import text_value
from sentiment.serving.input_files import Record
from sentiment.serving.output_files import sentence_readings_type
from sentiment.serving.scoring import score_chunk

TEXT = "text"


class BatchScorer:
    def __init__(
        self,
        model_path: str,
        text_column: str = TEXT,
        device: str = "cpu",
        batch_size: int = 64,
        min_confidence: float | None = None,
        keep_text: bool = False,
        sentences: bool = False,
        nested: bool = True,
        precision: str = "float32",
    ):
        import torch

        from sentiment.serving.inference import load_model

        torch.set_num_threads(1)  # one core per worker: an engine runs one scorer per CPU it is given
        self.model = load_model(model_path, device=device, batch_size=batch_size, precision=precision)
        self.classes = list(self.model.classes)
        self.text_column, self.keep_text = text_column, keep_text
        self.min_confidence = min_confidence
        self.sentences, self.nested = sentences, nested

    def __call__(self, batch):
        columns, kind = _as_columns(batch)
        n = len(next(iter(columns.values()))) if columns else 0
        sources = columns.get("source", [""] * n)
        rows = columns.get("row", range(1, n + 1))
        values = columns.get(self.text_column, [None] * n)
        records = []
        for source, row, value, reading_error in zip(sources, rows, values, columns.get("error", [None] * n)):
            text, problem = text_value(value)
            records.append(Record(str(source), int(row), text, (), reading_error or problem))
        scored = score_chunk(self.model, records, sentences=self.sentences, min_confidence=self.min_confidence)
        out: dict[str, Any] = {
            "source": [r.source for r in records],
            "row": [r.row for r in records],
            "label": scored.labels,
        }
        for j, label in enumerate(self.classes):
            out[f"prob_{label}"] = scored.probabilities[:, j]
        out["error"] = scored.errors
        if scored.abstained is not None:
            out["abstained"] = scored.abstained
        if scored.sentences is not None:
            out["sentences"] = self._sentence_column(scored.sentences, kind)
        if self.keep_text:
            out["text"] = [r.text for r in records]
        for column, column_values in columns.items():
            if column in ("source", "row", "error", self.text_column):
                continue
            out[column if column not in out else f"input_{column}"] = list(column_values)
        return _from_columns(out, kind)

    def _sentence_column(self, readings: list[list[dict] | None], kind: str):
        if not self.nested:
            return [None if row is None else json.dumps(row) for row in readings]
        if kind == "arrow":  # typed, so that a batch without a scored row has the same schema
            import pyarrow as pa

            return pa.array(readings, type=sentence_readings_type(self.classes))
        return readings


def _as_columns(batch) -> tuple[dict[str, list], str]:
    if isinstance(batch, dict):
        return {k: list(v) for k, v in batch.items()}, "dict"
    if hasattr(batch, "to_pydict"):  # pyarrow
        return batch.to_pydict(), "arrow"
    # pandas marks a missing value as NaN or None alike: both are "no text here"
    return {k: batch[k].astype(object).where(batch[k].notna(), None).tolist() for k in batch.columns}, "pandas"


def _from_columns(columns: dict[str, Any], kind: str):
    if kind == "arrow":
        import pyarrow as pa

        def array(values):
            if isinstance(values, pa.Array):
                return values
            return pa.array(values, mask=np.isnan(values)) if isinstance(values, np.ndarray) else pa.array(values)

        return pa.table({k: array(v) for k, v in columns.items()})
    if kind == "pandas":
        import pandas as pd

        return pd.DataFrame(columns)
    return columns
