"""What a trained recurrent model does with one review, word by word (`sentiment explain`).

For each text, `explain_text` records three things:

- the gates of every recurrent layer and direction, re-run token by token with the model's
  own weights (`sentiment.model.gates.trace_gates`): LSTM input/forget/output gates, candidate and
  cell state; GRU reset/update gates, candidate and state; a plain RNN's hidden state;
- the class probabilities after each prefix `tokens[:1]`, `tokens[:2]`, ... (how the opinion
  evolves as the model reads; the last row is the model's prediction);
- each token's contribution by occlusion: p(predicted class) minus the same probability with
  that one token replaced by `<unk>`. Occlusion rather than integrated gradients: it needs no
  choice of baseline input and no gradients through max pooling, all T variants run as one
  batch, and it reads directly ("without 'but', p(positive) would be 0.40 lower"). Replacing
  by `<unk>` rather than deleting keeps every other token at its position, and the model has
  met `<unk>` in training (words below `vocab.min_freq`), so it stands for "some word".

For an ensemble run (`training.ensemble`), the gates are its first member's; the probabilities
and contributions are the ensemble's. The terminal view, the figures and the HTML page are
`sentiment.reporting.explain_page`'s.

```python
from sentiment.evaluation.explain import explain_text, load_explainable_model, plot_explanation
model = load_explainable_model("runs/clothing")
explanation = explain_text(model, "not perfect, but pretty good")
plot_explanation(explanation, "explain.png")
```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sentiment.data.vocab import UNK_ID
from sentiment.errors import SentimentError
from sentiment.model.batching import predict_ids
from sentiment.model.gates import GateTrace, trace_gates
from sentiment.model.recurrent import recurrent_members
from sentiment.reporting.plots import plot_explanation
from sentiment.serving.inference import SentimentModel, load_model

__all__ = [
    "Explanation",
    "explain_text",
    "explain_texts",
    "load_explainable_model",
    "plot_explanation",
    "read_texts",
    "worst_contrast_failure",
]


@dataclass
class Explanation:
    """One review as the model read it. Arrays are in token order; ``k`` = number of classes."""

    text: str
    tokens: list[str]
    """The tokens the model read (the first `tokenize.max_len`)."""
    ids: np.ndarray
    """[T] vocabulary ids; `<unk>` (1) for words the model does not know."""
    classes: list[str]
    trace: GateTrace
    prefix_probs: np.ndarray
    """[T, k]: row t holds the class probabilities after reading tokens[: t + 1]."""
    contributions: np.ndarray
    """[T]: p(predicted class) minus p(predicted class) with token t replaced by `<unk>`."""
    probs: np.ndarray
    """[k]: the model's prediction for the whole text (= prefix_probs[-1])."""
    dropped_tokens: int = 0
    """Tokens beyond `tokenize.max_len`, which the model never reads."""
    decided: int | None = None
    """The predicted class's index by the model's decision rule (its threshold, if it has one);
    None: the most probable class."""
    sentences: list = None  # type: ignore[assignment]
    """`SentencePrediction` per sentence: its own reading and, with the sentence head, its weight."""

    @property
    def predicted_index(self) -> int:
        return int(self.probs.argmax()) if self.decided is None else self.decided

    @property
    def predicted(self) -> str:
        return self.classes[self.predicted_index]

    @property
    def unknown(self) -> np.ndarray:
        """[T] True where the token is not in the vocabulary (read as `<unk>`)."""
        return self.ids == UNK_ID


def load_explainable_model(path: str | Path, device: str = "cpu") -> SentimentModel:
    """A trained run's model; a baseline directory is refused with one clear error (it has no gates)."""
    model = load_model(path, device=device)
    if not isinstance(model, SentimentModel):
        raise SentimentError(
            f"{path} is the bag-of-words baseline: it has no recurrent gates to explain; "
            "give a trained run directory such as runs/<experiment>"
        )
    return model


def explain_text(model: SentimentModel, text: str) -> Explanation:
    """Gate trace, prefix probabilities and occlusion contributions for one text."""
    if not isinstance(model, SentimentModel):
        raise SentimentError("only a trained recurrent model can be explained; the bag-of-words baseline has no gates")
    if not isinstance(text, str) or not text.strip():
        raise SentimentError("nothing to explain: the text is empty")
    tokens = model.sentence_splitter()(text)
    if not tokens:
        raise SentimentError(f"nothing to explain: {text!r} has no tokens")
    ids = model.encode(tokens)
    count = len(ids)
    network = model.network
    # An ensemble's gates are its first member's; the probabilities below are the ensemble's.
    trace = trace_gates(recurrent_members(network)[0], torch.tensor(ids, dtype=torch.long, device=model.device))
    prefixes = [ids[: t + 1] for t in range(count)]
    occluded = [ids[:t] + [UNK_ID] + ids[t + 1 :] for t in range(count)]
    # One call for both sets: similar lengths are batched together, each sequence unpadded or masked.
    probabilities = predict_ids(network, prefixes + occluded, batch_size=model.batch_size, device=model.device)
    prefix_probs, occluded_probs = probabilities[:count], probabilities[count:]
    probs = prefix_probs[-1]
    predicted = int(model.decide(probs[None])[0])
    contributions = probs[predicted] - occluded_probs[:, predicted]
    return Explanation(
        text=text,
        tokens=list(tokens[:count]),
        ids=np.asarray(ids),
        classes=list(model.classes),
        trace=trace,
        prefix_probs=prefix_probs,
        contributions=contributions,
        probs=probs,
        dropped_tokens=len(tokens) - count,
        decided=predicted,
        sentences=model.predict_sentences([text])[0],
    )


def explain_texts(model: SentimentModel, texts: Sequence[str]) -> list[Explanation]:
    if not texts:
        raise SentimentError("nothing to explain: give one or more texts, or --file with one text per line")
    for number, text in enumerate(texts, start=1):
        if not text.strip():
            raise SentimentError(f"nothing to explain: text {number} is empty")
    return [explain_text(model, text) for text in texts]


def read_texts(path: str | Path) -> list[str]:
    """One text per line; blank lines are skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SentimentError(f"text file not found: {path}") from None
    except (UnicodeDecodeError, IsADirectoryError) as error:
        raise SentimentError(f"{path}: cannot read it as UTF-8 text ({error})") from None
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise SentimentError(f"{path} has no texts (one per line expected)")
    return texts


# ---- for the evaluation report -------------------------------------------------------------


def worst_contrast_failure(cases: Sequence[dict]) -> dict | None:
    """The failed contrast case the model got most confidently wrong, from `ContrastResult.to_dict()["cases"]`.

    Confidence in the wrong answer is p(positive) for an expected negative, 1 - p(positive) for
    an expected positive; None when nothing with a positive/negative label failed.
    """

    def wrongness(case: dict) -> float:
        return case["p_positive"] if case["expected"] == "negative" else 1.0 - case["p_positive"]

    failed = [c for c in cases if not c["passed"] and c["expected"] in ("positive", "negative")]
    return max(failed, key=wrongness, default=None)
