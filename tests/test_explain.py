"""`sentiment explain` on real tiny runs: prefix probabilities, occlusion, PNG and HTML output, errors.

The recurrence itself (trace == the model's own encoder) is tested in test_gates.py.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from sentiment.cli import cli
from sentiment.config import load_config
from sentiment.data.prepare import prepare
from sentiment.errors import SentimentError
from sentiment.evaluation.explain import explain_text, explain_texts, load_explainable_model, worst_contrast_failure
from sentiment.reporting.explain_page import format_explanation, render_explanations_html, write_explanations
from sentiment.training.stage import train

from browser import check_screenshot, needs_chromium, render_in_chromium
from conftest import experiment_sets, one_line_error, quiet, review_rows, tiny_model, write_csv

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out

TINY = tiny_model(2)
# A bidirectional LSTM, a unidirectional GRU, and a plain RNN (which has no gates, only its hidden state).
MODELS = {
    "lstm": ["model.cell=lstm"],
    "gru": ["model.cell=gru", "model.bidirectional=false"],
    "rnn": ["model.cell=rnn", "model.bidirectional=false"],
}
TEXT = "not perfect, but the fabric is soft"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{cell: run directory}: tiny runs sharing one prepared dataset."""
    root = tmp_path_factory.mktemp("explain")
    source = write_csv(root / "reviews.csv", review_rows())
    base = [*experiment_sets(root, source), "paths.prepared=tiny", *TINY]
    directories = {}
    for cell, overrides in MODELS.items():
        config = load_config(None, [f"name=tiny-{cell}", *base, *overrides])
        prepare(config, log=quiet)
        directories[cell] = train(config, log=quiet).directory
    return directories


@pytest.fixture(scope="module")
def models(runs):
    return {cell: load_explainable_model(directory) for cell, directory in runs.items()}


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_prefix_probabilities_end_at_the_models_prediction(models, cell):
    model = models[cell]
    explanation = explain_text(model, TEXT)
    tokens = model.tokenizer(TEXT)
    assert explanation.tokens == tokens and explanation.prefix_probs.shape == (len(tokens), 2)
    np.testing.assert_allclose(explanation.prefix_probs[-1], model.predict_proba([TEXT])[0], atol=1e-5)
    assert explanation.predicted == model.predict(TEXT).labels[0]
    # Row t is the model's opinion of the first t + 1 tokens alone.
    middle = len(tokens) // 2
    np.testing.assert_allclose(
        explanation.prefix_probs[middle], model.predict_tokens([tokens[: middle + 1]])[0], atol=1e-5
    )


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_contributions_are_one_occlusion_per_token(models, cell):
    model = models[cell]
    text = "love the fabric but the zipper qwertyuiop broke"  # qwertyuiop: not in the vocabulary
    explanation = explain_text(model, text)
    assert len(explanation.contributions) == len(explanation.tokens) == explanation.trace.num_tokens
    predicted = explanation.predicted_index
    for t in (0, len(explanation.tokens) - 1):
        occluded = list(explanation.tokens)
        occluded[t] = "<unk>"
        expected = explanation.probs[predicted] - model.predict_tokens([occluded])[0, predicted]
        assert explanation.contributions[t] == pytest.approx(expected, abs=1e-5)
    unknown = explanation.tokens.index("qwertyuiop")
    assert explanation.unknown[unknown] and explanation.contributions[unknown] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_writes_one_png_per_text(models, cell, tmp_path):
    explanations = explain_texts(models[cell], [TEXT, "awful, the zipper broke"])
    paths = write_explanations(explanations, tmp_path / "out.png", units=8)
    assert paths == [tmp_path / "out-1.png", tmp_path / "out-2.png"]
    for path in paths:
        assert path.read_bytes().startswith(PNG_MAGIC)


def test_one_text_writes_exactly_the_named_png(models, tmp_path):
    from matplotlib.image import imread

    # A plain RNN has no gates: its figure shows the hidden state only.
    assert write_explanations([explain_text(models["rnn"], TEXT)], tmp_path / "rnn.png") == [tmp_path / "rnn.png"]
    height, width, _ = imread(tmp_path / "rnn.png").shape
    assert width > 400 and height > 400
    assert [p.name for p in tmp_path.iterdir()] == ["rnn.png"]


@pytest.mark.parametrize(("cell", "texts"), [("lstm", [TEXT]), ("gru", [TEXT, "so comfortable"])])
def test_cli_writes_a_self_contained_html_page(runs, cell, texts, tmp_path):
    page = tmp_path / "page.html"
    result = CliRunner().invoke(cli, ["explain", "-m", str(runs[cell]), *texts, "-o", str(page)])
    assert result.exit_code == 0, result.output
    content = page.read_text()
    sources = re.findall(r'src="([^"]*)"', content)
    assert len(sources) == len(texts) and all(src.startswith("data:image/png;base64,") for src in sources)
    assert "<link" not in content and "http://" not in content and "https://" not in content
    assert "not perfect, but the fabric is soft" in content


def test_cli_without_output_prints_a_text_view_and_writes_nothing(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "texts.txt").write_text("love it\n\nawful zipper\n")
    result = CliRunner().invoke(cli, ["explain", "-m", str(runs["gru"]), "--file", "texts.txt"])
    assert result.exit_code == 0, result.output
    assert "'love it' -> " in result.output and "'awful zipper' -> " in result.output
    assert re.search(r"zipper\s+\d\.\d{3}\s+[+-]\d\.\d{3}", result.output), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["texts.txt"]


def expect_error(args, pattern):
    one_line_error(CliRunner().invoke(cli, ["explain", *args]), pattern)


def test_cli_errors_are_one_line_and_exit_2(runs, tmp_path):
    expect_error(["-m", str(runs["lstm"] / "baseline"), TEXT], "baseline: it has no recurrent gates")
    expect_error(["-m", str(runs["lstm"]), ""], "text 1 is empty")
    expect_error(["-m", str(runs["lstm"])], "give one or more texts")
    expect_error(["-m", str(tmp_path / "nothing"), TEXT], "no trained run")
    expect_error(["-m", str(runs["lstm"]), TEXT, "-o", str(tmp_path / "x.jpg")], r"\.png .* \.html")
    expect_error(["-m", str(runs["lstm"]), "--file", str(tmp_path / "missing.txt")], "text file not found")
    assert list(tmp_path.iterdir()) == []


def test_empty_and_tokenless_texts_are_user_errors(models):
    with pytest.raises(SentimentError, match="empty"):
        explain_text(models["gru"], "   ")


def test_text_view_and_html_mark_unknown_words(models):
    explanation = explain_text(models["gru"], "qwertyuiop fabric")
    assert "qwertyuiop*" in format_explanation(explanation)
    assert 'class="tok unk"' in render_explanations_html([explanation], units=4)


@needs_chromium
@pytest.mark.browser
@pytest.mark.parametrize(("width", "height"), [(412, 915), (1366, 900)], ids=["phone", "desktop"])
def test_the_page_renders_cleanly_in_chromium(models, tmp_path, width, height):
    texts = [TEXT + ". It runs small, sadly. I kept it anyway.", "qwertyuiop " + "soft " * 60]
    page = render_explanations_html(explain_texts(models["lstm"], texts), units=4)
    assert page.count('<table class="stack">') == 1  # the first text's sentences; the second has one
    found, stderr, screenshot = render_in_chromium(page, tmp_path, width, height)
    assert found.get("images-loaded") == "2/2" and json.loads(found["errors"]) == []
    assert found["overflow"] == "0", "the page scrolls sideways; only its tables may"
    assert [line for line in stderr.splitlines() if "CONSOLE" in line] == []
    check_screenshot(screenshot, width, height)


def test_worst_contrast_failure_is_the_most_confidently_wrong_case():
    cases = [
        {"text": "a", "expected": "positive", "p_positive": 0.9, "passed": True},
        {"text": "b", "expected": "positive", "p_positive": 0.3, "passed": False},
        {"text": "c", "expected": "negative", "p_positive": 0.95, "passed": False},
        {"text": "d", "expected": "negative", "p_positive": 0.6, "passed": False},
    ]
    assert worst_contrast_failure(cases)["text"] == "c"
    assert worst_contrast_failure(cases[:1]) is None
