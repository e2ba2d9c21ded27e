"""Temperature scaling: it recovers a known temperature, changes no prediction, and every loaded
run applies the one fitted on its validation split."""

import json

import numpy as np
import pytest

from sentiment.calibration import calibration_record, fit_temperature, rescale

from conftest import quiet, tiny_model


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
    from sentiment.inference import load_model
    from sentiment.training import train

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
    from sentiment.training import train

    config = prepared_config(*tiny_model(1), "training.temperature_scaling=false")
    assert train(config, log=quiet).temperature == 1.0
