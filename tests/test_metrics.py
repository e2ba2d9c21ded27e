"""Metrics against small cases computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from sentiment.errors import SentimentError
from sentiment.metrics import (
    accuracy,
    bootstrap_ci,
    calibrated_ece,
    classification_metrics,
    macro_f1,
    metrics_by_length,
    most_confident_errors,
    paired_bootstrap,
)

# Binary hand case: 5 negatives, 3 positives. Column 1 ("pos") is the positive class.
Y_BINARY = np.array([0, 0, 0, 0, 0, 1, 1, 1])
P_POS = np.array([0.05, 0.30, 0.62, 0.30, 0.70, 0.95, 0.25, 0.70])
PROBS_BINARY = np.column_stack([1.0 - P_POS, P_POS])
# Predictions (p_pos > 0.5):  0     0     1     0     1     1     0     1
# Correct:                    y     y     n     y     n     y     n     y   -> 5 / 8
LABELS_BINARY = ["neg", "pos"]


@pytest.fixture(scope="module")
def binary_report() -> dict:
    return classification_metrics(Y_BINARY, PROBS_BINARY, LABELS_BINARY)


def test_accuracy_and_confusion_matrix(binary_report: dict) -> None:
    # true neg -> predicted [0,0,1,0,1] = 3 neg, 2 pos; true pos -> [1,0,1] = 1 neg, 2 pos.
    assert binary_report["confusion_matrix"] == [[3, 2], [1, 2]]
    assert binary_report["accuracy"] == pytest.approx(5 / 8)
    assert binary_report["n_examples"] == 8


def test_per_class_precision_recall_f1_support(binary_report: dict) -> None:
    neg, pos = binary_report["per_class"]["neg"], binary_report["per_class"]["pos"]
    # neg: tp=3, fp=1 (the true pos predicted neg), fn=2.  P=3/4, R=3/5, F1=2*3/(2*3+1+2)=6/9.
    assert neg == pytest.approx({"precision": 0.75, "recall": 0.6, "f1": 2 / 3, "support": 5})
    # pos: tp=2, fp=2, fn=1.  P=2/4, R=2/3, F1=4/(4+2+1)=4/7.
    assert pos == pytest.approx({"precision": 0.5, "recall": 2 / 3, "f1": 4 / 7, "support": 3})
    # macro = (2/3 + 4/7) / 2 = 13/21.
    assert binary_report["macro_f1"] == pytest.approx(13 / 21)
    assert macro_f1(Y_BINARY, PROBS_BINARY.argmax(axis=1)) == pytest.approx(13 / 21)
    assert accuracy(Y_BINARY, PROBS_BINARY.argmax(axis=1)) == pytest.approx(5 / 8)


def test_roc_auc_by_pair_counting(binary_report: dict) -> None:
    # Positive scores {0.95, 0.25, 0.70}, negative {0.05, 0.30, 0.62, 0.30, 0.70}; 15 pairs.
    # 0.95 beats all 5; 0.25 beats only 0.05 -> 1; 0.70 beats 4 and ties one (0.5) -> 4.5.
    assert binary_report["roc_auc"] == pytest.approx(10.5 / 15)


def test_pr_auc_is_average_precision(binary_report: dict) -> None:
    # Thresholds from the top: 0.95 -> TP1 FP0 (P=1, R=1/3); 0.70 (a tie: one pos, one neg)
    # -> TP2 FP1 (P=2/3, R=2/3); 0.62, 0.30 add negatives only; 0.25 -> TP3 FP4 (P=3/7, R=1).
    # AP = sum(delta R * P) = 1/3 * (1 + 2/3 + 3/7) = 44/63.
    assert binary_report["pr_auc"] == pytest.approx(44 / 63)


def test_ece_and_reliability_by_hand_binning(binary_report: dict) -> None:
    # Confidences (max prob): .95 .70 .62 .70 .70 .95 .75 .70; bins of width 1/15.
    #   bin  9 (0.600, 0.667]: {.62}             conf .62, acc 0/1 -> |gap| .62, weight 1/8
    #   bin 10 (0.667, 0.733]: {.70 x4}          conf .70, acc 3/4 -> |gap| .05, weight 4/8
    #   bin 11 (0.733, 0.800]: {.75}             conf .75, acc 0/1 -> |gap| .75, weight 1/8
    #   bin 14 (0.933, 1.000]: {.95 x2}          conf .95, acc 2/2 -> |gap| .05, weight 2/8
    # ECE = (.62 + 4*.05 + .75 + 2*.05) / 8 = 1.67 / 8 = 0.20875
    assert binary_report["ece"] == pytest.approx(0.20875)
    table = binary_report["reliability"]
    assert len(table) == 15
    assert table[10] == pytest.approx(
        {"lower": 10 / 15, "upper": 11 / 15, "confidence": 0.7, "accuracy": 0.75, "count": 4}
    )
    assert table[9]["count"] == 1 and table[11]["count"] == 1 and table[14]["count"] == 2
    assert table[0] == pytest.approx({"lower": 0.0, "upper": 1 / 15, "confidence": None, "accuracy": None, "count": 0})
    assert sum(row["count"] for row in table) == 8


def test_calibrated_ece_is_the_noise_a_calibrated_system_shows() -> None:
    """Labels drawn from the system's own confidences (so it is calibrated by construction) give an
    ECE above 0 that the returned range holds; the range shrinks as the sample grows; a system far
    more confident than it is right lies above it; a seed gives the same range again."""
    rng = np.random.default_rng(3)
    small, large = [], []
    for n, into in ((500, small), (20_000, large)):
        p = rng.uniform(0.5, 1.0, n)
        probs = np.stack([1 - p, p], axis=1)
        y_true = (rng.random(n) < p).astype(int)  # class 1 with probability p: calibrated
        mean, low, high = calibrated_ece(probs, seed=0)
        ece = classification_metrics(y_true, probs, ["neg", "pos"])["ece"]
        assert 0 < low < mean < high
        assert low <= ece <= high
        into.extend([mean, high - low])
        overconfident = np.stack([1 - np.sqrt(p), np.sqrt(p)], axis=1)  # the same labels, surer
        assert classification_metrics(y_true, overconfident, ["neg", "pos"])["ece"] > calibrated_ece(overconfident)[2]
    assert large[0] < small[0] / 3 and large[1] < small[1] / 3
    assert calibrated_ece(probs, seed=7) == calibrated_ece(probs, seed=7)
    with pytest.raises(SentimentError, match="n_draws"):
        calibrated_ece(probs, n_draws=0)


def test_report_is_json_serializable(binary_report: dict) -> None:
    assert json.loads(json.dumps(binary_report, allow_nan=False)) == binary_report


def test_absent_class_and_multiclass_edge_cases() -> None:
    # Class "neutral" (2) never appears in y_true but is predicted once; "neg" is never predicted.
    y_true = np.array([1, 1, 0, 1])
    probs = np.array([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.3, 0.6, 0.1], [0.0, 1.0, 0.0]])
    report = classification_metrics(y_true, probs, ["neg", "pos", "neutral"])
    assert report["confusion_matrix"] == [[0, 1, 0], [0, 2, 1], [0, 0, 0]]
    assert report["per_class"]["neutral"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["per_class"]["neg"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # pos: tp=2, fp=1, fn=1 -> F1 = 4/6; macro over all three labels = (0 + 2/3 + 0) / 3.
    assert report["macro_f1"] == pytest.approx(2 / 9)
    expected = f1_score(y_true, probs.argmax(1), labels=[0, 1, 2], average="macro", zero_division=0)
    assert report["macro_f1"] == pytest.approx(expected)
    assert report["roc_auc"] is None and report["pr_auc"] is None


def test_binary_auc_undefined_with_one_class() -> None:
    report = classification_metrics([1, 1, 1], [[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]], ["neg", "pos"])
    assert report["roc_auc"] is None and report["pr_auc"] is None
    assert report["accuracy"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("y_true", "probs", "labels", "message"),
    [
        ([0, 1], [[0.5, 0.5]], ["a", "b"], "rows"),
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]], ["a", "b"], "class index 2"),
        ([0, 1], [[2.0, -1.0], [0.5, 0.5]], ["a", "b"], "logits"),
        ([0, 1], [[0.5, 0.6], [0.5, 0.5]], ["a", "b"], "sum to 1"),
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], ["a", "b", "c"], "columns"),
        ([0.5, 1], [[0.5, 0.5], [0.5, 0.5]], ["a", "b"], "integer"),
        ([], np.zeros((0, 2)), ["a", "b"], "zero examples"),
    ],
)
def test_bad_inputs_raise_sentiment_error(y_true, probs, labels, message: str) -> None:
    with pytest.raises(SentimentError, match=message):
        classification_metrics(y_true, probs, labels)


def _noisy_predictions(y_true: np.ndarray, correct_rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keep = rng.random(len(y_true)) < correct_rate
    return np.where(keep, y_true, rng.integers(0, 3, len(y_true)))


Y_LARGE = np.random.default_rng(123).integers(0, 3, 600)


@pytest.mark.parametrize("metric", [accuracy, macro_f1])
def test_bootstrap_ci_contains_estimate_and_is_deterministic(metric) -> None:
    preds = _noisy_predictions(Y_LARGE, 0.8, seed=1)
    low, high = bootstrap_ci(Y_LARGE, preds, metric, n_resamples=500, seed=7)
    assert low < metric(Y_LARGE, preds) < high
    assert high - low < 0.15
    assert bootstrap_ci(Y_LARGE, preds, metric, n_resamples=500, seed=7) == (low, high)
    assert bootstrap_ci(Y_LARGE, preds, metric, n_resamples=500, seed=8) != (low, high)
    narrow = bootstrap_ci(Y_LARGE, preds, metric, n_resamples=500, seed=7, alpha=0.5)
    assert low <= narrow[0] <= narrow[1] <= high


def test_vectorized_metrics_match_a_plain_callable() -> None:
    preds = _noisy_predictions(Y_LARGE, 0.7, seed=2)

    def sklearn_macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(f1_score(y_true, y_pred, average="macro", zero_division=0))

    fast = bootstrap_ci(Y_LARGE, preds, macro_f1, n_resamples=200, seed=3)
    slow = bootstrap_ci(Y_LARGE, preds, sklearn_macro_f1, n_resamples=200, seed=3)
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    fast_acc = bootstrap_ci(Y_LARGE, preds, accuracy, n_resamples=200, seed=3)
    slow_acc = bootstrap_ci(Y_LARGE, preds, lambda y, p: float(np.mean(y == p)), n_resamples=200, seed=3)
    np.testing.assert_allclose(fast_acc, slow_acc, rtol=1e-12)


def test_paired_bootstrap_detects_a_clearly_better_system() -> None:
    better, worse = _noisy_predictions(Y_LARGE, 0.9, seed=4), _noisy_predictions(Y_LARGE, 0.6, seed=5)
    result = paired_bootstrap(Y_LARGE, better, worse, macro_f1, n_resamples=1000, seed=0)
    assert result["difference"] == pytest.approx(macro_f1(Y_LARGE, better) - macro_f1(Y_LARGE, worse))
    assert result["difference"] > 0.1
    assert 0 < result["ci_low"] < result["difference"] < result["ci_high"]
    assert result["significant"] is True
    assert result["p_value"] == pytest.approx(2 / 1001)  # no sign flips: the add-one floor
    reverse = paired_bootstrap(Y_LARGE, worse, better, macro_f1, n_resamples=1000, seed=0)
    assert reverse["difference"] == pytest.approx(-result["difference"])
    assert reverse["significant"] is True and reverse["ci_high"] < 0
    assert json.loads(json.dumps(result)) == result


def test_paired_bootstrap_identical_systems_not_significant() -> None:
    preds = _noisy_predictions(Y_LARGE, 0.8, seed=6)
    result = paired_bootstrap(Y_LARGE, preds, preds.copy(), accuracy, n_resamples=300, seed=0)
    assert result["difference"] == 0.0
    assert result["ci_low"] == 0.0 and result["ci_high"] == 0.0
    assert result["p_value"] == 1.0
    assert result["significant"] is False


def test_paired_bootstrap_near_identical_systems_not_significant() -> None:
    a = _noisy_predictions(Y_LARGE, 0.8, seed=6)
    b = a.copy()
    b[:3] = (b[:3] + 1) % 3  # three flipped predictions out of 600
    result = paired_bootstrap(Y_LARGE, a, b, accuracy, n_resamples=1000, seed=0)
    assert result["significant"] is False
    assert result["p_value"] > 0.05


def test_bootstrap_rejects_bad_arguments() -> None:
    with pytest.raises(SentimentError, match="alpha"):
        bootstrap_ci([0, 1], [0, 1], accuracy, alpha=1.5)
    with pytest.raises(SentimentError, match="n_resamples"):
        bootstrap_ci([0, 1], [0, 1], accuracy, n_resamples=0)
    with pytest.raises(SentimentError, match="same length"):
        paired_bootstrap([0, 1], [0, 1], [0], accuracy)


def test_metrics_by_length_default_quartile_buckets() -> None:
    lengths = [3, 5, 8, 12, 15, 20, 25, 40]
    y_true = [0, 1, 0, 1, 0, 1, 0, 1]
    preds = [0, 1, 0, 0, 1, 1, 1, 1]
    # Quartiles (linear interpolation): 7.25, 13.5, 21.25 -> rounded down 7, 13, 21.
    # Buckets [3-7], (7-13], (13-21], (21-40] -> lengths {3,5}, {8,12}, {15,20}, {25,40}.
    rows = metrics_by_length(y_true, preds, lengths)
    assert [row["bucket"] for row in rows] == ["3-7", "8-13", "14-21", "22-40"]
    assert [row["count"] for row in rows] == [2, 2, 2, 2]
    # Correct per bucket: 2/2, 1/2 (12 wrong), 1/2 (15 wrong), 1/2 (25 wrong).
    assert [row["accuracy"] for row in rows] == pytest.approx([1.0, 0.5, 0.5, 0.5])
    # Bucket 2: y=[0,1], pred=[0,0]: F1(0)=2/3, F1(1)=0 -> 1/3.
    assert rows[1]["macro_f1"] == pytest.approx(1 / 3)
    assert rows[0]["macro_f1"] == pytest.approx(1.0)


def test_metrics_by_length_explicit_edges_skip_empty_buckets() -> None:
    rows = metrics_by_length([0, 1, 1], [0, 1, 0], [1, 4, 60], edges=[1, 20, 50, 100])
    # (20, 50] is empty and skipped.
    assert [(row["bucket"], row["count"]) for row in rows] == [("1-20", 2), ("51-100", 1)]
    assert rows[1]["accuracy"] == 0.0
    with pytest.raises(SentimentError, match="cover"):
        metrics_by_length([0], [0], [500], edges=[1, 20])
    with pytest.raises(SentimentError, match="increasing"):
        metrics_by_length([0], [0], [5], edges=[10, 1])


def test_metrics_by_length_single_length() -> None:
    rows = metrics_by_length([0, 1], [0, 0], [7, 7])
    assert [(row["bucket"], row["count"]) for row in rows] == [("7", 2)]


def test_most_confident_errors_ordering() -> None:
    y_true = np.array([0, 1, 0, 1, 0, 1])
    probs = np.array(
        [
            [0.9, 0.1],  # correct
            [0.6, 0.4],  # wrong, confidence 0.6
            [0.2, 0.8],  # wrong, confidence 0.8
            [0.05, 0.95],  # correct
            [0.1, 0.9],  # wrong, confidence 0.9
            [0.7, 0.3],  # wrong, confidence 0.7
        ]
    )
    assert most_confident_errors(y_true, probs).tolist() == [4, 2, 5, 1]
    assert most_confident_errors(y_true, probs, k=2).tolist() == [4, 2]
    assert most_confident_errors(y_true[[0, 3]], probs[[0, 3]]).tolist() == []


def test_risk_coverage_keeps_the_most_confident_share():
    from sentiment.metrics import risk_coverage

    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]])
    y = np.array([0, 0, 0, 1])  # the second (p 0.8) is wrong
    rows = risk_coverage(y, probs, levels=(0.25, 0.5, 1.0))
    assert [(r["kept"], r["accuracy"]) for r in rows] == [(1, 1.0), (2, 0.5), (4, 0.75)]
    assert [r["min_confidence"] for r in rows] == [0.9, 0.8, 0.55]
