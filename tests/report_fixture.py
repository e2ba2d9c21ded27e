"""A realistic metrics.json (schema v2, valid against `sentiment.schemas.EvaluationMetrics`) for report tests, built with the real metric and contrast code.

The test split and the two systems are simulated: a "model" that reads negation and "but"
clauses and a bag-of-words "baseline" that does not. Everything is deterministic.
"""

from __future__ import annotations

import math
import re
import zlib
from typing import Any

import numpy as np

from sentiment.data.labels import scheme_labels
from sentiment.evaluation.contrast import ContrastSuite
from sentiment.metrics import (
    accuracy,
    bootstrap_ci,
    calibrated_ece,
    classification_metrics,
    macro_f1,
    metrics_by_length,
    most_confident_errors,
    paired_bootstrap,
    risk_coverage,
)

POSITIVE_WORDS = {
    "good",
    "great",
    "love",
    "loved",
    "perfect",
    "perfectly",
    "soft",
    "comfortable",
    "happy",
    "recommend",
    "beautiful",
    "flattering",
    "excellent",
    "worth",
    "pretty",
    "well",
    "nice",
    "gorgeous",
    "cozy",
    "best",
    "fantastic",
    "amazing",
    "glad",
    "favorite",
    "fits",
}
NEGATIVE_WORDS = {
    "bad",
    "cheap",
    "poor",
    "poorly",
    "broke",
    "terrible",
    "disappointed",
    "disappointing",
    "itchy",
    "returning",
    "returned",
    "awful",
    "thin",
    "scratchy",
    "shrank",
    "hate",
    "worst",
    "waste",
    "unflattering",
    "ugly",
    "tight",
    "small",
    "boring",
    "problem",
    "wrong",
}
NEGATORS = {"not", "n't", "never", "no", "nothing", "doesn't", "don't", "didn't", "isn't", "wasn't"}

_OPENINGS = {
    "positive": [
        "I love this dress, the fabric is soft and it fits perfectly.",
        "Great quality and the colour is exactly as pictured.",
        "So comfortable, I wear it every day.",
        "Beautiful top, flattering cut and true to size.",
    ],
    "negative": [
        "The fabric is cheap and scratchy, returning it.",
        "Runs very small and the zipper broke after a week.",
        "Terrible quality, it fell apart after one wash.",
        "The colour is nothing like the picture, disappointed.",
    ],
}
_FILLER = [
    "I ordered my usual size.",
    "It arrived two days late but the packaging was fine.",
    "My sister has the same one in blue.",
    "I wore it to a wedding last weekend.",
    "The sleeves are a little long for my arms.",
    "I am 5'4\" and 130 lbs for reference.",
]


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
    result["risk_coverage"] = risk_coverage(y_true, probs)
    result["ece_if_calibrated"] = list(calibrated_ece(probs, n_draws=300))
    return result


def _errors(
    texts, y_true, probs_by_system: dict[str, np.ndarray], labels, own: str, k: int = 8
) -> list[dict[str, Any]]:
    rows = []
    probs = probs_by_system[own]
    for i in most_confident_errors(y_true, probs, k=k):
        row = {"text": texts[i], "label": labels[y_true[i]], "predicted": labels[int(probs[i].argmax())]}
        for system, system_probs in probs_by_system.items():
            row[f"{system}_probs"] = dict(zip(labels, map(float, system_probs[i])))
        if own == "model" and not rows:
            row["deciding_sentence"] = {
                "text": texts[i].split(",")[0],
                "weight": 0.62,
                "probs": dict(zip(labels, map(float, probs[i]))),
            }
        rows.append(row)
    return rows


def _paired(y_true, probs_a, probs_b) -> dict[str, Any]:
    a, b = probs_a.argmax(axis=1), probs_b.argmax(axis=1)
    return {
        "accuracy": paired_bootstrap(y_true, a, b, accuracy, n_resamples=300),
        "macro_f1": paired_bootstrap(y_true, a, b, macro_f1, n_resamples=300),
    }


def _out_of_domain_set(name: str, labels: list[str], rng: np.random.Generator) -> dict[str, Any]:
    """One simulated out-of-domain sentence set with the three systems' figures."""
    n = 300
    texts = [f"{name} sentence {i}: the screen is {'not ' if i % 3 == 0 else ''}bright" for i in range(n)]
    y_true = (rng.random(n) < 0.6).astype(int)
    probs = {
        "model": _simulated_probs(y_true, 2, 1.2, rng),
        "baseline": _simulated_probs(y_true, 2, 0.8, rng),
        "vader": _simulated_probs(y_true, 2, 1.0, rng),
    }
    return {
        "name": name,
        "description": f"{name}: sentences rated by people",
        "cut": 0.5,
        "origin": {"package": "vaderSentiment==3.3.2", "member": f"x.tar.gz/{name}.txt", "sha256": "ab" * 32},
        "sentences_read": n + 40,
        "sentences": n,
        "dropped_middle": 40,
        "positive_share": float(y_true.mean()),
        "systems": {
            system: {
                "n_examples": n,
                "accuracy": accuracy(y_true, p.argmax(1)),
                "accuracy_ci": list(bootstrap_ci(y_true, p.argmax(1), accuracy, n_resamples=300)),
                "macro_f1": macro_f1(y_true, p.argmax(1)),
                "macro_f1_ci": list(bootstrap_ci(y_true, p.argmax(1), macro_f1, n_resamples=300)),
            }
            for system, p in probs.items()
        },
        "comparison": {other: _paired(y_true, probs["model"], probs[other]) for other in ("baseline", "vader")},
        "errors": _errors(texts, y_true, probs, labels, "model", k=5),
    }


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
        for c, f1, acc in [(0.1, 0.781, 0.812), (1.0, 0.824, 0.851), (10.0, 0.809, 0.842)]
    ]
    binary = labels == ["negative", "positive"]
    probs = {"model": model_probs, "baseline": baseline_probs}
    vader = None
    if binary:
        probs["vader"] = _simulated_probs(y_true, len(labels), 0.9, rng)
        vader = {**_system(y_true, probs["vader"], labels, lengths), "scheme": "binary"}

    contrast = None
    if "positive" in labels and "negative" in labels:
        suite = ContrastSuite.load()
        contrast = {
            "suite": "sentiment/resources/contrast/product_reviews.jsonl",
            "suite_sha256": suite.sha256,
            "model": suite.run(fake_predict_proba(reads_negation=True), labels).to_dict(),
            "baseline": suite.run(fake_predict_proba(reads_negation=False), labels).to_dict(),
        }
        if binary:
            contrast["vader"] = suite.run(fake_predict_proba(reads_negation=True), labels).to_dict()

    return {
        "schema_version": 2,
        "experiment": f"clothing-{scheme}",
        "created": "2025-11-21T14:03:12+00:00",
        "data": {
            "source": {
                "kind": "huggingface",
                "name": "clothing-reviews",
                "split": "train",
                "text": "Review Text",
                "label": "Rating",
            },
            "labels": labels,
            "test_examples": n,
            "prepared": f"data/prepared/clothing-{scheme}",
        },
        "run": {
            "directory": f"runs/clothing-{scheme}",
            "best_epoch": 4,
            "select_metric": "macro_f1",
            "best_validation": {"loss": 0.312, "accuracy": 0.874, "macro_f1": 0.843},
            "model": {
                "cell": "lstm",
                "hidden_size": 128,
                "bidirectional": True,
                "num_layers": 1,
                "pooling": "max+mean",
                "embedding_dim": 50,
                "dropout": 0.3,
            },
            "parameters": 1_234_567,
            "train_seconds": 183.4,
            "vectors": {"vectors": "glove-6b-50d", "coverage": 0.93},
            "device": "cpu",
            "sentence_validation": {
                "set": "uci",
                "sentences": 589,
                "accuracy": 0.83192,
                "accuracy_by_source": {"amazon": 0.83854, "imdb": 0.86364, "yelp": 0.79397},
                "trained_on_the_rest": False,
            },
            "title_validation": {
                "titles": 1719,
                "class_counts": {"negative": 198, "positive": 1521},
                "accuracy": 0.93484,
                "macro_f1": 0.84434,
                "recall": {"negative": 0.74747, "positive": 0.95924},
            },
        },
        "model": model,
        "baseline": baseline,
        "vader": vader,
        "comparison": _paired(y_true, model_probs, baseline_probs),
        "comparison_vader": _paired(y_true, model_probs, probs["vader"]) if vader else None,
        "contrast": contrast,
        "errors": {system: _errors(texts, y_true, probs, labels, system) for system in probs},
        "out_of_domain": (
            {
                "sets": [_out_of_domain_set(name, labels, rng) for name in ("amazon-snippets", "movie-snippets")],
                "skipped": None,
            }
            if binary
            else {"sets": [], "skipped": "not run: the sentence sets are rated negative to positive"}
        ),
        "explain": [],
        "versions": {
            "python": "3.11.2",
            "sentiment": "0.1.0",
            "torch": "2.4.1",
            "spacy": "3.7.5",
            "numpy": "1.26.4",
            "scikit-learn": "1.5.2",
        },
    }
