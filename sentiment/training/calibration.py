"""Temperature scaling (Guo et al. 2017): one number, fitted on the validation split after model
selection, that divides the model's logits so that its probabilities mean what they say.

A network trained with cross-entropy tends to be overconfident; dividing every logit by one
temperature T > 1 softens all its probabilities alike and never changes which class is the most
probable, so accuracy and macro-F1 stay exactly as they were. T is chosen to minimise the
negative log-likelihood of the validation labels and saved in `run.json` (`calibration`);
`TrainedRun.build_model` sets it on the network, so every prediction path applies it.

A decision threshold (`training.decision_threshold`) is a cut on P(second class) of a binary
model, fitted on the same validation outputs after temperature scaling; `run.json` keeps it under
`decision`, with the validation score at the argmax, at the cut, and cross-fitted (each fifth of
the split labelled by the cut fitted on the other four), the reading that does not flatter the cut.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sentiment.errors import SentimentError
from sentiment.metrics import accuracy, classification_metrics, macro_f1, validation_scores
from sentiment.model.batching import predict_ids
from sentiment.model.classifier import decide

BOUNDS = (0.05, 20.0)
"""Temperatures searched (in log space): far wider than any trained model needs."""


def rescale(probabilities: np.ndarray, factor: float) -> np.ndarray:
    """softmax(log(p) * factor): the distribution `p` came from, with its logits multiplied by `factor`
    (1 / T applies a temperature T; T undoes it)."""
    logits = np.log(np.clip(probabilities, 1e-30, None)) * factor
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, 1e-30, None)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the validation NLL of `probabilities` (a model's softmax outputs)."""
    from scipy.optimize import minimize_scalar

    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels)
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(rescale(probabilities, np.exp(-log_t)), labels),
        bounds=tuple(np.log(BOUNDS)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 2)
"""Decision thresholds searched: 0.05, 0.06, ..., 0.95."""


SCORES = {"macro_f1": macro_f1, "accuracy": accuracy}

CROSS_FIT_FOLDS = 5
"""Folds of the cross-fitted reading of a cut (`cross_fitted_score`)."""


def best_threshold(probabilities: np.ndarray, labels: np.ndarray, metric: str) -> tuple[float, float]:
    """The cut on P(second class) that maximises `metric` on these outputs, and that score; ties go
    to the cut nearest 0.5, which is the argmax."""
    score = SCORES[metric]
    scores = np.asarray([score(labels, decide(probabilities, float(t))) for t in THRESHOLDS])
    best = scores.max()
    candidates = THRESHOLDS[scores == best]
    return float(candidates[np.argmin(np.abs(candidates - 0.5))]), float(best)


def cross_fitted_score(probabilities: np.ndarray, labels: np.ndarray, metric: str) -> float | None:
    """`metric` of cuts that never saw the outputs they label: the outputs in `CROSS_FIT_FOLDS`
    stratified folds (shuffled with seed 0), each fold labelled by the cut fitted on the others.
    A cut fitted on the split that scores it flatters it; this reading does not, so it is what a
    fitted cut is judged by against the argmax. None when a class has fewer than two outputs."""
    from sklearn.model_selection import StratifiedKFold

    folds = min(CROSS_FIT_FOLDS, int(np.bincount(labels, minlength=2).min()))
    if folds < 2:
        return None
    predictions = np.zeros(len(labels), dtype=np.int64)
    splits = StratifiedKFold(folds, shuffle=True, random_state=0).split(probabilities, labels)
    for fit, apply in splits:
        threshold, _ = best_threshold(probabilities[fit], labels[fit], metric)
        predictions[apply] = decide(probabilities[apply], threshold)
    return float(SCORES[metric](labels, predictions))


def threshold_record(probabilities: np.ndarray, labels: np.ndarray, metric: str) -> dict[str, Any]:
    """The cut on P(second class) that maximises `metric` (macro_f1 or accuracy) on validation
    outputs (`best_threshold`), with the validation score at the argmax, at the cut, and
    cross-fitted (`cross_fitted_score`). The record `run.json` keeps."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    if probabilities.shape[1] != 2:
        raise SentimentError(
            f"a decision threshold needs a binary label scheme, this one has {probabilities.shape[1]} classes"
        )
    threshold, best = best_threshold(probabilities, labels, metric)
    cross_fitted = cross_fitted_score(probabilities, labels, metric)
    return {
        "threshold": threshold,
        "fitted_on": "validation",
        "metric": metric,
        "validation": {
            "at_argmax": round(float(SCORES[metric](labels, decide(probabilities))), 5),
            "at_threshold": round(best, 5),
            "cross_fitted": None if cross_fitted is None else round(cross_fitted, 5),
        },
    }


def calibration_record(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Fit the temperature on validation outputs; the record `run.json` keeps, with NLL and ECE before and after."""
    temperature = fit_temperature(probabilities, labels)
    scaled = rescale(probabilities, 1.0 / temperature)
    before = classification_metrics(labels, probabilities, class_names)["ece"]
    after = classification_metrics(labels, scaled, class_names)["ece"]
    return {
        "method": "temperature",
        "temperature": round(temperature, 6),
        "fitted_on": "validation",
        "validation": {
            "nll_before": round(negative_log_likelihood(probabilities, labels), 5),
            "nll_after": round(negative_log_likelihood(scaled, labels), 5),
            "ece_before": round(before, 5),
            "ece_after": round(after, 5),
        },
    }


def as_shipped(probabilities: np.ndarray, run_info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A kept model's raw probabilities and the classes they give as every prediction path reads
    them: divided by the temperature of `run_info["calibration"]` and labelled by the cut of
    `run_info["decision"]`, each where the run fitted one (else as they are, by the argmax)."""
    calibration, decision = run_info.get("calibration"), run_info.get("decision")
    if calibration is not None:
        probabilities = rescale(probabilities, 1.0 / calibration["temperature"])
    return probabilities, decide(probabilities, decision["threshold"] if decision is not None else None)


def read_as_shipped(
    model: torch.nn.Module, ids: list[np.ndarray], labels: np.ndarray, device: torch.device, run_info: dict[str, Any]
) -> tuple[dict[str, float], np.ndarray]:
    """A kept model's validation scores (`validation_scores`, rounded to 5 places) on these token
    ids and labels, and the classes it gives them, read `as_shipped`: what each reading of short or
    other-domain validation texts after training reports."""
    probabilities, predictions = as_shipped(predict_ids(model, ids, batch_size=256, device=device), run_info)
    scores = validation_scores(probabilities, labels, predictions)
    return {name: round(value, 5) for name, value in scores.items()}, predictions
