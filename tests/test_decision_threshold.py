"""The decision threshold (`training.decision_threshold`): fitted on validation, saved in run.json,
and followed by every prediction path (predict, sentences, score, evaluate, the contrast suite)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from sentiment.config import load_config
from sentiment.errors import SentimentError
from sentiment.model.classifier import decide
from sentiment.training.calibration import THRESHOLDS, cross_fitted_score, threshold_record

from conftest import TINY_CONFIG, experiment_sets, quiet, tiny_model

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out


def test_threshold_is_the_validation_best_and_ties_go_to_the_argmax():
    # Positives score 0.3-0.4 and negatives 0.1-0.2: only a cut in (0.2, 0.3] separates them.
    p = np.array([0.1, 0.15, 0.2, 0.3, 0.35, 0.4])
    probabilities = np.stack([1 - p, p], axis=1)
    labels = np.array([0, 0, 0, 1, 1, 1])
    record = threshold_record(probabilities, labels, "macro_f1")
    assert 0.2 < record["threshold"] <= 0.3 and record["validation"]["at_threshold"] == 1.0
    assert record["validation"]["at_argmax"] < 1.0
    # Separable at 0.5 as well: every cut in (0.2, 0.7] ties; the one nearest 0.5 is kept.
    p = np.array([0.1, 0.2, 0.7, 0.9])
    assert threshold_record(np.stack([1 - p, p], axis=1), np.array([0, 0, 1, 1]), "accuracy")["threshold"] == 0.5


def test_the_cross_fitted_score_reads_each_fold_by_a_cut_fitted_without_it():
    rng = np.random.default_rng(0)
    # Scores that say nothing of the labels: the cut fitted on them finds a macro-F1 that is luck,
    # and a cut fitted on other folds does not keep it.
    p = rng.uniform(size=400)
    probabilities, labels = np.stack([1 - p, p], axis=1), rng.integers(0, 2, size=400)
    record = threshold_record(probabilities, labels, "macro_f1")["validation"]
    assert record["cross_fitted"] < record["at_threshold"] - 0.02
    assert record["cross_fitted"] == round(cross_fitted_score(probabilities, labels, "macro_f1"), 5)
    # Separated by any cut in (0.2, 0.3]: every fold's cut separates the fold it did not see.
    p = np.concatenate([rng.uniform(0.05, 0.2, size=50), rng.uniform(0.3, 0.45, size=50)])
    separable = np.stack([1 - p, p], axis=1), np.repeat([0, 1], 50)
    assert cross_fitted_score(*separable, "accuracy") == 1.0
    # One review of a class: no fold split leaves it on both sides, so there is no honest reading.
    assert cross_fitted_score(np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]), np.array([0, 1, 1]), "accuracy") is None
    assert (
        threshold_record(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1]), "accuracy")["validation"]["cross_fitted"]
        is None
    )


def test_decide_follows_the_threshold_and_needs_two_classes():
    probabilities = np.array([[0.7, 0.3], [0.4, 0.6], [0.2, 0.8]])
    assert decide(probabilities).tolist() == [0, 1, 1]
    assert decide(probabilities, 0.25).tolist() == [1, 1, 1]
    assert decide(probabilities, 0.7).tolist() == [0, 0, 1]
    with pytest.raises(SentimentError, match="two classes"):
        decide(np.full((2, 3), 1 / 3), 0.5)
    with pytest.raises(SentimentError, match="select_metric"):
        load_config(None, ["training.decision_threshold=validation", "training.select_metric=loss"])


def force_threshold(run_dir, threshold: float) -> None:
    """Rewrite the run's fitted threshold, so that the test knows labels it must change."""
    info = json.loads((run_dir / "run.json").read_text())
    info["decision"]["threshold"] = threshold
    (run_dir / "run.json").write_text(json.dumps(info))


def test_every_prediction_path_labels_by_the_runs_threshold(tmp_path):
    from sentiment.data.prepare import prepare
    from sentiment.evaluation.evaluate import evaluate
    from sentiment.serving.inference import load_model
    from sentiment.training.stage import train

    from conftest import review_rows, write_csv

    source = write_csv(tmp_path / "reviews.csv", review_rows())
    config = load_config(
        TINY_CONFIG, [*experiment_sets(tmp_path, source), *tiny_model(3), "training.decision_threshold=validation"]
    )
    prepare(config, log=quiet)
    run = train(config, log=quiet)
    decision = run.info["decision"]
    assert decision["fitted_on"] == "validation" and decision["threshold"] in THRESHOLDS
    assert decision["validation"]["at_threshold"] >= decision["validation"]["at_argmax"]
    assert 0.0 <= decision["validation"]["cross_fitted"] <= 1.0  # its own test above

    texts = ["love this dress", "the zipper broke", "it is a dress", "ok then", "great but small"]
    p_positive = load_model(run.directory).predict_proba(texts)[:, 1]
    threshold = float(np.sort(p_positive)[2])  # between the texts: argmax and threshold disagree somewhere
    force_threshold(run.directory, threshold)
    model = load_model(run.directory)
    assert model.decision_threshold == threshold
    expected = ["positive" if p >= threshold else "negative" for p in p_positive]
    assert expected != ["positive" if p >= 0.5 else "negative" for p in p_positive] or threshold == 0.5
    predictions = model.predict(texts, sentences=True)
    assert predictions.labels == expected
    for text, sentences in zip(texts, predictions.sentences):  # one-sentence texts: the sentence is the text
        assert [s.label for s in sentences] == [expected[texts.index(text)]]

    reviews = tmp_path / "r.txt"
    reviews.write_text("\n".join(texts) + "\n", encoding="utf-8")
    output = tmp_path / "scored.csv"
    from sentiment.cli import cli

    result = CliRunner().invoke(cli, ["score", "-m", str(run.directory), str(reviews), "-o", str(output)])
    assert result.exit_code == 0, result.output
    with open(output, newline="", encoding="utf-8") as stream:
        assert [row["label"] for row in csv.DictReader(stream)] == expected

    metrics = evaluate(config, n_resamples=50, log=quiet)
    from sentiment.data.prepare import load_prepared

    test = load_prepared(config.prepared_dir).split("test")
    y_true = np.asarray(test["label"])
    probabilities = model.predict_proba(list(test["text"]))
    accuracy = float(((probabilities[:, 1] >= threshold).astype(int) == y_true).mean())
    assert metrics.model.accuracy == pytest.approx(accuracy)
    assert metrics.model.decision_threshold == threshold
    case = metrics.contrast.model.cases[0]
    p = model.predict_proba([case.text])[0, 1]
    assert case.predicted == ("positive" if p >= threshold else "negative")
