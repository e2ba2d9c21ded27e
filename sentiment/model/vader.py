"""VADER (Hutto & Gilbert 2014) as a reference system: a human-rated lexicon with hand-written
rules for negation, intensifiers, "but" and punctuation, from the `vaderSentiment` package.

It needs no training and no artifacts, so it stands beside the trained baseline wherever that
appears (test split, contrast suite, out-of-domain sets) and `sentiment score --model vader`
scores any file with it. VADER gives one compound score in [-1, 1]; the mapping to classes:

* binary: compound >= 0 is positive (a text without a single lexicon word scores exactly 0
  and counts as positive, the majority class of product reviews);
* ternary: the authors' band, compound >= 0.05 positive, <= -0.05 negative, neutral between;
* stars: no mapping (VADER is not run).

Its "probabilities" are a monotone reading of the compound score, not calibrated ones: binary
P(positive) = (1 + compound) / 2, with a tie at 0.5 resolved to positive; ternary gives the
chosen class (1 + |compound|) / 2 and splits the rest evenly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from sentiment.data.labels import SCHEMES
from sentiment.errors import SentimentError
from sentiment.model.classifier import TextClassifier

NEUTRAL_BAND = 0.05
MODEL_NAMES = {"vader": "binary", "vader:binary": "binary", "vader:ternary": "ternary"}
SCHEME_CLASSES = {scheme: SCHEMES[scheme] for scheme in ("binary", "ternary")}
"""The label schemes VADER's compound score maps to, with their classes in the schemes' order."""


def vader_scheme(labels: Sequence[str]) -> str | None:
    """The scheme VADER can be read in for these class labels, or None (e.g. star ratings)."""
    for scheme, classes in SCHEME_CLASSES.items():
        if list(labels) == classes:
            return scheme
    return None


def compound_signs(compound) -> np.ndarray:
    """[n] int64 per compound score: 1 at or above `NEUTRAL_BAND`, -1 at or below its negative,
    0 inside the band (the authors' reading of positive, negative and neutral)."""
    compound = np.asarray(compound, dtype=np.float64)
    return np.where(compound >= NEUTRAL_BAND, 1, np.where(compound <= -NEUTRAL_BAND, -1, 0)).astype(np.int64)


def compound_probabilities(compound: np.ndarray, scheme: str) -> np.ndarray:
    """[n, k] class scores from compound scores, columns in the order of `SCHEME_CLASSES[scheme]`."""
    compound = np.clip(np.asarray(compound, dtype=np.float64), -1.0, 1.0)
    if scheme == "binary":
        positive = (1.0 + compound) / 2.0
        # argmax resolves a tie to the first column (negative); compound 0 is read as positive.
        positive = np.where(positive == 0.5, np.nextafter(0.5, 1.0), positive)
        return np.stack([1.0 - positive, positive], axis=1)
    if scheme == "ternary":
        chosen = compound_signs(compound) + 1  # the column of negative, neutral or positive
        confidence = (1.0 + np.abs(compound)) / 2.0
        confidence = np.where(chosen == 1, 1.0 - np.abs(compound) / 2.0, confidence)
        probabilities = np.repeat(((1.0 - confidence) / 2.0)[:, None], 3, axis=1)
        probabilities[np.arange(len(compound)), chosen] = confidence
        return probabilities
    raise SentimentError(f"VADER has no mapping for the {scheme!r} label scheme (binary or ternary only)")


class RawText:
    """VADER reads raw text with its own rules; as a 'tokenizer' it passes each non-blank text through."""

    def pipe(self, texts: Iterable[str]) -> Iterable[list[str]]:
        for text in texts:
            yield [text] if text.strip() else []


class VaderModel(TextClassifier):
    """VADER scored like the trained systems: `predict`, `predict_proba`, and the scoring pipeline."""

    def __init__(self, scheme: str = "binary"):
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        if scheme not in SCHEME_CLASSES:
            raise SentimentError(f"VADER has no mapping for the {scheme!r} label scheme (binary or ternary only)")
        self.scheme = scheme
        self.classes = list(SCHEME_CLASSES[scheme])
        self.max_len = None
        self.tokenizer = RawText()
        self.device = "cpu"
        self._analyzer = SentimentIntensityAnalyzer()
        self._splitter = None

    def sentence_splitter(self):
        """spaCy's sentencizer for `predict(..., sentences=True)`; VADER itself reads raw text."""
        from sentiment.data.text import Tokenizer

        if self._splitter is None:
            self._splitter = Tokenizer()
        return self._splitter

    def compound(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray([self._analyzer.polarity_scores(text)["compound"] for text in texts], dtype=np.float64)

    def predict_tokens(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """From `RawText` 'tokens' (one raw text each), as `predict_proba` and the scoring pipeline pass them."""
        return compound_probabilities(self.compound([" ".join(tokens) for tokens in token_lists]), self.scheme)


def for_labels(labels: Sequence[str]) -> VaderModel | None:
    """VADER read in the scheme of these labels, or None where it has no mapping."""
    scheme = vader_scheme(labels)
    return VaderModel(scheme) if scheme else None
