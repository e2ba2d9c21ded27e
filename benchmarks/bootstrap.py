"""Bootstrap intervals, as `evaluate` computes them: 1,000 resamples of macro-F1 on 2,000
reviews, one interval and one paired difference, against one macro-F1 call (the ratio is the
cost of the two intervals in metric calls). Target: under 2 s, so a report stays quick."""

from __future__ import annotations

import numpy as np

from benchmarks.common import median_seconds, print_table, record
from sentiment.metrics import bootstrap_ci, macro_f1, paired_bootstrap


def _noisy(y_true: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(y_true)) > accuracy
    return np.where(wrong, (y_true + rng.integers(1, 3, len(y_true))) % 3, y_true)


def run(quick: bool = False) -> dict:
    repeats = 3 if quick else 7
    y_true = np.random.default_rng(0).integers(0, 3, 2000)
    a, b = _noisy(y_true, 0.8, seed=1), _noisy(y_true, 0.75, seed=2)
    single = median_seconds(lambda: macro_f1(y_true, a), repeats * 10)
    intervals = median_seconds(
        lambda: (
            bootstrap_ci(y_true, a, macro_f1, n_resamples=1000),
            paired_bootstrap(y_true, a, b, macro_f1, n_resamples=1000),
        ),
        repeats,
    )
    figures = {
        "macro_f1_seconds": round(single, 6),
        "two_intervals_seconds": round(intervals, 3),
        "ratio": round(intervals / single, 1),
        "target_seconds": 2.0,
    }
    print_table(
        f"Bootstrap intervals, 2,000 reviews, 1,000 resamples (median of {repeats})",
        [
            ("one macro-F1", f"{single * 1000:.2f} ms"),
            ("interval + paired difference", f"{intervals:.2f} s  ({figures['ratio']:.0f} metric calls; target < 2 s)"),
        ],
    )
    record("bootstrap", figures)
    return figures


if __name__ == "__main__":
    run()
