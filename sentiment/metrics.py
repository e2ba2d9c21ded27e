"""Classification metrics for model-versus-baseline reports.

Point metrics are scikit-learn's (``accuracy_score``, ``f1_score``,
``precision_recall_fscore_support``, ``confusion_matrix``, the ranking metrics); every
function returns JSON-serializable python values, so a report can be written with
``json.dump`` without conversion. Class indices are integers ``0 .. k-1`` that
index ``labels`` and the columns of a probability matrix.

The bootstrap helpers take any ``metric(y_true, y_pred) -> float`` callable.
The two provided ones, :data:`accuracy` and :data:`macro_f1`, are scikit-learn's for
one sample and can also score a whole batch of resamples at once (one ``np.bincount``
per chunk instead of one scikit-learn call per resample, equal to scikit-learn's figure
for each), which keeps 1000 resamples of a few thousand examples well under a second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from sentiment.errors import SentimentError

__all__ = [
    "ECE_BINS",
    "MetricFn",
    "ResampledMetric",
    "accuracy",
    "bootstrap_ci",
    "calibrated_ece",
    "classification_metrics",
    "macro_f1",
    "metrics_by_length",
    "most_confident_errors",
    "paired_bootstrap",
]

ECE_BINS = 15
"""Number of equal-width confidence bins for ECE and the reliability diagram."""

_MAX_INDEX_CELLS = 4_000_000
"""Upper bound on resample-index cells held at once (~32 MB of int64)."""

_PROB_SUM_TOLERANCE = 1e-4
"""Rows of ``probs`` may drift from 1 by float32 softmax rounding, not more."""

MetricFn = Callable[[np.ndarray, np.ndarray], float]


# --------------------------------------------------------------------------- #
# Input validation
# --------------------------------------------------------------------------- #


def _as_class_indices(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D int64 array, rejecting floats like 0.5 and NaN."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise SentimentError(f"{name} must be a 1-D array of class indices, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)):
            raise SentimentError(f"{name} must contain integer class indices, got dtype {array.dtype}")
        if not np.all(array == np.round(array)):
            raise SentimentError(f"{name} must contain integer class indices, got non-integer values")
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise SentimentError(f"{name} contains a negative class index ({int(array.min())})")
    return array


def _check_same_length(**arrays: np.ndarray) -> int:
    """Return the shared length of ``arrays``; empty inputs make every metric undefined."""
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) != 1:
        described = ", ".join(f"{name}={length}" for name, length in lengths.items())
        raise SentimentError(f"inputs must have the same length, got {described}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise SentimentError("cannot compute metrics on zero examples")
    return n


def _as_probabilities(probs: Any, n: int, k: int | None = None) -> np.ndarray:
    """Validate an ``(n, k)`` probability matrix; catching logits here avoids a silently wrong ECE."""
    array = np.asarray(probs, dtype=np.float64)
    if array.ndim != 2:
        raise SentimentError(f"probs must be a 2-D (n_examples, n_classes) array, got shape {array.shape}")
    if array.shape[0] != n:
        raise SentimentError(f"probs has {array.shape[0]} rows but y_true has {n} entries")
    if k is not None and array.shape[1] != k:
        raise SentimentError(f"probs has {array.shape[1]} columns but there are {k} labels")
    if array.shape[1] < 2:
        raise SentimentError("probs needs at least 2 class columns")
    if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
        raise SentimentError("probs must contain finite probabilities in [0, 1] (were logits passed?)")
    worst = float(np.max(np.abs(array.sum(axis=1) - 1.0)))
    if worst > _PROB_SUM_TOLERANCE:
        raise SentimentError(f"each row of probs must sum to 1 (largest deviation {worst:.3g}); apply softmax first")
    return array


def _check_indices_below(array: np.ndarray, k: int, name: str) -> None:
    """Reject class indices that have no label, which would otherwise shift the confusion matrix."""
    if array.size and array.max() >= k:
        raise SentimentError(f"{name} contains class index {int(array.max())} but there are only {k} labels")


# --------------------------------------------------------------------------- #
# Counting helpers for the vectorized bootstrap
# --------------------------------------------------------------------------- #


def _per_class_scores(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 per class from ``(..., k, k)`` counts; 0/0 counts as 0 (zero_division=0).

    F1 uses ``2tp / (2tp + fp + fn)``, which equals the harmonic mean of P and R
    whenever that is defined and needs no second division guard.
    """
    tp = np.diagonal(confusion, axis1=-2, axis2=-1).astype(np.float64)
    predicted = confusion.sum(axis=-2).astype(np.float64)
    actual = confusion.sum(axis=-1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(predicted + actual > 0, 2.0 * tp / (predicted + actual), 0.0)
    return precision, recall, f1


def _compact_classes(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Renumber the classes present in either array to ``0 .. c-1`` so counting arrays stay small."""
    classes, inverse = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    n = len(y_true)
    return inverse[:n], inverse[n:], len(classes)


# --------------------------------------------------------------------------- #
# Metric callables
# --------------------------------------------------------------------------- #


@runtime_checkable
class ResampledMetric(Protocol):
    """A metric that can also score many bootstrap resamples in one vectorized pass."""

    name: str

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float: ...

    def resampled(self, y_true: np.ndarray, y_pred: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Score every row of ``indices`` (shape ``(r, n)``) as one resample; returns shape ``(r,)``."""
        ...


class _Accuracy:
    """Share of exact matches."""

    name = "accuracy"

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        _check_same_length(y_true=y_true, y_pred=y_pred)
        return float(accuracy_score(y_true, y_pred))

    def resampled(self, y_true: np.ndarray, y_pred: np.ndarray, indices: np.ndarray) -> np.ndarray:
        correct = (np.asarray(y_true) == np.asarray(y_pred)).astype(np.float64)
        return correct[indices].mean(axis=1)


class _MacroF1:
    """Unweighted mean of per-class F1 over the classes present in ``y_true`` or ``y_pred``.

    One sample: ``sklearn.metrics.f1_score(average="macro", zero_division=0)`` itself.
    In :meth:`resampled` the class set is fixed from the full data, so a rare
    class that a resample happens to miss counts as F1 = 0 rather than silently
    changing the denominator of the average.
    """

    name = "macro_f1"

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        y_true = _as_class_indices(y_true, "y_true")
        y_pred = _as_class_indices(y_pred, "y_pred")
        _check_same_length(y_true=y_true, y_pred=y_pred)
        return float(f1_score(y_true, y_pred, average="macro", zero_division=0))

    def resampled(self, y_true: np.ndarray, y_pred: np.ndarray, indices: np.ndarray) -> np.ndarray:
        true_c, pred_c, c = _compact_classes(_as_class_indices(y_true, "y_true"), _as_class_indices(y_pred, "y_pred"))
        r = indices.shape[0]
        # One bincount for all resamples: cell = resample * c*c + true * c + pred.
        cells = (np.arange(r, dtype=np.int64)[:, None] * (c * c)) + (true_c * c + pred_c)[indices]
        confusion = np.bincount(cells.ravel(), minlength=r * c * c).reshape(r, c, c)
        _, _, f1 = _per_class_scores(confusion)
        return f1.mean(axis=1)


accuracy: ResampledMetric = _Accuracy()
"""``accuracy(y_true, y_pred) -> float``; vectorized in the bootstrap helpers."""

macro_f1: ResampledMetric = _MacroF1()
"""``macro_f1(y_true, y_pred) -> float``; vectorized in the bootstrap helpers."""


# --------------------------------------------------------------------------- #
# Full report
# --------------------------------------------------------------------------- #


def classification_metrics(y_true: Any, probs: Any, labels: Sequence[str], y_pred: Any = None) -> dict[str, Any]:
    """Every number a model-vs-baseline report needs, as plain JSON-serializable values.

    ``y_true`` holds class indices into ``labels``; ``probs`` is ``(n, k)`` with
    columns in the order of ``labels``; the prediction is the arg-max column.

    Returned keys: ``n_examples``, ``accuracy``, ``macro_f1`` (over all ``labels``,
    a class with no support and no predictions counts as 0), ``per_class``
    (``{label: {precision, recall, f1, support}}``, zero_division=0),
    ``confusion_matrix`` (rows = true, columns = predicted), ``ece`` and
    ``reliability`` (see :func:`_calibration`), and ``roc_auc`` / ``pr_auc``.

    ``roc_auc`` and ``pr_auc`` (average precision) are defined only for two
    labels and treat column index 1 (``labels[1]``) as the positive class, scored
    by ``probs[:, 1]``. They are ``None`` for more than two labels, or when
    ``y_true`` contains only one class (the ranking metrics are undefined then).
    """
    labels = list(labels)
    k = len(labels)
    if k < 2:
        raise SentimentError(f"need at least 2 labels, got {labels!r}")
    if len(set(labels)) != k:
        raise SentimentError(f"labels must be unique, got {labels!r}")
    y_true = _as_class_indices(y_true, "y_true")
    n = _check_same_length(y_true=y_true)
    _check_indices_below(y_true, k, "y_true")
    probs = _as_probabilities(probs, n, k)

    y_pred = _predictions(y_pred, probs)
    classes = np.arange(k)
    confusion = confusion_matrix(y_true, y_pred, labels=classes)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    ece, reliability = _calibration(y_true, probs)
    roc_auc, pr_auc = _binary_ranking_metrics(y_true, probs)
    return {
        "n_examples": int(n),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1.mean()),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": confusion.astype(int).tolist(),
        "ece": ece,
        "reliability": reliability,
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
    }


def _confidence_bins(confidence: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_bins + 1`` equal-width edges over [0, 1] and each confidence's bin index: bin ``i``
    holds ``edges[i] < x <= edges[i + 1]`` (the first also takes 0)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return edges, np.digitize(confidence, edges[1:-1], right=True)


def _calibration(y_true: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> tuple[float, list[dict[str, Any]]]:
    """Top-label expected calibration error and the per-bin table behind it.

    Standard definition (Guo et al., 2017): confidence = max probability; bins
    are ``(i/B, (i+1)/B]`` for ``B`` equal-width bins (the first also takes 0);
    ``ECE = sum_b (n_b / n) * |accuracy_b - mean confidence_b|``. Empty bins are
    kept in the table with ``count`` 0 and ``None`` means, so a reliability
    diagram has a fixed x-axis.
    """
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    edges, bin_of = _confidence_bins(confidence, n_bins)
    counts = np.bincount(bin_of, minlength=n_bins)
    confidence_sum = np.bincount(bin_of, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(bin_of, weights=correct, minlength=n_bins)

    ece = 0.0
    table = []
    for i in range(n_bins):
        count = int(counts[i])
        mean_conf = float(confidence_sum[i] / count) if count else None
        mean_acc = float(correct_sum[i] / count) if count else None
        if mean_acc is not None and mean_conf is not None:
            ece += count / len(y_true) * abs(mean_acc - mean_conf)
        table.append(
            {
                "lower": float(edges[i]),
                "upper": float(edges[i + 1]),
                "confidence": mean_conf,
                "accuracy": mean_acc,
                "count": count,
            }
        )
    return float(ece), table


def calibrated_ece(
    probs: Any, n_draws: int = 1000, seed: int = 0, n_bins: int = ECE_BINS
) -> tuple[float, float, float]:
    """The ECE a perfectly calibrated system with these confidences would show on this many
    examples: ``(mean, 2.5% quantile, 97.5% quantile)`` over ``n_draws`` simulated test sets.

    ECE is biased upwards on a finite sample (Kumar et al. 2019): even a system whose every
    confidence is its true accuracy gets a few predictions in a small bin right or wrong by chance.
    Here each prediction is drawn correct with probability its confidence (the top-label
    probability), in the bins :func:`_calibration` uses (:func:`_confidence_bins`); an ECE inside
    the returned range cannot be told from perfect calibration on this sample.
    """
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise SentimentError(f"n_draws must be a positive integer, got {n_draws!r}")
    confidence = _as_probabilities(probs, len(probs)).max(axis=1)
    n = len(confidence)
    _, bin_of = _confidence_bins(confidence, n_bins)
    confidence_sum = np.bincount(bin_of, weights=confidence, minlength=n_bins)
    rng = np.random.default_rng(seed)
    eces = []
    chunk = max(1, _MAX_INDEX_CELLS // n)
    for done in range(0, n_draws, chunk):
        size = min(chunk, n_draws - done)
        correct = rng.random((size, n)) < confidence  # [draws, n]
        cells = np.arange(size)[:, None] * n_bins + bin_of  # one bincount for every draw
        correct_sum = np.bincount(cells[correct], minlength=size * n_bins).reshape(size, n_bins)
        eces.append(np.abs(correct_sum - confidence_sum).sum(axis=1) / n)
    draws = np.concatenate(eces)
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(draws.mean()), float(low), float(high)


def _binary_ranking_metrics(y_true: np.ndarray, probs: np.ndarray) -> tuple[float | None, float | None]:
    """ROC-AUC and average precision with column 1 as the positive class, ``None`` when undefined."""
    if probs.shape[1] != 2:
        return None, None
    positive = y_true == 1
    if positive.all() or not positive.any():
        return None, None
    scores = probs[:, 1]
    return float(roc_auc_score(positive, scores)), float(average_precision_score(positive, scores))


# --------------------------------------------------------------------------- #
# Bootstrap
# --------------------------------------------------------------------------- #


def _resample_index_chunks(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Yield ``(r, n)`` blocks of with-replacement indices, bounded in memory, reproducible per seed."""
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise SentimentError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_INDEX_CELLS // n)
    done = 0
    while done < n_resamples:
        size = min(chunk, n_resamples - done)
        yield rng.integers(0, n, size=(size, n))
        done += size


def _score_resamples(y_true: np.ndarray, y_pred: np.ndarray, metric: MetricFn, indices: np.ndarray) -> np.ndarray:
    """Use the metric's vectorized path when it has one, else call it once per resample."""
    if isinstance(metric, ResampledMetric):
        return np.asarray(metric.resampled(y_true, y_pred, indices), dtype=np.float64)
    return np.array([metric(y_true[row], y_pred[row]) for row in indices], dtype=np.float64)


def _prepare_pair(y_true: Any, preds: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    y_true = _as_class_indices(y_true, "y_true")
    preds = _as_class_indices(preds, name)
    _check_same_length(y_true=y_true, **{name: preds})
    return y_true, preds


def bootstrap_ci(
    y_true: Any,
    preds: Any,
    metric: MetricFn,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` interval of ``metric`` at level ``1 - alpha``.

    Examples are resampled with replacement ``n_resamples`` times; the bounds are
    the ``alpha/2`` and ``1 - alpha/2`` quantiles of the resampled scores. The
    same ``seed`` always gives the same interval.
    """
    if not 0.0 < alpha < 1.0:
        raise SentimentError(f"alpha must be between 0 and 1, got {alpha!r}")
    y_true, preds = _prepare_pair(y_true, preds, "preds")
    scores = np.concatenate(
        [_score_resamples(y_true, preds, metric, idx) for idx in _resample_index_chunks(len(y_true), n_resamples, seed)]
    )
    low, high = np.quantile(scores, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def paired_bootstrap(
    y_true: Any,
    preds_a: Any,
    preds_b: Any,
    metric: MetricFn,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap comparison of system A against system B on the same examples.

    Both systems are scored on the *same* resampled indices, so the spread of
    ``metric(a) - metric(b)`` reflects only how the systems differ, not which
    examples happened to be drawn.

    Returns ``difference`` (a - b on the full data), ``metric_a``, ``metric_b``,
    ``ci_low`` / ``ci_high`` (95% percentile interval of the resampled
    differences), ``significant`` (the interval excludes 0), ``n_resamples`` and
    ``p_value``.

    ``p_value`` is two-sided, from the sign-flip count: with ``d`` the full-data
    difference and ``flips`` the number of resamples whose difference is ``<= 0``
    when ``d > 0`` (``>= 0`` when ``d < 0``), ``p = min(1, 2 * (flips + 1) /
    (n_resamples + 1))``. The ``+1`` (Davison & Hinkley) keeps a finite number of
    resamples from ever claiming ``p = 0``; ``d == 0`` gives ``p = 1``.
    ``significant`` comes from the interval, so near 0.05 it can disagree with
    ``p_value < 0.05`` by a resample or two.
    """
    y_true, preds_a = _prepare_pair(y_true, preds_a, "preds_a")
    _, preds_b = _prepare_pair(y_true, preds_b, "preds_b")
    score_a, score_b = float(metric(y_true, preds_a)), float(metric(y_true, preds_b))
    difference = score_a - score_b

    chunks = []
    for idx in _resample_index_chunks(len(y_true), n_resamples, seed):
        chunks.append(_score_resamples(y_true, preds_a, metric, idx) - _score_resamples(y_true, preds_b, metric, idx))
    deltas = np.concatenate(chunks)
    ci_low, ci_high = (float(v) for v in np.quantile(deltas, [0.025, 0.975]))
    return {
        "metric_a": score_a,
        "metric_b": score_b,
        "difference": difference,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "p_value": _sign_flip_p_value(difference, deltas),
        "significant": bool(ci_low > 0.0 or ci_high < 0.0),
        "n_resamples": int(len(deltas)),
    }


def _sign_flip_p_value(difference: float, deltas: np.ndarray) -> float:
    """Two-sided p-value: twice the (add-one) share of resamples on the other side of zero."""
    if difference == 0.0:
        return 1.0
    flips = int(np.sum(deltas <= 0.0)) if difference > 0.0 else int(np.sum(deltas >= 0.0))
    return float(min(1.0, 2.0 * (flips + 1) / (len(deltas) + 1)))


# --------------------------------------------------------------------------- #
# Error analysis
# --------------------------------------------------------------------------- #


def metrics_by_length(
    y_true: Any,
    preds: Any,
    lengths: Any,
    edges: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Accuracy and macro-F1 per review-length bucket, to show where a model breaks down.

    Buckets are inclusive integer token-count ranges: the first is
    ``[edges[0], edges[1]]``, each later one ``(edges[i], edges[i+1]]``, labelled
    like ``"1-20"``. With ``edges=None`` they come from the quartiles of
    ``lengths`` (rounded down), so each bucket holds roughly a quarter of the
    data. Explicit ``edges`` must be increasing and cover every length. Empty
    buckets are skipped. Each entry: ``bucket``, ``lower``, ``upper``, ``count``,
    ``accuracy``, ``macro_f1``.
    """
    y_true, preds = _prepare_pair(y_true, preds, "preds")
    lengths = _as_class_indices(lengths, "lengths")  # same rules: 1-D, integral, >= 0
    _check_same_length(y_true=y_true, lengths=lengths)
    edges_array = _default_length_edges(lengths) if edges is None else _checked_length_edges(edges, lengths)

    # Bucket b (1-based from searchsorted) holds edges[b-1] < length <= edges[b]; edges[0] joins bucket 1.
    bucket_of = np.maximum(np.searchsorted(edges_array, lengths, side="left"), 1)
    rows = []
    for b in range(1, max(len(edges_array), 2)):
        lower = int(edges_array[0]) if b == 1 else int(edges_array[b - 1]) + 1
        upper = int(edges_array[min(b, len(edges_array) - 1)])
        mask = bucket_of == b
        if not mask.any():
            continue
        rows.append(
            {
                "bucket": f"{lower}-{upper}" if lower != upper else str(lower),
                "lower": lower,
                "upper": upper,
                "count": int(mask.sum()),
                "accuracy": accuracy(y_true[mask], preds[mask]),
                "macro_f1": macro_f1(y_true[mask], preds[mask]),
            }
        )
    return rows


def _default_length_edges(lengths: np.ndarray) -> np.ndarray:
    """Min, the three quartiles rounded down, and max, without duplicates."""
    quartiles = np.floor(np.quantile(lengths, [0.25, 0.5, 0.75])).astype(np.int64)
    return np.unique(np.concatenate([[lengths.min()], quartiles, [lengths.max()]]))


def _checked_length_edges(edges: Sequence[int], lengths: np.ndarray) -> np.ndarray:
    edges_array = _as_class_indices(list(edges), "edges")
    if len(edges_array) < 2 or np.any(np.diff(edges_array) <= 0):
        raise SentimentError(f"edges must be at least two strictly increasing integers, got {list(edges)!r}")
    if lengths.min() < edges_array[0] or lengths.max() > edges_array[-1]:
        raise SentimentError(f"edges {list(edges)!r} do not cover lengths {int(lengths.min())}..{int(lengths.max())}")
    return edges_array


def most_confident_errors(y_true: Any, probs: Any, k: int = 10, y_pred: Any = None) -> np.ndarray:
    """Indices of up to ``k`` wrong predictions, most confident first.

    Confidence is the probability of the (wrong) predicted class; ties keep the
    original order, so the result is deterministic. These are the examples most
    worth reading: label noise or systematic failure modes show up here first.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise SentimentError(f"k must be a non-negative integer, got {k!r}")
    y_true = _as_class_indices(y_true, "y_true")
    n = _check_same_length(y_true=y_true)
    probs = _as_probabilities(probs, n)
    _check_indices_below(y_true, probs.shape[1], "y_true")
    y_pred = _predictions(y_pred, probs)
    wrong = np.flatnonzero(y_pred != y_true)
    confidence = probs[wrong, y_pred[wrong]]
    order = np.argsort(-confidence, kind="stable")
    return wrong[order][:k].astype(np.int64)


def risk_coverage(
    y_true: Any, probs: Any, levels: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0), y_pred: Any = None
) -> list[dict[str, Any]]:
    """Accuracy on the most confident share of examples, per share kept (coverage).

    For each level the examples are ranked by top-label probability and the most confident
    `level` of them kept; `min_confidence` is the lowest confidence kept (what `score
    --min-confidence` would take to keep about that share). Abstaining on the rest trades
    coverage for accuracy: the curve shows how much.
    """
    y_true = _as_class_indices(y_true, "y_true")
    probs = _as_probabilities(probs, len(y_true))
    confidence = probs.max(axis=1)
    correct = _predictions(y_pred, probs) == y_true
    order = np.argsort(-confidence, kind="stable")
    rows = []
    for level in levels:
        kept = max(1, int(round(level * len(y_true))))
        chosen = order[:kept]
        rows.append(
            {
                "coverage": float(level),
                "kept": int(kept),
                "min_confidence": float(confidence[chosen[-1]]),
                "accuracy": float(correct[chosen].mean()),
            }
        )
    return rows


def _predictions(y_pred: Any, probs: np.ndarray) -> np.ndarray:
    """The predicted class indices: given (a decision threshold made them), or the argmax of `probs`."""
    if y_pred is None:
        return probs.argmax(axis=1)
    y_pred = _as_class_indices(y_pred, "y_pred")
    if y_pred.shape != (len(probs),):
        raise SentimentError(f"y_pred has {len(y_pred)} predictions for {len(probs)} rows of probabilities")
    _check_indices_below(y_pred, probs.shape[1], "y_pred")
    return y_pred


def improves(score: float, best: float | None, select_metric: str) -> bool:
    """Whether `score` beats `best` (None: nothing yet) on `select_metric`: lower is better for
    the loss, higher for the others; a tie does not improve."""
    return best is None or (score < best if select_metric == "loss" else score > best)


def validation_scores(
    probabilities: np.ndarray, labels: np.ndarray, predictions: np.ndarray | None = None
) -> dict[str, float]:
    """What model selection reads after each epoch: cross-entropy, accuracy and macro-F1 of class
    probabilities [n, k] against labels [n]; the predictions are the most probable classes unless
    given (a decision threshold's)."""
    if predictions is None:
        predictions = probabilities.argmax(axis=1)
    picked = probabilities[np.arange(len(labels)), labels]
    return {
        "loss": float(-np.log(np.clip(picked, 1e-12, None)).mean()),
        "accuracy": accuracy(labels, predictions),
        "macro_f1": macro_f1(labels, predictions),
    }
