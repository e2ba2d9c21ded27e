"""VADER as a reference system: the compound-score mapping, and scoring files with it."""

import csv

import numpy as np
import pytest
from click.testing import CliRunner

from sentiment.cli import cli
from sentiment.errors import SentimentError
from sentiment.model.vader import VaderModel, compound_probabilities, vader_scheme
from sentiment.serving.inference import load_model


def test_binary_reading_puts_compound_zero_on_the_positive_side():
    probabilities = compound_probabilities(np.array([-0.6, -0.0001, 0.0, 0.4]), "binary")
    assert probabilities.argmax(1).tolist() == [0, 0, 1, 1]
    assert probabilities[:, 1] == pytest.approx([0.2, 0.49995, 0.5, 0.7])
    assert np.allclose(probabilities.sum(1), 1.0)


def test_ternary_reading_uses_the_authors_neutral_band():
    probabilities = compound_probabilities(np.array([-0.05, -0.049, 0.0, 0.049, 0.05, 0.9]), "ternary")
    assert probabilities.argmax(1).tolist() == [0, 1, 1, 1, 2, 2]
    assert np.allclose(probabilities.sum(1), 1.0)


def test_star_ratings_have_no_vader_reading():
    assert vader_scheme(["negative", "positive"]) == "binary"
    assert vader_scheme(["1", "2", "3", "4", "5"]) is None
    with pytest.raises(SentimentError, match="no mapping for the 'stars'"):
        VaderModel("stars")


def test_vader_reads_negation_with_its_rules():
    predictions = VaderModel().predict(["not bad at all", "The fabric is not good.", "I love it"])
    assert predictions.labels == ["positive", "negative", "positive"]
    assert load_model("vader:ternary").classes == ["negative", "neutral", "positive"]


def test_score_any_file_with_vader(tmp_path):
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("love it, great fit\n\nthe zipper broke, awful\n", encoding="utf-8")
    output = tmp_path / "scored.csv"
    result = CliRunner().invoke(cli, ["score", "--model", "vader", str(reviews), "-o", str(output)])
    assert result.exit_code == 0, result.output
    with open(output, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["label"] for row in rows] == ["positive", "", "negative"]
    assert rows[1]["error"] == "empty_text"
    compound = VaderModel().compound(["love it, great fit"])[0]
    assert float(rows[0]["prob_positive"]) == pytest.approx((1 + compound) / 2)
