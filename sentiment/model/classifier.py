"""What every text classifier offers, whatever scores it: the trained model, the bag-of-words
baseline and VADER tokenize texts, then `predict_tokens`; `predict` adds labels, the texts'
sentences and abstentions on top (`Predictions`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sentiment.data.text import Tokenizer, check_texts
from sentiment.errors import SentimentError


@dataclass
class SentencePrediction:
    """One sentence of a text, as the model reads it."""

    text: str
    label: str
    probabilities: np.ndarray
    """[k], columns in the order of the model's classes."""
    weight: float | None
    """Its share in the text's prediction (the sentence head's attention); None for a pooled model,
    which reads the text as a whole (each sentence is then scored as a text of its own)."""


@dataclass
class Predictions:
    labels: list[str]
    probabilities: np.ndarray
    """[n, k], columns in the order of `classes`."""
    classes: list[str]
    sentences: list[list[SentencePrediction]] | None = None
    """With `predict(..., sentences=True)`: each text's sentences (spaCy's sentencizer)."""
    abstained: np.ndarray | None = None
    """With `predict(..., min_confidence=P)`: [n] True where the top probability is below P."""


def decide(probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """[n] class indices: the most probable class, or with a `threshold` (binary schemes, fitted
    on validation by `training.decision_threshold`), the second class wherever its probability
    reaches the threshold."""
    probabilities = np.asarray(probabilities)
    if threshold is None:
        return probabilities.argmax(axis=1)
    if probabilities.ndim != 2 or probabilities.shape[1] != 2:
        raise SentimentError(
            f"a decision threshold needs two classes, got probabilities of shape {probabilities.shape}"
        )
    return (probabilities[:, 1] >= threshold).astype(np.int64)


class TokenPipe(Protocol):
    """What a classifier tokenizes with: spaCy's `Tokenizer`, or VADER's raw-text pass-through."""

    def pipe(self, texts: Iterable[str]) -> Iterable[list[str]]: ...


class TextClassifier:
    """Scoring texts, shared by the model and the baseline: both tokenize, then `predict_tokens`."""

    classes: list[str]
    tokenizer: TokenPipe
    decision_threshold: float | None = None
    """P(second class) at or above which that class is the label (binary runs trained with
    `training.decision_threshold`); None: the most probable class."""

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """[n] class indices for [n, k] probabilities, by this classifier's decision rule."""
        return decide(probabilities, self.decision_threshold)

    def predict_tokens(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        raise NotImplementedError

    def scoring_inputs(self, texts: Iterable[str]) -> Iterable[Sequence]:
        """What `score` reads each text into, before `predict_inputs`: its tokens here; a
        classifier may give something cheaper to make (the trained model: token ids). An empty
        one means the text has no tokens; its length is the text's length in tokens."""
        return self.tokenizer.pipe(texts)

    def predict_inputs(self, inputs: Sequence[Sequence]) -> np.ndarray:
        """[n, k] probabilities for what `scoring_inputs` made."""
        return self.predict_tokens(inputs)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """[n, k] probabilities; a text that cannot be scored (None, not a string, empty, no tokens) is one
        SentimentError naming its index, for the model and the baseline alike (`text.check_texts`)."""
        texts = check_texts(texts)
        token_lists = list(self.tokenizer.pipe(texts))
        if not token_lists:
            return np.empty((0, len(self.classes)), dtype=np.float32)
        empty = next((i for i, tokens in enumerate(token_lists) if not tokens), None)
        if empty is not None:
            raise SentimentError(
                f"text {empty} ({texts[empty]!r:.40}) cannot be scored (no_tokens): the tokenizer found no tokens in it"
            )
        return self.predict_tokens(token_lists)

    def sentence_splitter(self) -> Tokenizer:
        assert isinstance(self.tokenizer, Tokenizer)  # VADER, which reads raw text, has its own
        return self.tokenizer

    def predict(
        self, texts: Sequence[str] | str, sentences: bool = False, min_confidence: float | None = None
    ) -> Predictions:
        """Labels and class probabilities; with `sentences`, also every sentence's own reading; with
        `min_confidence`, which predictions fall below it (they keep their labels, marked)."""
        if isinstance(texts, str):
            texts = [texts]
        if min_confidence is not None and not 0 <= min_confidence <= 1:
            raise SentimentError(f"min_confidence must be between 0 and 1, got {min_confidence!r}")
        probabilities = self.predict_proba(texts)
        labels = [self.classes[i] for i in self.decide(probabilities)]
        abstained = None if min_confidence is None else probabilities.max(axis=1) < min_confidence
        return Predictions(
            labels=labels,
            probabilities=probabilities,
            classes=self.classes,
            sentences=self.predict_sentences(texts) if sentences else None,
            abstained=abstained,
        )

    def predict_sentences(self, texts: Sequence[str]) -> list[list[SentencePrediction]]:
        """Each text split into sentences, each sentence scored as a text of its own."""
        split = [
            sentence_texts
            for _, _, sentence_texts in self.sentence_splitter().pipe_with_sentences(texts, with_texts=True)
        ]
        flat = [sentence for sentences in split for sentence in sentences]
        probabilities = self.predict_proba(flat) if flat else np.empty((0, len(self.classes)))
        decided = self.decide(probabilities) if flat else np.empty(0, dtype=np.int64)
        result, position = [], 0
        for sentences in split:
            rows = probabilities[position : position + len(sentences)]
            chosen = decided[position : position + len(sentences)]
            position += len(sentences)
            result.append(
                [SentencePrediction(text, self.classes[int(c)], p, None) for text, p, c in zip(sentences, rows, chosen)]
            )
        return result
