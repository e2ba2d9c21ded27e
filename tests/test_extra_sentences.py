"""Another prepared dataset's sentences as extra training examples (`training.extra_sentences`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sentiment.config import load_config
from sentiment.errors import SentimentError
from sentiment.training.extra_sentences import extra_sentences

from conftest import TINY, quiet, write_csv

MOVIE_POSITIVE = ["a wonderful film .", "the acting is superb ."]
MOVIE_NEGATIVE = ["a dreadful film .", "the plot is boring ."]
NEUTRAL = "it was released in {year} ."


@pytest.fixture
def other_prepared(tmp_path, make_config):
    """A second prepared dataset, `movies`, beside the tiny experiment's (same data folder)."""
    from sentiment.data.prepare import prepare

    rows = []
    for year in range(1990, 2010):
        rows.append({"text": f"{' '.join(MOVIE_POSITIVE)} {NEUTRAL.format(year=year)}", "label": 5})
        rows.append({"text": f"{' '.join(MOVIE_NEGATIVE)} {NEUTRAL.format(year=year)}", "label": 1})
    config = make_config(
        write_csv(tmp_path / "movies.csv", rows), "name=movies", "split.validation=0.1", "split.test=0.1"
    )
    prepare(config, log=quiet)
    return config


def test_extra_sentences_are_a_seeded_filtered_sample_of_the_other_training_reviews(other_prepared, prepared_config):
    from sentiment.data.prepare import load_prepared

    overrides = ("training.segments=sentences", "training.segment_filter=lexicon", "training.extra_sentences=movies")
    config = prepared_config(*overrides, "training.extra_sentence_count=1000")
    extra = extra_sentences(config, ["negative", "positive"], seed=13)
    train = load_prepared(other_prepared.prepared_dir).split("train")
    # Every sentence of the other dataset's training reviews but the neutral "it was released in
    # 19xx ." (VADER reads no polarity in it), each with its review's label.
    texts = sorted(zip(map(" ".join, extra.tokens), extra.labels.tolist()))
    per_review = len(MOVIE_POSITIVE)
    expected = sorted(
        [(sentence, 1) for sentence in MOVIE_POSITIVE] * int(np.sum(np.asarray(train["label"]) == 1))
        + [(sentence, 0) for sentence in MOVIE_NEGATIVE] * int(np.sum(np.asarray(train["label"]) == 0))
    )
    assert texts == expected and extra.filtered_out == len(train) and len(extra.tokens) == per_review * len(train)
    # A smaller count draws a subset; the same seed draws the same one.
    small = prepared_config(*overrides, "training.extra_sentence_count=5")
    first, again = (
        extra_sentences(small, ["negative", "positive"], 13),
        extra_sentences(small, ["negative", "positive"], 13),
    )
    assert (
        len(first.tokens) == 5
        and first.tokens == again.tokens
        and set(map(" ".join, first.tokens)) <= {t for t, _ in expected}
    )
    assert "film" in extra.frequent_words(2)


def test_training_with_extra_sentences_records_them_and_reads_their_words(other_prepared, prepared_config):
    from sentiment.training.stage import train

    config = prepared_config(*TINY, "training.segments=sentences", "training.extra_sentences=movies")
    run = train(config, log=quiet)
    info = json.loads((run.directory / "run.json").read_text())
    assert info["training_examples"]["extra_sentences"] == 2 * 32 + 32  # every sentence: no filter
    vocab = json.loads((run.directory / "vocab.json").read_text())["tokens"]
    assert {"film", "superb", "dreadful"} <= set(vocab)
    # The kept model's reading of the other dataset's validation reviews, which training never saw.
    from sentiment.data.prepare import load_prepared
    from sentiment.model.batching import predict_ids

    movies = load_prepared(other_prepared.prepared_dir).split("validation")
    cut = config.tokenize.max_len
    probabilities = predict_ids(run.build_model(), [run.vocab.encode(tokens[:cut]) for tokens in movies["tokens"]])
    other = info["other_validation"]
    assert other["reviews"] == len(movies) > 0
    assert other["accuracy"] == pytest.approx(np.mean(probabilities.argmax(1) == np.asarray(movies["label"])), abs=1e-5)


def test_extra_sentences_join_only_the_first_epochs_asked_for(other_prepared, prepared_config):
    from sentiment.training.stage import train

    config = prepared_config(
        *TINY, "training.segments=sentences", "training.extra_sentences=movies", "training.extra_sentence_epochs=1"
    )
    run = train(config, log=quiet)
    counts = json.loads((run.directory / "run.json").read_text())["training_examples"]
    own = counts["reviews"] + counts["sentences"] - counts["extra_sentences"]
    history = [json.loads(line) for line in (run.directory / "metrics.jsonl").read_text().splitlines()]
    assert [line["examples"] for line in history] == [own + counts["extra_sentences"], own, own, own]
    assert counts["extra_sentences"] == 2 * 32 + 32


def test_extra_sentences_need_a_prepared_dataset_of_the_same_classes(
    other_prepared, prepared_config, make_config, tmp_path
):
    with pytest.raises(SentimentError, match="no prepared dataset at .*run `sentiment prepare`"):
        extra_sentences(
            prepared_config("training.segments=sentences", "training.extra_sentences=nowhere"),
            ["negative", "positive"],
            13,
        )
    with pytest.raises(SentimentError, match="has the classes"):
        extra_sentences(
            prepared_config("training.segments=sentences", "training.extra_sentences=movies"), ["bad", "good"], 13
        )
    with pytest.raises(SentimentError, match="set training.segments too"):
        load_config(None, ["training.extra_sentences=movies"])
    with pytest.raises(SentimentError, match="set training.extra_sentences too"):
        load_config(None, ["training.extra_sentence_epochs=1"])
