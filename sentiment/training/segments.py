"""Training examples from the sentences of training reviews (`training.segments = "sentences"`).

A 70-token review labelled positive gives its "not itchy at all" almost no credit, and a model
trained on whole reviews only never sees a short text, yet contrast cases, out-of-domain
sentence sets and many users' inputs are single sentences. Each sentence of a training review
(spaCy's sentencizer, stored by `prepare`) becomes an extra example with the review's label.

Those labels are noisy: most sentences of a positive review are neutral ("I ordered it in
black."), so with 88% positive reviews the model learns to call any short text positive.
Two loss weights counter that: `segment_weight` (a sentence against the other examples of its
batch, which are of similar length: `TrainingExamples.loss_shares` says what each kind carries) and
`segment_class_weights` (inverse class frequency among the sentences, so that a sentence as
common in negative reviews as in positive ones is pulled towards neither class);
`segment_logit_adjustment` shifts the sentences' logits by their class prior in the loss instead
(Menon et al. 2021; applied by the training loop, from `TrainingExamples.sentence_log_prior`); and
`segment_filter` keeps only the sentences whose polarity agrees with their review's label, read by
VADER or by the training reviews' own polar n-grams (`sentiment.training.segment_filter`).

`segments = "sentences+clauses"` adds, for each sentence that a contrast connective splits ("love
the color but it runs small"), its clauses as examples of their own (the connective opens the
clause it begins): a short negative clause inside a contrast sentence is a labelled short text
the sentences alone do not give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from sentiment.config import TrainingConfig
from sentiment.data.text import CONTRAST_CONNECTIVES, sentence_spans
from sentiment.errors import SentimentError
from sentiment.training.segment_filter import check_binary_classes, filter_verdicts

EXAMPLE_KINDS = ("reviews", "sentences", "labelled_sentences", "extra_sentences")
"""The kinds of training example, in the order `TrainingExamples` holds them."""


@dataclass
class TrainingExamples:
    """What one epoch iterates over: token ids, labels and per-example loss weights."""

    ids: list[np.ndarray]
    labels: np.ndarray
    weights: np.ndarray | None
    """None: every example weighs 1 (the plain review-level loss)."""
    reviews: int
    """The first `reviews` examples are the whole reviews; the rest are sentences."""
    filtered_out: int = 0
    """Sentences `segment_filter` left out."""
    relabelled: int = 0
    """Sentences kept with the other class's label (`segment_relabel`)."""
    clauses: int = 0
    """Of the sentence examples, how many are clauses of a sentence (`segments = "sentences+clauses"`)."""
    labelled: int = 0
    """Of the sentence examples, how many were labelled one by one (`labelled_sentences`)."""
    extra: int = 0
    """Of the sentence examples, how many come from another dataset (the last ones; `extra_sentences`)."""

    def with_labelled(self, ids: list[np.ndarray], labels: np.ndarray, weight: float) -> TrainingExamples:
        """These examples followed by sentences labelled one by one, of loss weight `weight`; before
        any `extra` ones, which must stay last."""
        if self.extra:
            raise ValueError("labelled sentences go before the other dataset's sentences")
        return replace(self._appended(ids, labels, weight), labelled=self.labelled + len(ids))

    def with_extra(self, ids: list[np.ndarray], labels: np.ndarray, weight: float) -> TrainingExamples:
        """These examples followed by `ids` as sentence examples of loss weight `weight`."""
        return replace(self._appended(ids, labels, weight), extra=self.extra + len(ids))

    @property
    def labelled_rows(self) -> range:
        """Positions of the sentences labelled one by one: just before the other dataset's, which are last."""
        end = len(self.ids) - self.extra
        return range(end - self.labelled, end)

    def epoch_positions(self, epoch: int, labelled_epochs: int = 0, extra_epochs: int = 0) -> np.ndarray:
        """Positions of the examples epoch `epoch` (from 1) trains on: all of them, less the labelled
        sentences after `labelled_epochs` and the other dataset's after `extra_epochs` (0: never)."""
        keep = np.ones(len(self.ids), dtype=bool)
        labelled = self.labelled_rows
        if extra_epochs and epoch > extra_epochs:
            keep[labelled.stop :] = False
        if labelled_epochs and epoch > labelled_epochs:
            keep[labelled.start : labelled.stop] = False
        return np.flatnonzero(keep)

    def _appended(self, ids: list[np.ndarray], labels: np.ndarray, weight: float) -> TrainingExamples:
        weights = np.ones(len(self.ids)) if self.weights is None else self.weights
        return replace(
            self,
            ids=[*self.ids, *ids],
            labels=np.concatenate([self.labels, labels]),
            weights=np.concatenate([weights, np.full(len(ids), weight)]),
        )

    @property
    def sentences(self) -> int:
        return len(self.ids) - self.reviews

    def batch_weights(self, batch: np.ndarray) -> np.ndarray:
        """The loss weights of these positions (1 each without weights); the training loop divides
        a batch's weighted loss by their sum."""
        return np.ones(len(batch)) if self.weights is None else self.weights[batch]

    def kinds(self) -> np.ndarray:
        """[n] each example's index in `EXAMPLE_KINDS`: a whole review, one of its sentences or
        clauses, a sentence labelled one by one, another dataset's sentence."""
        kinds = np.zeros(len(self.ids), dtype=np.int64)
        kinds[self.reviews :] = 1
        labelled = self.labelled_rows
        kinds[labelled.start : labelled.stop] = 2
        kinds[labelled.stop :] = 3
        return kinds

    def loss_shares(self, batches: Sequence[np.ndarray]) -> dict[str, float]:
        """Each kind of example's share of an epoch's loss over these batches (of positions).

        The training loop divides a batch's weighted loss by the batch's summed weights
        (`batch_weights`), so an example carries its weight over that sum, and a batch holds
        examples of similar length: a weight sets an example against the others of its batch, not
        against every example of the epoch. Summed over the batches and divided by their number,
        per kind present."""
        kinds, carried = self.kinds(), np.zeros(len(EXAMPLE_KINDS))
        for batch in batches:
            weights = self.batch_weights(batch)
            carried += np.bincount(kinds[batch], weights=weights / weights.sum(), minlength=len(EXAMPLE_KINDS))
        present = np.bincount(kinds, minlength=len(EXAMPLE_KINDS)) > 0
        total = max(len(batches), 1)
        return {name: float(carried[k] / total) for k, name in enumerate(EXAMPLE_KINDS) if present[k]}

    def sentence_log_prior(self, num_classes: int) -> np.ndarray:
        """log of each class's share among the sentence examples (a pseudo-count of 1 per class)."""
        counts = np.bincount(self.labels[self.reviews :], minlength=num_classes).astype(np.float64) + 1.0
        return np.log(counts / counts.sum())

    def summary(self) -> dict:
        if not self.sentences:
            return {"reviews": self.reviews, "sentences": 0}
        sentence_labels = self.labels[self.reviews :]
        summary = {
            "reviews": self.reviews,
            "sentences": self.sentences,
            "sentence_class_counts": np.bincount(sentence_labels).tolist(),
        }
        if self.filtered_out:
            summary["sentences_filtered_out"] = self.filtered_out
        if self.relabelled:
            summary["sentences_relabelled"] = self.relabelled
        if self.clauses:
            summary["clauses"] = self.clauses
        if self.labelled:
            summary["labelled_sentences"] = self.labelled
        if self.extra:
            summary["extra_sentences"] = self.extra
        if self.weights is not None:
            classes = np.unique(sentence_labels)
            summary["sentence_weight_by_class"] = {
                int(c): round(float(self.weights[self.reviews :][sentence_labels == c][0]), 4) for c in classes
            }
        return summary


def sentence_spans_of_reviews(
    ids: Sequence[np.ndarray], starts: Sequence[np.ndarray], min_tokens: int
) -> list[tuple[int, int, int]]:
    """(review, begin, end) of each review's sentences of at least `min_tokens` tokens; reviews of
    a single sentence add nothing (the sentence is the review)."""
    found: list[tuple[int, int, int]] = []
    for review, (review_ids, review_starts) in enumerate(zip(ids, starts)):
        spans = sentence_spans(review_starts, len(review_ids), min_tokens)
        if len(spans) < 2 and (not spans or spans[0] == (0, len(review_ids))):
            continue
        found.extend((review, begin, end) for begin, end in spans)
    return found


def sentence_examples(
    ids: Sequence[np.ndarray], starts: Sequence[np.ndarray], labels: np.ndarray, min_tokens: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Each review's sentences of at least `min_tokens` tokens, with the review's label."""
    return _from_spans(ids, labels, sentence_spans_of_reviews(ids, starts, min_tokens))


def clause_spans(
    tokens: Sequence[Sequence[str]], spans: list[tuple[int, int, int]], min_tokens: int
) -> list[tuple[int, int, int]]:
    """(review, begin, end) of the clauses of each sentence span that a contrast connective splits
    (`CONTRAST_CONNECTIVES`, lowercased; the connective begins its clause), keeping those of at
    least `min_tokens` tokens; a sentence without a connective inside adds nothing."""
    found: list[tuple[int, int, int]] = []
    for review, begin, end in spans:
        words = tokens[review]
        cuts = [i for i in range(begin + 1, end) if words[i].lower() in CONTRAST_CONNECTIVES]
        bounds = [begin, *cuts, end]
        if cuts:
            found.extend((review, a, b) for a, b in zip(bounds, bounds[1:]) if b - a >= min_tokens)
    return found


def _from_spans(
    ids: Sequence[np.ndarray], labels: np.ndarray, spans: list[tuple[int, int, int]]
) -> tuple[list[np.ndarray], np.ndarray]:
    """The token ids of each (review, begin, end) span, and its review's label."""
    return [ids[r][b:e] for r, b, e in spans], np.asarray([labels[r] for r, _, _ in spans], dtype=np.int64)


def training_examples(
    ids: list[np.ndarray],
    starts: Sequence[np.ndarray] | None,
    labels: np.ndarray,
    num_classes: int,
    config: TrainingConfig,
    tokens: Sequence[Sequence[str]] | None = None,
    class_names: list[str] | None = None,
) -> TrainingExamples:
    """The training reviews, plus their sentences when `config.segments` asks for them, with
    weights; `tokens` and `class_names` are read by `segment_filter = "lexicon"`."""
    class_weights = inverse_frequency(labels, num_classes) if config.class_weights else None
    if config.segments == "none" or starts is None:
        weights = None if class_weights is None else class_weights[labels]
        return TrainingExamples(ids=ids, labels=labels, weights=weights, reviews=len(ids))
    spans = sentence_spans_of_reviews(ids, starts, config.segment_min_tokens)
    is_clause = np.zeros(len(spans), dtype=bool)
    if config.segments == "sentences+clauses":
        if tokens is None:
            raise SentimentError("training.segments = 'sentences+clauses' needs the training tokens")
        clauses = clause_spans(tokens, spans, config.segment_min_tokens)
        spans, is_clause = spans + clauses, np.concatenate([is_clause, np.ones(len(clauses), dtype=bool)])
    filtered_out = relabelled = 0
    flipped = np.zeros(len(spans), dtype=bool)
    if config.segment_filter != "none":
        if tokens is None or class_names is None:
            raise SentimentError("training.segment_filter needs the training tokens and class names")
        check_binary_classes(class_names)
        agrees, opposes = filter_verdicts(config, tokens, spans, labels)
        if config.segment_relabel:
            flipped = opposes
        keep = agrees | flipped
        filtered_out, relabelled = int((~keep).sum()), int(flipped.sum())
        spans, flipped, is_clause = [span for span, kept in zip(spans, keep) if kept], flipped[keep], is_clause[keep]
    sentence_ids, sentence_labels = _from_spans(ids, labels, spans)
    sentence_labels = np.where(flipped, 1 - sentence_labels, sentence_labels)
    review_weights = np.ones(len(ids)) if class_weights is None else class_weights[labels]
    sentence_weights = np.full(len(sentence_ids), config.segment_weight)
    if config.segment_class_weights and len(sentence_ids):
        sentence_weights *= inverse_frequency(sentence_labels, num_classes)[sentence_labels]
    return TrainingExamples(
        ids=[*ids, *sentence_ids],
        labels=np.concatenate([labels, sentence_labels]),
        weights=np.concatenate([review_weights, sentence_weights]),
        reviews=len(ids),
        filtered_out=filtered_out,
        relabelled=relabelled,
        clauses=int(is_clause.sum()),
    )


def inverse_frequency(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class weights that make each class weigh as much in the loss as the others (mean 1)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return counts.sum() / (num_classes * np.maximum(counts, 1))
