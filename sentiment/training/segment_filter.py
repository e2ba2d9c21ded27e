"""Which sentence examples agree with their review's label (`training.segment_filter`).

A sentence of a training review is an example with the review's label (`sentiment.training.segments`),
and that label is noisy: most sentences of a positive review are neutral ("I ordered it in black.").
The filter keeps only the sentences whose polarity agrees with their review's label: `lexicon` reads
VADER's score, `corpus` the training reviews' own polar n-grams (VADER reads "runs small" as neutral),
`lexicon_or_corpus` either. With `segment_relabel`, a sentence that every reading puts on the other
side of its review ("so sadly i will be returning this ." in a 4-star review) is kept with the other
class's label instead of being left out. `segment_verdict_clause` reads a sentence that "but" splits by
its verdict, the clause after it ("beautiful shirt but runs small !" reads as "but runs small !"), and
`segment_negation_veto` lets VADER's negation rules overrule the corpus n-grams in a sentence with a
negator. The lexicon and the training reviews are training knowledge; no evaluation data is involved.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from sentiment.config import TrainingConfig
from sentiment.data.labels import SCHEMES
from sentiment.errors import SentimentError


def lexicon_signs(tokens: Sequence[Sequence[str]], spans: list[tuple[int, int, int]]) -> np.ndarray:
    """Per sentence span: the sign of VADER's compound score of its tokens, 0 inside VADER's
    neutral band."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from sentiment.model.vader import compound_signs

    analyzer = SentimentIntensityAnalyzer()
    return compound_signs(
        [analyzer.polarity_scores(" ".join(tokens[review][begin:end]))["compound"] for review, begin, end in spans]
    )


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


def check_binary_classes(class_names: list[str]) -> None:
    """The filter reads a polarity's sign: refuse any scheme but the binary one."""
    if class_names != SCHEMES["binary"]:
        raise SentimentError(
            f"training.segment_filter reads a polarity's sign, which needs the binary scheme; "
            f"the classes here are {class_names}"
        )
