"""Training examples from the sentences of training reviews (`training.segments = "sentences"`).

A 70-token review labelled positive gives its "not itchy at all" almost no credit, and a model
trained on whole reviews only never sees a short text, yet contrast cases, out-of-domain
sentence sets and many users' inputs are single sentences. Each sentence of a training review
(spaCy's sentencizer, stored by `prepare`) becomes an extra example with the review's label.

Those labels are noisy: most sentences of a positive review are neutral ("I ordered it in
black."), so with 88% positive reviews the model learns to call any short text positive.
Two loss weights counter that: `segment_weight` (a sentence against a whole review) and
`segment_class_weights` (inverse class frequency among the sentences, so that a sentence as
common in negative reviews as in positive ones is pulled towards neither class).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sentiment.config import TrainingConfig
from sentiment.data.text import sentence_spans


@dataclass
class TrainingExamples:
    """What one epoch iterates over: token ids, labels and per-example loss weights."""

    ids: list[np.ndarray]
    labels: np.ndarray
    weights: np.ndarray | None
    """None: every example weighs 1 (the plain review-level loss)."""
    reviews: int
    """The first `reviews` examples are the whole reviews; the rest are sentences."""

    @property
    def sentences(self) -> int:
        return len(self.ids) - self.reviews

    def summary(self) -> dict:
        if not self.sentences:
            return {"reviews": self.reviews, "sentences": 0}
        sentence_labels = self.labels[self.reviews :]
        summary = {
            "reviews": self.reviews,
            "sentences": self.sentences,
            "sentence_class_counts": np.bincount(sentence_labels).tolist(),
        }
        if self.weights is not None:
            classes = np.unique(sentence_labels)
            summary["sentence_weight_by_class"] = {
                int(c): round(float(self.weights[self.reviews :][sentence_labels == c][0]), 4) for c in classes
            }
        return summary


def sentence_examples(
    ids: Sequence[np.ndarray], starts: Sequence[np.ndarray], labels: np.ndarray, min_tokens: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Each review's sentences of at least `min_tokens` tokens, with the review's label; reviews of
    a single sentence add nothing (the sentence is the review)."""
    sentence_ids, sentence_labels = [], []
    for review_ids, review_starts, label in zip(ids, starts, labels):
        spans = sentence_spans(review_starts, len(review_ids), min_tokens)
        if len(spans) < 2 and (not spans or spans[0] == (0, len(review_ids))):
            continue
        for begin, end in spans:
            sentence_ids.append(review_ids[begin:end])
            sentence_labels.append(label)
    return sentence_ids, np.asarray(sentence_labels, dtype=np.int64)


def training_examples(
    ids: list[np.ndarray],
    starts: Sequence[np.ndarray] | None,
    labels: np.ndarray,
    num_classes: int,
    config: TrainingConfig,
) -> TrainingExamples:
    """The training reviews, plus their sentences when `config.segments` asks for them, with weights."""
    class_weights = inverse_frequency(labels, num_classes) if config.class_weights else None
    if config.segments == "none" or starts is None:
        weights = None if class_weights is None else class_weights[labels]
        return TrainingExamples(ids=ids, labels=labels, weights=weights, reviews=len(ids))
    sentence_ids, sentence_labels = sentence_examples(ids, starts, labels, config.segment_min_tokens)
    review_weights = np.ones(len(ids)) if class_weights is None else class_weights[labels]
    sentence_weights = np.full(len(sentence_ids), config.segment_weight)
    if config.segment_class_weights and len(sentence_ids):
        sentence_weights *= inverse_frequency(sentence_labels, num_classes)[sentence_labels]
    return TrainingExamples(
        ids=[*ids, *sentence_ids],
        labels=np.concatenate([labels, sentence_labels]),
        weights=np.concatenate([review_weights, sentence_weights]),
        reviews=len(ids),
    )


def inverse_frequency(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class weights that make each class weigh as much in the loss as the others (mean 1)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return counts.sum() / (num_classes * np.maximum(counts, 1))
