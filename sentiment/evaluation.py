"""The `evaluate` stage: the trained model against the bag-of-words baseline, on the test split
and on the contrast suite, written to `reports/<experiment>/`.

Reads only what earlier stages wrote: the run directory (model and baseline, no retraining)
and the prepared test split. The numbers go to `metrics.json` (schema in `sentiment.report`),
the words and pictures to `report.md` / `report.html` and PNG plots.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.artifacts import atomic_directory, environment_versions, write_json
from sentiment.config import ExperimentConfig
from sentiment.errors import SentimentError
from sentiment.inference import BaselineModel, SentimentModel, predict_ids
from sentiment.metrics import (accuracy, bootstrap_ci, classification_metrics, macro_f1, metrics_by_length,
                               most_confident_errors, paired_bootstrap)
from sentiment.prepare import load_prepared, token_ids
from sentiment.run import load_run

SCHEMA_VERSION = 1
CONFIDENT_ERRORS = 10
EXPLAINED_TEXTS = ("not perfect, but pretty good",)


def system_metrics(y_true: np.ndarray, probabilities: np.ndarray, labels: list[str], lengths: np.ndarray,
                   n_resamples: int, seed: int) -> dict[str, Any]:
    """Everything the report says about one system on one labelled split."""
    predictions = probabilities.argmax(axis=1)
    result = classification_metrics(y_true, probabilities, labels)
    result["accuracy_ci"] = list(bootstrap_ci(y_true, predictions, accuracy, n_resamples=n_resamples, seed=seed))
    result["macro_f1_ci"] = list(bootstrap_ci(y_true, predictions, macro_f1, n_resamples=n_resamples, seed=seed))
    result["by_length"] = metrics_by_length(y_true, predictions, lengths)
    return result


def confident_errors(y_true: np.ndarray, texts: list[str], labels: list[str], ranked_by: np.ndarray,
                     model_probs: np.ndarray, baseline_probs: np.ndarray) -> list[dict[str, Any]]:
    """The most confident wrong predictions of one system, with both systems' probabilities."""
    rows = []
    for index in most_confident_errors(y_true, ranked_by, k=CONFIDENT_ERRORS):
        rows.append({
            "text": texts[index], "label": labels[y_true[index]], "predicted": labels[int(ranked_by[index].argmax())],
            "model_probs": {label: round(float(p), 4) for label, p in zip(labels, model_probs[index])},
            "baseline_probs": {label: round(float(p), 4) for label, p in zip(labels, baseline_probs[index])},
        })
    return rows


def run_contrast_suite(labels: list[str], systems: dict[str, Callable[[list[str]], np.ndarray]]) -> dict[str, Any] | None:
    """The contrast suite for each system, or None where the label scheme has no positive/negative."""
    from sentiment.contrast import DEFAULT_SUITE_PATH, ContrastSuite

    if not {"positive", "negative"} <= set(labels):
        return None
    suite = ContrastSuite.load(DEFAULT_SUITE_PATH)
    section: dict[str, Any] = {"suite": str(DEFAULT_SUITE_PATH.relative_to(DEFAULT_SUITE_PATH.parents[2])),
                               "suite_sha256": suite.sha256}
    for name, predict_proba in systems.items():
        section[name] = suite.run(predict_proba, labels).to_dict()
    return section


def evaluate(config: ExperimentConfig, n_resamples: int = 1000, log=print) -> dict[str, Any]:
    """Evaluate the experiment's run; write `reports/<experiment>/` and return the metrics."""
    from sentiment.explain import explain_text
    from sentiment.plots import plot_explanation
    from sentiment.report import write_report

    started = time.perf_counter()
    run = load_run(config.run_dir)
    prepared = load_prepared(config.prepared_dir)
    if prepared.manifest["fingerprint"] != run.info["prepared"]["fingerprint"]:
        raise SentimentError(f"{prepared.directory} was prepared again since {run.directory} was trained; "
                             "train again (or prepare with the run's config) before evaluating")
    baseline_dir = run.directory / "baseline"
    if not baseline_dir.is_dir():
        raise SentimentError(f"{run.directory} has no baseline/; train again to create it")

    labels = run.labels
    test = prepared.split("test")
    y_true = np.asarray(test["label"])
    tokens = list(test["tokens"])  # a lazy column would decode again on each pass
    lengths = np.asarray([len(review) for review in tokens])
    model = SentimentModel(run)
    baseline = BaselineModel(baseline_dir)
    log(f"scoring {len(y_true)} test reviews with the model and the baseline")
    model_probs = predict_ids(model.network, token_ids(test))
    baseline_probs = baseline.predict_tokens(tokens)

    seed = config.seed
    metrics: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "experiment": config.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": {"source": prepared.manifest["source"], "labels": labels, "test_examples": int(len(y_true)),
                 "prepared": str(prepared.directory)},
        "run": {"directory": str(run.directory), **{key: run.info.get(key) for key in (
            "best_epoch", "select_metric", "best_validation", "model", "parameters", "train_seconds",
            "seconds_per_epoch", "epochs_run", "vectors", "device", "ensemble")}},
        "model": system_metrics(y_true, model_probs, labels, lengths, n_resamples, seed),
        "baseline": {**system_metrics(y_true, baseline_probs, labels, lengths, n_resamples, seed),
                     "C": baseline.baseline.chosen_c, "validation": baseline.baseline.validation},
    }
    model_predictions, baseline_predictions = model_probs.argmax(1), baseline_probs.argmax(1)
    metrics["comparison"] = {
        name: paired_bootstrap(y_true, model_predictions, baseline_predictions, metric, n_resamples=n_resamples, seed=seed)
        for name, metric in (("accuracy", accuracy), ("macro_f1", macro_f1))
    }
    log("running the contrast suite")
    metrics["contrast"] = run_contrast_suite(labels, {"model": model.predict_proba, "baseline": baseline.predict_proba})
    texts = list(test["text"])
    metrics["errors"] = {
        "model": confident_errors(y_true, texts, labels, model_probs, model_probs, baseline_probs),
        "baseline": confident_errors(y_true, texts, labels, baseline_probs, model_probs, baseline_probs),
    }
    metrics["explain"] = explained_texts(metrics["contrast"])
    metrics["versions"] = environment_versions()

    with atomic_directory(config.report_dir) as staging:
        for item in metrics["explain"]:
            plot_explanation(explain_text(model, item["text"]), staging / item["image"])
        metrics["seconds"] = round(time.perf_counter() - started, 1)
        write_json(staging / "metrics.json", metrics)
        write_report(metrics, staging)
    return metrics


def explained_texts(contrast: dict[str, Any] | None) -> list[dict[str, str]]:
    """The report's gate pictures: the project's signature sentence and the model's worst contrast failure."""
    from sentiment.explain import worst_contrast_failure

    texts = list(EXPLAINED_TEXTS)
    worst = worst_contrast_failure(contrast["model"]["cases"]) if contrast else None
    if worst is not None and worst["text"] not in texts:
        texts.append(worst["text"])
    return [{"text": text, "image": f"explain-{number}.png"} for number, text in enumerate(texts, start=1)]


def report_path(config: ExperimentConfig) -> Path:
    return config.report_dir / "report.html"
