"""`evaluate` on a tiny real run: metrics.json keeps its documented schema, the report is written."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from sentiment.cli import cli
from sentiment.data.prepare import prepare
from sentiment.evaluation.evaluate import evaluate
from sentiment.serving.inference import load_model
from sentiment.training.stage import train

from conftest import TINY, TINY_CONFIG, experiment_sets, quiet

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out

REQUIRED = [
    "model.accuracy",
    "model.macro_f1",
    "baseline.accuracy",
    "baseline.macro_f1",
    "vader.accuracy",
    "vader.macro_f1",
    "comparison_vader.macro_f1.difference",
    "contrast.model.pass_rate",
    "contrast.baseline.pass_rate",
    "contrast.vader.pass_rate",
    "contrast.model.by_capability",
    "contrast.baseline.by_capability",
    "out_of_domain.sets",
]


def lookup(data, dotted):
    for key in dotted.split("."):
        data = data[key]
    return data


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    from sentiment.config import load_config

    from conftest import review_rows, write_csv, write_rated_sentences

    root = tmp_path_factory.mktemp("evaluate")
    source = write_csv(root / "reviews.csv", review_rows())
    sentences = write_rated_sentences(root / "rated.txt")
    config = load_config(
        TINY_CONFIG, [*experiment_sets(root, source), *TINY, f'evaluate.out_of_domain=["{sentences}"]']
    )
    prepare(config, log=quiet)
    train(config, log=quiet)
    return config, evaluate(config, n_resamples=200, log=quiet)


def test_metrics_json_has_the_documented_schema(evaluated):
    config, metrics = evaluated
    saved = json.loads((config.report_dir / "metrics.json").read_text())
    assert saved["schema_version"] == 2 and saved["experiment"] == "tiny"
    for key in REQUIRED:
        assert lookup(saved, key) is not None, key
    for system in ("model", "baseline", "vader"):
        part = saved[system]
        low, high = part["macro_f1_ci"]
        assert low <= part["macro_f1"] <= high
        assert sum(map(sum, part["confusion_matrix"])) == saved["data"]["test_examples"]
        assert set(part["per_class"]) == {"negative", "positive"}
    assert set(saved["contrast"]["model"]["by_capability"]) == set(saved["contrast"]["baseline"]["by_capability"])
    assert {"difference", "ci_low", "ci_high", "significant"} <= set(saved["comparison"]["macro_f1"])
    assert saved["explain"][0]["text"] == "not perfect, but pretty good"


def test_out_of_domain_figures_match_scoring_the_sentences_again(evaluated):
    from sentiment.model.vader import VaderModel

    from conftest import RATED_SENTENCES

    config, metrics = evaluated
    (item,) = metrics.out_of_domain.sets
    kept = [(text, int(mean >= 0.5)) for _, mean, text in RATED_SENTENCES if abs(mean) >= 0.5]
    assert (item.sentences_read, item.sentences, item.dropped_middle) == (6, 5, 1)
    texts, labels = [text for text, _ in kept], np.array([label for _, label in kept])
    for name, system in (
        ("model", load_model(config.run_dir)),
        ("baseline", load_model(config.run_dir / "baseline")),
        ("vader", VaderModel()),
    ):
        predictions = system.predict(texts).probabilities.argmax(1)
        assert item.systems[name].accuracy == pytest.approx(np.mean(predictions == labels)), name
    assert set(item.comparison) == {"baseline", "vader"}
    assert item.errors == [] or item.errors[0].predicted != item.errors[0].label
    vader_rows = [e for e in metrics.errors["vader"]]
    assert all(e.vader_probs and e.model_probs and e.baseline_probs for e in vader_rows)


def test_report_files_are_written(evaluated):
    config, metrics = evaluated
    names = {path.name for path in config.report_dir.iterdir()}
    assert {
        "report.html",
        "report.md",
        "metrics.json",
        "confusion_matrices.png",
        "reliability.png",
        "contrast_by_capability.png",
    } <= names
    assert {item.image for item in metrics.explain} <= names
    html = (config.report_dir / "report.html").read_text()
    assert "not perfect, but pretty good" in html and 'src="http' not in html


def test_model_figures_match_scoring_the_test_split_again(evaluated):
    config, metrics = evaluated
    import datasets

    test = datasets.load_from_disk(str(config.prepared_dir / "test"))
    model = load_model(config.run_dir)
    predictions = model.predict(test["text"]).probabilities.argmax(1)
    assert np.mean(predictions == np.array(test["label"])) == pytest.approx(metrics.model.accuracy)
    baseline = load_model(config.run_dir / "baseline")
    predictions = baseline.predict(test["text"]).probabilities.argmax(1)
    assert np.mean(predictions == np.array(test["label"])) == pytest.approx(metrics.baseline.accuracy)


def test_evaluate_without_a_run_is_one_line_and_exit_code_2(tmp_path):
    result = CliRunner().invoke(
        cli, ["evaluate", "--config", TINY_CONFIG, "--set", f"paths.runs={tmp_path}", "--set", f"paths.data={tmp_path}"]
    )
    assert result.exit_code == 2 and result.output.startswith("error: no trained run")


def test_the_models_errors_name_the_sentence_that_decided(evaluated):
    config, metrics = evaluated
    model = load_model(config.run_dir)
    for error in metrics.errors["model"]:
        sentences = model.predict_sentences([error.text])[0]
        if len(sentences) < 2:
            assert error.deciding_sentence is None
            continue
        decider = error.deciding_sentence
        predicted = model.classes.index(error.predicted)
        assert decider is not None and decider.text == max(sentences, key=lambda s: s.probabilities[predicted]).text


def test_the_run_has_a_model_card_that_huggingface_hub_reads(evaluated):
    from huggingface_hub import ModelCard

    config, metrics = evaluated
    card = ModelCard.load(config.run_dir / "README.md")  # a local file: no network
    assert card.data.language == "en" and card.data.license == "mit"
    assert "sentiment-analysis" in card.data.tags and card.data.pipeline_tag == "text-classification"
    assert card.data.datasets == [config.data.source]
    # evaluate refreshed it with the test figures of all three systems.
    assert f"| this model | {metrics.model.accuracy:.3f}" in card.text
    assert f"| VADER (lexicon) | {metrics.vader.accuracy:.3f}" in card.text
    assert "Intended use and limits" in card.text
