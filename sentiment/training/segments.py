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
`segment_filter` keeps only the sentences whose polarity agrees with their review's label:
`lexicon` reads VADER's score, `corpus` the training reviews' own polar n-grams (VADER reads
"runs small" as neutral), `lexicon_or_corpus` either. With `segment_relabel`, a sentence that
every reading of the filter puts on the other side of its review ("so sadly i will be returning
this ." in a 4-star review) is kept with the other class's label instead of being left out.
`segment_verdict_clause` reads a sentence that "but" splits by its verdict, the clause after it
("beautiful shirt but runs small !" reads as "but runs small !"), and `segment_negation_veto` lets
VADER's negation rules overrule the corpus n-grams in a sentence with a negator. The lexicon and the
training reviews are training knowledge; no evaluation data is involved.

`segments = "sentences+clauses"` adds, for each sentence that a contrast connective splits ("love
the color but it runs small"), its clauses as examples of their own (the connective opens the
clause it begins): a short negative clause inside a contrast sentence is a labelled short text
the sentences alone do not give.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from sentiment.config import TrainingConfig
from sentiment.data.text import CONTRAST_CONNECTIVES, sentence_spans
from sentiment.errors import SentimentError

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


def lexicon_signs(tokens: Sequence[Sequence[str]], spans: list[tuple[int, int, int]]) -> np.ndarray:
    """Per sentence span: the sign of VADER's compound score of its tokens, 0 inside VADER's
    neutral band."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from sentiment.model.vader import NEUTRAL_BAND

    analyzer = SentimentIntensityAnalyzer()
    signs = np.zeros(len(spans), dtype=np.int64)
    for index, (review, begin, end) in enumerate(spans):
        compound = analyzer.polarity_scores(" ".join(tokens[review][begin:end]))["compound"]
        signs[index] = 1 if compound >= NEUTRAL_BAND else -1 if compound <= -NEUTRAL_BAND else 0
    return signs


CORPUS_MIN_REVIEWS = 20
"""An n-gram counts as polar only when at least this many training reviews contain it."""
CORPUS_MIN_LOG_ODDS = 1.0
"""... and when its log-odds of a positive review, against the prior, is at least this far from 0
(e^1: a 2.7 times higher share of negative than positive reviews contain it, or the reverse)."""


def review_grams(tokens: Sequence[str]) -> set[str]:
    """The lowercased unigrams and bigrams of a token sequence."""
    lowered = [token.lower() for token in tokens]
    return {*lowered, *(f"{a} {b}" for a, b in zip(lowered, lowered[1:]))}


def corpus_polarity(tokens: Sequence[Sequence[str]], labels: np.ndarray) -> dict[str, float]:
    """The polar unigrams and bigrams of the training reviews (binary labels), each with its
    log-odds of a positive review relative to the prior: log((n_pos + a p) / (n_neg + a (1 - p)))
    - log(N_pos / N_neg), with n counting the reviews that contain the gram and a = 1 review of
    pseudo-count split by the prior p. Neutral words ("ordered", "black") sit near 0 whatever
    the class balance; "runs small" and "returned" far below it."""
    counts = [Counter[str](), Counter[str]()]
    for review, label in zip(tokens, labels):
        counts[int(label)].update(review_grams(review))
    negatives, positives = int((labels == 0).sum()), int((labels == 1).sum())
    if not negatives or not positives:
        raise SentimentError("training.segment_filter = 'corpus' needs training reviews of both classes")
    prior = positives / (negatives + positives)
    polarity = {}
    for gram in counts[0].keys() | counts[1].keys():
        negative, positive = counts[0][gram], counts[1][gram]
        if negative + positive < CORPUS_MIN_REVIEWS:
            continue
        log_odds = math.log((positive + prior) / (negative + 1 - prior)) - math.log(positives / negatives)
        if abs(log_odds) >= CORPUS_MIN_LOG_ODDS:
            polarity[gram] = log_odds
    return polarity


def corpus_signs(tokens: Sequence[Sequence[str]], spans: list[tuple[int, int, int]], labels: np.ndarray) -> np.ndarray:
    """Per sentence span: the sign of the sum of its polar n-grams' log-odds (`corpus_polarity` of
    the training reviews); 0 for a sentence without polar n-grams."""
    polarity = corpus_polarity(tokens, labels)
    signs = np.zeros(len(spans), dtype=np.int64)
    for index, (review, begin, end) in enumerate(spans):
        signs[index] = np.sign(sum(polarity.get(gram, 0.0) for gram in review_grams(tokens[review][begin:end])))
    return signs


VERDICT_CONNECTIVES = ("but", "however", "yet")
"""Connectives after which a sentence gives its verdict ("love the color, but it runs small"); the
concessive ones ("although", "though") open the clause that does not."""


def verdict_spans(tokens: Sequence[Sequence[str]], spans: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Each span, or for a span that a `VERDICT_CONNECTIVES` word splits, its clause from the last
    such word to the end (when that clause has a word after the connective)."""
    found = []
    for review, begin, end in spans:
        words = tokens[review]
        cuts = [i for i in range(begin + 1, end - 1) if words[i].lower() in VERDICT_CONNECTIVES]
        found.append((review, cuts[-1], end) if cuts else (review, begin, end))
    return found


def negated_spans(tokens: Sequence[Sequence[str]], spans: list[tuple[int, int, int]]) -> np.ndarray:
    """Per span: does it hold one of VADER's negators (or "n't")?"""
    from sentiment.data.lexicon import vader_lexicon

    negators = vader_lexicon().negators
    return np.asarray(
        [any(word.lower() in negators for word in tokens[review][begin:end]) for review, begin, end in spans],
        dtype=bool,
    )


def filter_verdicts(
    settings: TrainingConfig, tokens: Sequence[Sequence[str]], spans: list[tuple[int, int, int]], labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per span of a binary-labelled review: does any reading `settings.segment_filter` names give
    it its review's sign (`agrees`), and does every reading give it the other sign (`opposes`)? The
    readings: VADER's for `lexicon`, the polar n-grams of the reviews `tokens` for `corpus`, both
    for `lexicon_or_corpus`; `none` has no reading, so every span agrees and none opposes. With
    `segment_verdict_clause`, a span that "but", "however" or "yet" splits is read by its clause
    after the last of them (`verdict_spans`). With `segment_negation_veto` (`lexicon_or_corpus`),
    the corpus reading of a span with a negator does not count where VADER reads the other sign."""
    segment_filter = settings.segment_filter
    if settings.segment_verdict_clause:
        spans = verdict_spans(tokens, spans)
    readings = []
    if segment_filter in ("lexicon", "lexicon_or_corpus"):
        readings.append(lexicon_signs(tokens, spans))
    if segment_filter in ("corpus", "lexicon_or_corpus"):
        readings.append(corpus_signs(tokens, spans, labels))
    if settings.segment_negation_veto:  # TrainingConfig allows it with lexicon_or_corpus only
        lexicon, corpus = readings
        vetoed = negated_spans(tokens, spans) & (lexicon == -corpus) & (lexicon != 0)
        readings[1] = np.where(vetoed, 0, corpus)
    if not readings:
        return np.ones(len(spans), dtype=bool), np.zeros(len(spans), dtype=bool)
    review_signs = np.asarray([1 if labels[review] == 1 else -1 for review, _, _ in spans], dtype=np.int64)
    agrees = np.any([signs == review_signs for signs in readings], axis=0)
    opposes = np.all([signs == -review_signs for signs in readings], axis=0)
    return agrees, opposes


def _check_binary(class_names: list[str]) -> None:
    if class_names != ["negative", "positive"]:
        raise SentimentError(
            f"training.segment_filter reads a polarity's sign, which needs the binary scheme; "
            f"the classes here are {class_names}"
        )


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
        _check_binary(class_names)
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
