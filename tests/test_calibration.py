"""Temperature scaling: it recovers a known temperature, changes no prediction, and every loaded
run applies the one fitted on its validation split."""

import json

import numpy as np
import pytest

from sentiment.training.calibration import calibration_record, fit_temperature, rescale

from conftest import quiet, tiny_model

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_fitting_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(20000, 3))
    labels = np.array([rng.choice(3, p=p) for p in softmax(logits / 2.5)])
    assert fit_temperature(softmax(logits), labels) == pytest.approx(2.5, rel=0.06)
    record = calibration_record(softmax(logits), labels, ["a", "b", "c"])
    assert record["validation"]["nll_after"] < record["validation"]["nll_before"]
    assert record["validation"]["ece_after"] < record["validation"]["ece_before"]


def test_scaling_keeps_every_prediction_and_is_undone_by_its_inverse():
    probabilities = softmax(np.random.default_rng(1).normal(0, 4, size=(500, 2)))
    scaled = rescale(probabilities, 1 / 1.7)
    assert (scaled.argmax(1) == probabilities.argmax(1)).all()
    assert np.allclose(rescale(scaled, 1.7), probabilities, atol=1e-9)


def test_a_trained_run_applies_its_validation_temperature(prepared_config):
    from sentiment.serving.inference import load_model
    from sentiment.training.stage import train

    config = prepared_config(*tiny_model(3))
    run = train(config, log=quiet)
    calibration = json.loads((config.run_dir / "run.json").read_text())["calibration"]
    assert calibration["fitted_on"] == "validation" and calibration["temperature"] > 0
    model = load_model(run.directory)
    assert model.network.temperature == calibration["temperature"]
    texts = ["love this dress", "the zipper broke", "runs small but the fabric is soft"]
    scaled = model.predict(texts).probabilities
    model.network.temperature = 1.0
    raw = model.predict(texts).probabilities
    assert np.allclose(scaled, rescale(raw, 1 / calibration["temperature"]), atol=1e-5)
    assert (scaled.argmax(1) == raw.argmax(1)).all()


def test_temperature_scaling_can_be_turned_off(prepared_config):
    from sentiment.training.stage import train

    config = prepared_config(*tiny_model(1), "training.temperature_scaling=false")
    assert train(config, log=quiet).temperature == 1.0


def test_abstaining_marks_low_confidence_rows_and_keeps_every_row(prepared_config, tmp_path):
    import csv

    from click.testing import CliRunner

    from sentiment.cli import cli
    from sentiment.serving.inference import load_model
    from sentiment.training.stage import train

    run = train(prepared_config(*tiny_model(2)), log=quiet)
    texts = ["love this dress", "the zipper broke", "it is a dress", "ok"]
    model = load_model(run.directory)
    predictions = model.predict(texts, min_confidence=0.8)
    assert predictions.abstained.tolist() == (predictions.probabilities.max(1) < 0.8).tolist()
    reviews = tmp_path / "r.txt"
    reviews.write_text("\n".join(texts[:2]) + "\n\n" + "\n".join(texts[2:]) + "\n", encoding="utf-8")
    output = tmp_path / "out.csv"
    result = CliRunner().invoke(
        cli, ["score", "-m", str(run.directory), str(reviews), "--min-confidence", "0.8", "-o", str(output)]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(output, encoding="utf-8")))
    assert [row["abstained"] for row in rows] == [str(a).lower() for a in predictions.abstained[:2]] + [""] + [
        str(a).lower() for a in predictions.abstained[2:]
    ]
    assert rows[2]["error"] == "empty_text"
    bad = CliRunner().invoke(cli, ["score", "-m", str(run.directory), str(reviews), "--min-confidence", "2"])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1
