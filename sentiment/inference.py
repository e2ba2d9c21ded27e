"""Probabilities from a trained model: over token ids (training, evaluation) or raw texts (the API).

```python
from sentiment import load_model
model = load_model("runs/clothing")
predictions = model.predict(["not perfect, but pretty good"])
predictions.labels, predictions.probabilities   # ["positive"], array([[0.03, 0.97]])
```
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from sentiment.batching import bucket_batches, collate
from sentiment.errors import SentimentError
from sentiment.text import Tokenizer, check_texts


@torch.no_grad()
def predict_ids(
    model: torch.nn.Module,
    id_lists: Sequence[Sequence[int] | np.ndarray],
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Class probabilities [n, k] in input order; batches of similar length for speed."""
    was_training = model.training
    model.eval()
    probabilities = None
    try:
        for batch in bucket_batches([len(ids) for ids in id_lists], batch_size):
            ids, lengths = collate([id_lists[i] for i in batch])
            logits = model(ids.to(device), lengths.to(device))
            batch_probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            if probabilities is None:
                probabilities = np.empty((len(id_lists), batch_probs.shape[1]), dtype=np.float32)
            probabilities[batch] = batch_probs
    finally:
        model.train(was_training)
    if probabilities is None:
        return np.empty((0, 0), dtype=np.float32)
    return probabilities


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


class TokenPipe(Protocol):
    """What a classifier tokenizes with: spaCy's `Tokenizer`, or VADER's raw-text pass-through."""

    def pipe(self, texts: Iterable[str]) -> Iterable[list[str]]: ...


class TextClassifier:
    """Scoring texts, shared by the model and the baseline: both tokenize, then `predict_tokens`."""

    classes: list[str]
    tokenizer: TokenPipe

    def predict_tokens(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        raise NotImplementedError

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
        labels = [self.classes[i] for i in probabilities.argmax(axis=1)]
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
        result, position = [], 0
        for sentences in split:
            rows = probabilities[position : position + len(sentences)]
            position += len(sentences)
            result.append(
                [SentencePrediction(text, self.classes[int(p.argmax())], p, None) for text, p in zip(sentences, rows)]
            )
        return result


class SentimentModel(TextClassifier):
    """A trained run ready to score texts: the run's tokenizer settings, vocabulary and weights."""

    tokenizer: Tokenizer

    def __init__(self, run, device: str = "cpu", batch_size: int = 256):
        self.run = run
        self.classes = list(run.labels)
        self.device = device
        self.batch_size = batch_size
        self.max_len = run.config.tokenize.max_len
        self.tokenizer = Tokenizer(lowercase=run.config.tokenize.lowercase)
        self.network = run.build_model(device)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return self.run.vocab.encode(tokens, self.max_len)

    def predict_tokens(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        empty = [i for i, tokens in enumerate(token_lists) if not tokens]
        if empty:
            raise SentimentError(f"text {empty[0]} has no tokens; the model cannot score an empty review")
        return predict_ids(self.network, [self.encode(tokens) for tokens in token_lists], self.batch_size, self.device)

    def predict_sentences(self, texts: Sequence[str]) -> list[list[SentencePrediction]]:
        """With the sentence head: its own split, per-sentence distributions and attention weights,
        from the same forward pass as the text's prediction. Otherwise each sentence on its own."""
        network = self.network
        head = getattr(network, "head", "pooled")
        if head == "pooled":
            return super().predict_sentences(texts)
        result = []
        with torch.no_grad():
            network.eval()
            for tokens, _, sentence_texts in self.tokenizer.pipe_with_sentences(texts, with_texts=True):
                if not tokens:
                    raise SentimentError("a text has no tokens; the model cannot score an empty review")
                ids, lengths = collate([self.encode(tokens)])
                reading = network.read_sentences(ids.to(self.device), lengths.to(self.device))
                probabilities = reading.sentence_log_probs.exp().cpu().numpy()
                weights = reading.weights.cpu().numpy()
                if head == "sentences":
                    # The model's split of the (possibly truncated) ids; the texts are the sentencizer's.
                    texts_for = sentence_texts[: len(probabilities)]
                else:  # clauses: the model's own segments, as its tokens
                    bounds = [*torch.nonzero(reading.starts[0]).flatten().tolist(), len(ids[0])]
                    texts_for = [" ".join(tokens[b:e]) for b, e in zip(bounds, bounds[1:])]
                result.append(
                    [
                        SentencePrediction(text, self.classes[int(p.argmax())], p, float(w))
                        for text, p, w in zip(texts_for, probabilities, weights)
                    ]
                )
        return result


class BaselineModel(TextClassifier):
    """The saved bag-of-words baseline (`runs/<experiment>/baseline/`), scored like the model."""

    def __init__(self, directory: str | Path):
        from sentiment.baseline import BagOfWordsBaseline

        self.baseline = BagOfWordsBaseline.load(directory)
        self.classes = list(self.baseline.labels)
        self.max_len = None
        self.tokenizer = Tokenizer(lowercase=self.baseline.settings.get("lowercase", True))

    def predict_tokens(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        return self.baseline.predict_proba([list(tokens) for tokens in token_lists])


def load_model(path: str | os.PathLike, device: str = "cpu", batch_size: int = 256) -> TextClassifier:
    """Load a trained run (`runs/<experiment>/`), its baseline (`runs/<experiment>/baseline/`), or
    `vader` / `vader:ternary` (the rule-based lexicon, `sentiment.vader`; no files needed)."""
    from sentiment.baseline import CONFIG_FILE
    from sentiment.run import load_run
    from sentiment.vader import MODEL_NAMES, VaderModel

    if str(path) in MODEL_NAMES and not Path(path).exists():
        return VaderModel(MODEL_NAMES[str(path)])
    if (Path(path) / CONFIG_FILE).is_file():
        return BaselineModel(Path(path))
    return SentimentModel(load_run(Path(path)), device=device, batch_size=batch_size)
