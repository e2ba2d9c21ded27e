"""The validation reviews' titles read alone, after training (`run.json` `title_validation`).

A review's title ("Love it!", "Runs small", "Not for me") is a short text of the experiment's own
domain, written by the author of the review as its verdict, so it mostly carries its review's label.
Read alone, the titles of the validation reviews are the one in-domain reading of short texts that
validation data gives: the held-out sentences labelled one by one (`sentence_validation`) are of
other products, and the contrast suite and the out-of-domain sets only report. A lever that moves
how the model reads one sentence shows here before it shows anywhere that decides nothing (a head
for one-sentence texts trained on phone and restaurant sentences alone read these titles at
macro-F1 0.81 against the default's 0.84-0.85, docs/RESULTS.md). Nothing trains on them: they are
the validation split's. Present when `prepare` kept titles (`data.title_column`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import recall_score

from sentiment.data.prepare import PreparedData
from sentiment.data.text import Tokenizer
from sentiment.data.vocab import Vocab
from sentiment.training.calibration import read_as_shipped


def validation_titles(prepared: PreparedData) -> tuple[list[str], np.ndarray]:
    """The validation reviews' titles, the reviews that have one, and their reviews' class ids."""
    validation = prepared.split("validation")
    if "title" not in validation.column_names:
        return [], np.zeros(0, dtype=np.int64)
    rows = [(title, label) for title, label in zip(validation["title"], validation["label"]) if title]
    return [title for title, _ in rows], np.asarray([label for _, label in rows], dtype=np.int64)


def title_reading(
    prepared: PreparedData,
    model: torch.nn.Module,
    vocab: Vocab,
    lowercase: bool,
    max_len: int,
    device: torch.device,
    run_info: dict[str, Any],
) -> dict[str, Any] | None:
    """The kept model on the validation titles, each alone and labelled by its review, read as the
    run ships the model (its temperature and decision threshold, where `run_info` has them): accuracy,
    macro-F1, loss and each class's recall. None when the prepared data has no titles."""
    titles, labels = validation_titles(prepared)
    if not titles:
        return None
    tokens = list(Tokenizer(lowercase=lowercase).pipe(titles))
    scores, predictions = read_as_shipped(model, vocab.encode_arrays(tokens, max_len), labels, device, run_info)
    class_names = prepared.labels
    present = [k for k in range(len(class_names)) if (labels == k).any()]
    recalls = recall_score(labels, predictions, labels=present, average=None, zero_division=0)
    return {
        "titles": len(titles),
        "class_counts": {name: int((labels == k).sum()) for k, name in enumerate(class_names)},
        **scores,
        "recall": {class_names[k]: round(float(recall), 5) for k, recall in zip(present, recalls)},
    }
