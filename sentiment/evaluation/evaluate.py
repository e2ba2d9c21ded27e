"""The `evaluate` stage: the trained model against the bag-of-words baseline and VADER, on the
test split, the contrast suite and out-of-domain sentence sets, written to `reports/<experiment>/`.

Reads only what earlier stages wrote: the run directory (model and baseline, no retraining)
and the prepared test split; VADER and the out-of-domain sets need no training. The numbers go
to `metrics.json` (schema: `sentiment.schemas.EvaluationMetrics`), the words and pictures to `report.md` /
`report.html` and PNG plots. Nothing here trains, selects or tunes anything.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.artifacts import atomic_directory, environment_versions
from sentiment.config import ExperimentConfig
from sentiment.data.prepare import load_prepared
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
    risk_coverage,
)
from sentiment.model.batching import predict_ids
from sentiment.model.vader import for_labels as vader_for
from sentiment.reporting.model_card import write_model_card
from sentiment.schemas import EvaluationMetrics, write_record
from sentiment.serving.inference import BaselineModel, SentimentModel
from sentiment.training.run import load_run

SCHEMA_VERSION = 2
CONFIDENT_ERRORS = 10
OUT_OF_DOMAIN_ERRORS = 5
EXPLAINED_TEXTS = ("not perfect, but pretty good",)


def system_metrics(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    predictions: np.ndarray,
    labels: list[str],
    lengths: np.ndarray,
    n_resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Everything the report says about one system on one labelled split (`predictions`: the
    system's labels by its decision rule, which is the argmax unless it has a threshold)."""
    # The intervals from point_and_interval; the point figures stay classification_metrics' own.
    result = {
        **point_and_interval(y_true, predictions, n_resamples, seed),
        **classification_metrics(y_true, probabilities, labels, y_pred=predictions),
    }
    result["ece_if_calibrated"] = list(calibrated_ece(probabilities, seed=seed))
    result["by_length"] = metrics_by_length(y_true, predictions, lengths)
    result["risk_coverage"] = risk_coverage(y_true, probabilities, y_pred=predictions)
    return result


def confident_errors(
    y_true: np.ndarray,
    texts: list[str],
    labels: list[str],
    ranked_by: np.ndarray,
    predictions: np.ndarray,
    probabilities: dict[str, np.ndarray],
    k: int = CONFIDENT_ERRORS,
) -> list[dict[str, Any]]:
    """The most confident wrong predictions of one system (its probabilities `ranked_by`, its
    labels `predictions`), with every system's probabilities."""
    rows = []
    for index in most_confident_errors(y_true, ranked_by, k=k, y_pred=predictions):
        row = {
            "text": texts[index],
            "label": labels[y_true[index]],
            "predicted": labels[int(predictions[index])],
        }
        for system, probs in probabilities.items():
            row[f"{system}_probs"] = {label: round(float(p), 4) for label, p in zip(labels, probs[index])}
        rows.append(row)
    return rows


def add_deciding_sentences(rows: list[dict[str, Any]], model: SentimentModel) -> list[dict[str, Any]]:
    """Mark, in each error row, the sentence that decided the model's prediction: the largest
    weight x p(predicted) with the sentence head, else the sentence most sure of that class."""
    if not rows:
        return rows
    readings = model.predict_sentences([row["text"] for row in rows])
    for row, sentences in zip(rows, readings):
        if len(sentences) < 2:
            continue
        predicted = model.classes.index(row["predicted"])
        decider = max(sentences, key=lambda s: (s.weight if s.weight is not None else 1.0) * s.probabilities[predicted])
        row["deciding_sentence"] = {
            "text": decider.text,
            "weight": decider.weight,
            "probs": {c: round(float(p), 4) for c, p in zip(model.classes, decider.probabilities)},
        }
    return rows


def uncalibrated(
    y_true: np.ndarray, probabilities: np.ndarray, labels: list[str], temperature: float
) -> dict[str, Any]:
    """The model's temperature and what its test calibration was before scaling (ECE, reliability bins)."""
    from sentiment.training.calibration import rescale

    before = classification_metrics(y_true, rescale(probabilities, temperature), labels)
    return {"temperature": temperature, "ece_before": before["ece"], "reliability_before": before["reliability"]}


def paired_comparison(y_true: np.ndarray, a: np.ndarray, b: np.ndarray, n_resamples: int, seed: int) -> dict[str, Any]:
    """System A minus system B on accuracy and macro-F1 (their predicted labels `a`, `b`), paired
    bootstrap on the same examples."""
    return {
        name: paired_bootstrap(y_true, a, b, metric, n_resamples=n_resamples, seed=seed)
        for name, metric in (("accuracy", accuracy), ("macro_f1", macro_f1))
    }


def point_and_interval(y_true: np.ndarray, predictions: np.ndarray, n_resamples: int, seed: int) -> dict[str, Any]:
    """Accuracy and macro-F1 with 95% bootstrap intervals: what a small evaluation set can support."""
    return {
        "n_examples": int(len(y_true)),
        "accuracy": accuracy(y_true, predictions),
        "accuracy_ci": list(bootstrap_ci(y_true, predictions, accuracy, n_resamples=n_resamples, seed=seed)),
        "macro_f1": macro_f1(y_true, predictions),
        "macro_f1_ci": list(bootstrap_ci(y_true, predictions, macro_f1, n_resamples=n_resamples, seed=seed)),
    }


def out_of_domain_sets(config: ExperimentConfig, labels: list[str]) -> tuple[list, str | None]:
    """The configured out-of-domain sets, loaded; or none and the reason (a scheme they do not map to)."""
    from sentiment.evaluation.out_of_domain import DEFAULT_BINARY_SETS, LABELS, load_sentence_sets

    names = config.evaluate.out_of_domain
    if list(labels) != list(LABELS):
        if names:
            raise SentimentError(
                f"evaluate.out_of_domain: the sentence sets are read as negative/positive, "
                f"which the {', '.join(labels)} classes of this run do not match"
            )
        return [], (
            f"not run: the sentence sets are rated negative to positive, which does not map onto the "
            f"classes {', '.join(labels)}"
        )
    if names is None:
        names = list(DEFAULT_BINARY_SETS)
    if not names:
        return [], "not run: evaluate.out_of_domain is empty"
    return load_sentence_sets(names, config.paths.data, config.evaluate.out_of_domain_cut), None


def evaluate_out_of_domain(
    sets: list, labels: list[str], systems: dict[str, Any], n_resamples: int, seed: int
) -> list[dict[str, Any]]:
    """Per set: every system's accuracy and macro-F1, the model's paired differences, its most confident errors."""
    results = []
    for sentence_set in sets:
        y_true = np.asarray(sentence_set.labels)
        probabilities = {name: system.predict_proba(sentence_set.texts) for name, system in systems.items()}
        decided = {name: systems[name].decide(probs) for name, probs in probabilities.items()}
        results.append(
            {
                "name": sentence_set.name,
                "description": sentence_set.description,
                "origin": sentence_set.origin,
                "sentences_read": sentence_set.read,
                "sentences": len(sentence_set.texts),
                "dropped_middle": sentence_set.dropped_middle,
                "cut": sentence_set.cut,
                "positive_share": sentence_set.positive_share,
                "systems": {
                    name: point_and_interval(y_true, predictions, n_resamples, seed)
                    for name, predictions in decided.items()
                },
                "comparison": {
                    name: paired_comparison(y_true, decided["model"], predictions, n_resamples, seed)
                    for name, predictions in decided.items()
                    if name != "model"
                },
                "errors": add_deciding_sentences(
                    confident_errors(
                        y_true,
                        sentence_set.texts,
                        labels,
                        probabilities["model"],
                        decided["model"],
                        probabilities,
                        k=OUT_OF_DOMAIN_ERRORS,
                    ),
                    systems["model"],
                ),
            }
        )
    return results


def run_contrast_suite(labels: list[str], systems: dict[str, Any]) -> dict[str, Any] | None:
    """The contrast suite for each system, or None where the label scheme has no positive/negative."""
    from sentiment.evaluation.contrast import DEFAULT_SUITE_PATH, SUITE_NAME, ContrastSuite

    if not {"positive", "negative"} <= set(labels):
        return None
    suite = ContrastSuite.load(DEFAULT_SUITE_PATH)
    section: dict[str, Any] = {"suite": SUITE_NAME, "suite_sha256": suite.sha256}
    for name, system in systems.items():
        section[name] = suite.run(system.predict_proba, labels, decide=system.decide).to_dict()
    return section


def evaluate(config: ExperimentConfig, n_resamples: int = 1000, log=print) -> EvaluationMetrics:
    """Evaluate the experiment's run; write `reports/<experiment>/` and return its metrics.json as
    the checked record."""
    from sentiment.evaluation.explain import explain_text
    from sentiment.reporting.plots import plot_explanation
    from sentiment.reporting.report import write_report

    started = time.perf_counter()
    run = load_run(config.run_dir)
    prepared = load_prepared(config.prepared_dir)
    if prepared.manifest["fingerprint"] != run.info["prepared"]["fingerprint"]:
        raise SentimentError(
            f"{prepared.directory} was prepared again since {run.directory} was trained; "
            "train again (or prepare with the run's config) before evaluating"
        )
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
    vader = vader_for(labels) if config.evaluate.vader else None
    ood_sets, ood_skipped = out_of_domain_sets(config, labels)  # before scoring: a bad set file fails at once
    texts = list(test["text"])
    log(f"scoring {len(y_true)} test reviews with the model, the baseline" + (" and VADER" if vader else ""))
    # Encoded with the run's own vocabulary, which may extend the prepared one (`model.vector_words`).
    model_probs = predict_ids(model.network, [model.encode(review) for review in tokens])
    baseline_probs = baseline.predict_tokens(tokens)
    probabilities = {"model": model_probs, "baseline": baseline_probs}
    if vader is not None:
        probabilities["vader"] = vader.predict_proba(texts)
    systems = {"model": model, "baseline": baseline, **({"vader": vader} if vader is not None else {})}
    decided = {name: systems[name].decide(probs) for name, probs in probabilities.items()}

    seed = config.seed
    metrics: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "experiment": config.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": {
            "source": prepared.manifest["source"],
            "labels": labels,
            "test_examples": int(len(y_true)),
            "prepared": str(prepared.directory),
        },
        "run": {
            "directory": str(run.directory),
            **{
                key: run.info.get(key)
                for key in (
                    "best_epoch",
                    "select_metric",
                    "best_validation",
                    "model",
                    "parameters",
                    "train_seconds",
                    "seconds_per_epoch",
                    "epochs_run",
                    "vectors",
                    "device",
                    "ensemble",
                    "weight_interpolation",
                    "soup",
                    "sentence_validation",
                    "title_validation",
                )
            },
        },
        "model": {
            **system_metrics(y_true, model_probs, decided["model"], labels, lengths, n_resamples, seed),
            "calibration": uncalibrated(y_true, model_probs, labels, run.temperature),
            "decision_threshold": run.decision_threshold,
        },
        "baseline": {
            **system_metrics(y_true, baseline_probs, decided["baseline"], labels, lengths, n_resamples, seed),
            "C": baseline.baseline.chosen_c,
            "validation": baseline.baseline.validation,
        },
    }
    metrics["vader"] = (
        {
            **system_metrics(y_true, probabilities["vader"], decided["vader"], labels, lengths, n_resamples, seed),
            "scheme": vader.scheme,
        }
        if vader is not None
        else None
    )
    metrics["comparison"] = paired_comparison(y_true, decided["model"], decided["baseline"], n_resamples, seed)
    metrics["comparison_vader"] = (
        paired_comparison(y_true, decided["model"], decided["vader"], n_resamples, seed) if vader is not None else None
    )
    log("running the contrast suite")
    metrics["contrast"] = run_contrast_suite(labels, systems)
    metrics["errors"] = {
        name: confident_errors(y_true, texts, labels, probs, decided[name], probabilities)
        for name, probs in probabilities.items()
    }
    add_deciding_sentences(metrics["errors"]["model"], model)
    if ood_sets:
        log(f"scoring {len(ood_sets)} out-of-domain sentence set(s): {', '.join(s.name for s in ood_sets)}")
    metrics["out_of_domain"] = {
        "sets": evaluate_out_of_domain(ood_sets, labels, systems, n_resamples, seed),
        "skipped": ood_skipped,
    }
    metrics["explain"] = explained_texts(metrics["contrast"])
    metrics["versions"] = environment_versions()

    with atomic_directory(config.report_dir) as staging:
        for item in metrics["explain"]:
            plot_explanation(explain_text(model, item["text"]), staging / item["image"])
        metrics["seconds"] = round(time.perf_counter() - started, 1)
        record = write_record(staging / "metrics.json", EvaluationMetrics, metrics)
        write_report(record, staging)
    write_model_card(run.directory, run.info, run.config.to_dict(), record)  # the card now has the test figures
    return record


def explained_texts(contrast: dict[str, Any] | None) -> list[dict[str, str]]:
    """The report's gate pictures: the project's signature sentence and the model's worst contrast failure."""
    from sentiment.evaluation.explain import worst_contrast_failure

    texts = list(EXPLAINED_TEXTS)
    worst = worst_contrast_failure(contrast["model"]["cases"]) if contrast else None
    if worst is not None and worst["text"] not in texts:
        texts.append(worst["text"])
    return [{"text": text, "image": f"explain-{number}.png"} for number, text in enumerate(texts, start=1)]


def report_path(config: ExperimentConfig) -> Path:
    return config.report_dir / "report.html"
