"""A realistic metrics.json (schema v1) for report tests, built with the real metric and contrast code.

The test split and the two systems are simulated: a "model" that reads negation and "but"
clauses and a bag-of-words "baseline" that does not. Everything is deterministic.
"""

from __future__ import annotations

import math
import re
import zlib
from typing import Any

import numpy as np

from sentiment.contrast import ContrastSuite
from sentiment.labels import scheme_labels
from sentiment.metrics import (
    accuracy,
    bootstrap_ci,
    classification_metrics,
    macro_f1,
    metrics_by_length,
    most_confident_errors,
    paired_bootstrap,
)

POSITIVE_WORDS = {"good", "great", "love", "loved", "perfect", "perfectly", "soft", "comfortable", "happy",
                  "recommend", "beautiful", "flattering", "excellent", "worth", "pretty", "well", "nice",
                  "gorgeous", "cozy", "best", "fantastic", "amazing", "glad", "favorite", "fits"}
NEGATIVE_WORDS = {"bad", "cheap", "poor", "poorly", "broke", "terrible", "disappointed", "disappointing",
                  "itchy", "returning", "returned", "awful", "thin", "scratchy", "shrank", "hate", "worst",
                  "waste", "unflattering", "ugly", "tight", "small", "boring", "problem", "wrong"}
NEGATORS = {"not", "n't", "never", "no", "nothing", "doesn't", "don't", "didn't", "isn't", "wasn't"}

_OPENINGS = {
    "positive": ["I love this dress, the fabric is soft and it fits perfectly.",
                 "Great quality and the colour is exactly as pictured.",
                 "So comfortable, I wear it every day.",
                 "Beautiful top, flattering cut and true to size."],
    "negative": ["The fabric is cheap and scratchy, returning it.",
                 "Runs very small and the zipper broke after a week.",
                 "Terrible quality, it fell apart after one wash.",
                 "The colour is nothing like the picture, disappointed."],
}
_FILLER = ["I ordered my usual size.", "It arrived two days late but the packaging was fine.",
           "My sister has the same one in blue.", "I wore it to a wedding last weekend.",
           "The sleeves are a little long for my arms.", "I am 5'4\" and 130 lbs for reference."]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower().replace("n't", " n't"))


def _score(text: str, reads_negation: bool) -> float:
    score, flip, weight = 0.0, 0, 1.0
    for word in _words(text):
        if reads_negation and word in NEGATORS:
            flip = 3
            continue
        if reads_negation and word == "but":
            weight = 2.0  # what follows "but" usually carries the verdict
        polarity = (word in POSITIVE_WORDS) - (word in NEGATIVE_WORDS)
        score += weight * polarity * (-1 if flip > 0 else 1)
        flip = max(0, flip - 1)
    return score


def fake_predict_proba(reads_negation: bool):
    """A deterministic lexicon scorer with the ``predict_proba(texts)`` signature the contrast suite needs."""

    def predict_proba(texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            jitter = (zlib.crc32(text.encode("utf-8")) % 1000) / 1000 - 0.5
            p = 1.0 / (1.0 + math.exp(-(1.6 * _score(text, reads_negation) + 0.8 * jitter)))
            rows.append([1.0 - p, p])
        return np.array(rows)

    return predict_proba


def _test_split(labels: list[str], n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Review texts, true class indices and token counts."""
    y_true = rng.integers(0, len(labels), size=n)
    texts = []
    for y in y_true:
        polarity = "positive" if y >= len(labels) / 2 else "negative"
        filler = rng.choice(_FILLER, size=int(rng.integers(0, 6)))
        texts.append(" ".join([str(rng.choice(_OPENINGS[polarity])), *filler]))
    lengths = np.array([len(text.split()) for text in texts])
    return texts, y_true, lengths


def _simulated_probs(y_true: np.ndarray, k: int, skill: float, rng: np.random.Generator) -> np.ndarray:
    logits = rng.normal(0.0, 1.0, size=(len(y_true), k))
    logits[np.arange(len(y_true)), y_true] += skill
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _system(y_true, probs, labels, lengths) -> dict[str, Any]:
    preds = probs.argmax(axis=1)
    result = classification_metrics(y_true, probs, labels)
    result["accuracy_ci"] = list(bootstrap_ci(y_true, preds, accuracy, n_resamples=300))
    result["macro_f1_ci"] = list(bootstrap_ci(y_true, preds, macro_f1, n_resamples=300))
    result["by_length"] = metrics_by_length(y_true, preds, lengths)
    return result


def _errors(texts, y_true, probs, other_probs, labels, own: str) -> list[dict[str, Any]]:
    rows = []
    for i in most_confident_errors(y_true, probs, k=8):
        mine = dict(zip(labels, map(float, probs[i])))
        theirs = dict(zip(labels, map(float, other_probs[i])))
        rows.append({
            "text": texts[i], "label": labels[y_true[i]], "predicted": labels[int(probs[i].argmax())],
            "model_probs": mine if own == "model" else theirs,
            "baseline_probs": theirs if own == "model" else mine,
        })
    return rows


def example_metrics(scheme: str = "binary", n: int = 600, seed: int = 7) -> dict[str, Any]:
    """A complete metrics.json dict; ``scheme="stars"`` gives five classes and no contrast section."""
    labels = scheme_labels(scheme)
    rng = np.random.default_rng(seed)
    texts, y_true, lengths = _test_split(labels, n, rng)
    model_probs = _simulated_probs(y_true, len(labels), 1.9, rng)
    baseline_probs = _simulated_probs(y_true, len(labels), 1.4, rng)
    model = _system(y_true, model_probs, labels, lengths)
    baseline = _system(y_true, baseline_probs, labels, lengths)
    baseline["C"] = 1.0
    baseline["validation"] = [
        {"C": c, "macro_f1": f1, "accuracy": acc, "converged": c < 10}
        for c, f1, acc in [(0.1, 0.781, 0.812), (1.0, 0.824, 0.851), (10.0, 0.809, 0.842)]]
    model_preds, baseline_preds = model_probs.argmax(axis=1), baseline_probs.argmax(axis=1)

    contrast = None
    if "positive" in labels and "negative" in labels:
        suite = ContrastSuite.load()
        contrast = {
            "suite": "data/contrast/product_reviews.jsonl",
            "suite_sha256": suite.sha256,
            "model": suite.run(fake_predict_proba(reads_negation=True), labels).to_dict(),
            "baseline": suite.run(fake_predict_proba(reads_negation=False), labels).to_dict(),
        }

    return {
        "schema_version": 1,
        "experiment": f"clothing-{scheme}",
        "created": "2025-11-21T14:03:12+00:00",
        "data": {
            "source": {"kind": "huggingface", "name": "clothing-reviews", "split": "train", "text": "Review Text",
                       "label": "Rating"},
            "labels": labels,
            "test_examples": n,
            "prepared": f"data/prepared/clothing-{scheme}",
        },
        "run": {
            "directory": f"runs/clothing-{scheme}",
            "best_epoch": 4,
            "select_metric": "macro_f1",
            "best_validation": {"loss": 0.312, "accuracy": 0.874, "macro_f1": 0.843},
            "model": {"cell": "lstm", "hidden_size": 128, "bidirectional": True, "num_layers": 1,
                      "pooling": "max+mean", "embedding_dim": 50, "dropout": 0.3},
            "parameters": 1_234_567,
            "train_seconds": 183.4,
            "vectors": {"vectors": "glove-6b-50d", "coverage": 0.93},
            "device": "cpu",
        },
        "model": model,
        "baseline": baseline,
        "comparison": {
            "accuracy": paired_bootstrap(y_true, model_preds, baseline_preds, accuracy, n_resamples=300),
            "macro_f1": paired_bootstrap(y_true, model_preds, baseline_preds, macro_f1, n_resamples=300),
        },
        "contrast": contrast,
        "errors": {
            "model": _errors(texts, y_true, model_probs, baseline_probs, labels, "model"),
            "baseline": _errors(texts, y_true, baseline_probs, model_probs, labels, "baseline"),
        },
        "versions": {"python": "3.11.2", "sentiment": "0.1.0", "torch": "2.4.1", "spacy": "3.7.5",
                     "numpy": "1.26.4", "scikit-learn": "1.5.2"},
    }
