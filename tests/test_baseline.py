"""The bag-of-words baseline: C selection on validation and a pickle-free, exact save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from sentiment.errors import SentimentError
from sentiment.model.baseline import CONFIG_FILE, WEIGHTS_FILE, BagOfWordsBaseline, word_ngrams

# Token lists as the project's spaCy tokenizer produces them (lowercased, punctuation and
# clitics split off). Written as strings only for readability.
POSITIVE = [
    "great battery life , love it !",
    "works great and the price is great",
    "love this phone , the screen is excellent",
    "excellent quality , would buy again",
    "the battery lasts all day , very happy",
    "very happy with this purchase",
    "great sound and very comfortable",
    "love it , works perfectly",
    "excellent value for the price",
    "fast shipping and great quality",
    "the screen is bright and sharp , love it",
    "works perfectly out of the box",
    "comfortable to wear and the sound is excellent",
    "would recommend to anyone , great value",
    "very happy , the quality is excellent",
    "best purchase this year , love it",
    "the charger works great and is fast",
    "sturdy , well made and great value",
    "happy with the quality , would buy again",
    "excellent , works as described",
]
NEGATIVE = [
    "terrible battery , died after a week",
    "broke after two days , do n't buy",
    "the screen cracked , very disappointed",
    "poor quality and it stopped working",
    "waste of money , returned it",
    "very disappointed , does n't work",
    "the sound is terrible and cheap",
    "stopped working after a week , poor quality",
    "do n't waste your money on this",
    "cheap plastic , broke immediately",
    "terrible customer service and poor quality",
    "the charger stopped working , returned it",
    "disappointed , the battery is terrible",
    "does n't fit and feels cheap",
    "returned it , waste of money",
    "poor sound and the screen is dim",
    "broke in a week , terrible",
    "worst purchase , very disappointed",
    "it does n't charge , poor quality",
    "cheap and terrible , do n't buy",
]
NEUTRAL = [
    "it is okay , nothing special",
    "average quality for the price",
    "it works , but nothing special",
    "okay product , average battery",
    "the screen is okay , average sound",
    "nothing special , it is fine",
    "fine for the price , average",
    "it is fine , does the job",
    "average , okay for the price",
    "does the job , nothing special",
    "okay , it works as expected",
    "it is fine , average quality",
]
# Held-out texts with n-grams never seen in training ("gorgeous", "flimsy", "meh" ...).
UNSEEN = [
    "gorgeous display , love it",
    "flimsy hinge , terrible",
    "meh",
    "",
    "zzz qqq www",
    "great great great great battery battery",
]


def _tok(texts: list[str]) -> list[list[str]]:
    return [text.split() for text in texts]


def _split(groups: dict[str, list[str]], n_val: int) -> tuple[list, list, list, list]:
    """Last ``n_val`` of each group go to validation; labels are given as names."""
    train_x, train_y, val_x, val_y = [], [], [], []
    for label, texts in groups.items():
        train_x += _tok(texts[:-n_val])
        train_y += [label] * (len(texts) - n_val)
        val_x += _tok(texts[-n_val:])
        val_y += [label] * n_val
    return train_x, train_y, val_x, val_y


BINARY_LABELS = ["negative", "positive"]
BINARY = _split({"negative": NEGATIVE, "positive": POSITIVE}, n_val=6)
THREE_LABELS = ["negative", "neutral", "positive"]
THREE = _split({"negative": NEGATIVE, "neutral": NEUTRAL, "positive": POSITIVE}, n_val=4)


@pytest.fixture(scope="module")
def binary_model() -> BagOfWordsBaseline:
    return BagOfWordsBaseline().fit(*BINARY, labels=BINARY_LABELS)


@pytest.fixture(scope="module")
def three_class_model() -> BagOfWordsBaseline:
    return BagOfWordsBaseline().fit(*THREE, labels=THREE_LABELS, class_weight="balanced")


def _sklearn_reference(split: tuple, labels: list[str], c: float, class_weight=None):
    """The textbook scikit-learn pipeline (identity tokenizer, built-in n-grams) for cross-checks."""
    train_x, train_y, val_x, val_y = split
    identity = lambda tokens: tokens  # noqa: E731
    vectorizer = TfidfVectorizer(
        tokenizer=identity,
        preprocessor=identity,
        lowercase=False,
        token_pattern=None,
        ngram_range=(1, 2),
        min_df=2,
        sublinear_tf=True,
    )
    x_train = vectorizer.fit_transform(train_x)
    y_train = [labels.index(y) for y in train_y]
    model = LogisticRegression(C=c, max_iter=2000, class_weight=class_weight).fit(x_train, y_train)
    return vectorizer, model


def test_word_ngrams_match_sklearn() -> None:
    tokens = ["not", "bad", "at", "all", "!"]
    identity = lambda tokens: tokens  # noqa: E731
    analyzer = TfidfVectorizer(
        tokenizer=identity, preprocessor=identity, lowercase=False, token_pattern=None, ngram_range=(1, 2)
    ).build_analyzer()
    assert sorted(word_ngrams(tokens)) == sorted(analyzer(tokens))
    assert word_ngrams(["solo"]) == ["solo"]
    assert word_ngrams([]) == []


def test_fit_picks_c_on_validation_and_records_table(binary_model: BagOfWordsBaseline) -> None:
    table = binary_model.validation
    assert [row["C"] for row in table] == [0.25, 1.0, 4.0, 16.0]
    best = max(row["macro_f1"] for row in table)
    first_best = next(row["C"] for row in table if row["macro_f1"] == best)
    assert binary_model.chosen_c == first_best
    # Every recorded score is the validation score of an independently fitted model with that C.
    _, _, val_x, val_y = BINARY
    y_val = [BINARY_LABELS.index(y) for y in val_y]
    for row in table:
        vectorizer, model = _sklearn_reference(BINARY, BINARY_LABELS, row["C"])
        pred = model.predict(vectorizer.transform(val_x))
        assert row["macro_f1"] == pytest.approx(f1_score(y_val, pred, average="macro"))
        assert row["accuracy"] == pytest.approx(np.mean(pred == y_val))
        assert row["converged"] is True


def test_ties_go_to_the_smaller_c() -> None:
    # Validation = training here, so every C separates it perfectly: all tie at 1.0.
    train_x, train_y, _, _ = BINARY
    model = BagOfWordsBaseline().fit(train_x, train_y, train_x, train_y, labels=BINARY_LABELS, c_grid=(16, 4, 64))
    assert [row["macro_f1"] for row in model.validation] == [1.0, 1.0, 1.0]
    assert model.chosen_c == 4.0


def test_selection_uses_validation_not_training() -> None:
    # Imbalanced training (14 positive, 4 negative): C=0.001 is so regularized that the
    # intercept wins and everything is predicted positive; C=100 fits the words.
    train_x = _tok(POSITIVE[:14] + NEGATIVE[:4])
    train_y = ["positive"] * 14 + ["negative"] * 4
    _, _, val_x, val_y = BINARY
    honest = BagOfWordsBaseline().fit(train_x, train_y, val_x, val_y, labels=BINARY_LABELS, c_grid=(0.001, 100))
    assert honest.chosen_c == 100.0
    # Same training data, validation labels reversed: only a validation-driven choice flips to C=0.001
    # (all-positive scores macro-F1 1/3 on the reversed labels; the good model scores far less).
    flipped = ["negative" if y == "positive" else "positive" for y in val_y]
    fooled = BagOfWordsBaseline().fit(train_x, train_y, val_x, flipped, labels=BINARY_LABELS, c_grid=(0.001, 100))
    scores = {row["C"]: row["macro_f1"] for row in fooled.validation}
    assert scores[0.001] == pytest.approx(1 / 3) and scores[100.0] < 1 / 3
    assert fooled.chosen_c == 0.001


@pytest.mark.parametrize(
    "fixture, split, labels",
    [
        ("binary_model", BINARY, BINARY_LABELS),
        ("three_class_model", THREE, THREE_LABELS),
    ],
)
def test_probabilities_match_sklearn_pipeline(request, fixture: str, split: tuple, labels: list[str]) -> None:
    model: BagOfWordsBaseline = request.getfixturevalue(fixture)
    class_weight = model.settings["class_weight"]
    vectorizer, reference = _sklearn_reference(split, labels, model.chosen_c, class_weight)
    texts = split[2] + _tok(UNSEEN)
    expected = reference.predict_proba(vectorizer.transform(texts))
    np.testing.assert_allclose(model.predict_proba(texts), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("fixture", ["binary_model", "three_class_model"])
def test_save_load_round_trip_is_exact(request, fixture: str, tmp_path: Path) -> None:
    model: BagOfWordsBaseline = request.getfixturevalue(fixture)
    texts = _tok(POSITIVE + NEGATIVE + NEUTRAL + UNSEEN)
    model.save(tmp_path / "baseline")
    loaded = BagOfWordsBaseline.load(tmp_path / "baseline")
    probs = loaded.predict_proba(texts)
    np.testing.assert_array_equal(probs, model.predict_proba(texts))
    assert probs.dtype == np.float64 and probs.shape == (len(texts), len(model.labels))
    np.testing.assert_array_equal(loaded.predict(texts), model.predict(texts))
    assert loaded.labels == model.labels
    assert loaded.chosen_c == model.chosen_c
    assert loaded.validation == model.validation


def test_saved_files_are_pickle_free_and_complete(binary_model: BagOfWordsBaseline, tmp_path: Path) -> None:
    directory = binary_model.save(tmp_path / "model")
    assert sorted(p.name for p in directory.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    for path in directory.iterdir():
        assert path.suffix not in {".pkl", ".pickle", ".joblib"}
        assert not path.read_bytes().startswith(b"\x80")  # pickle protocol 2+ header
    config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    assert config["labels"] == BINARY_LABELS
    assert config["chosen_c"] == binary_model.chosen_c
    assert config["ngram_range"] == [1, 2]
    assert "works perfectly" in config["vocabulary"]  # bigrams joined by one space
    assert config["validation"] == binary_model.validation
    assert config["sklearn_version"]
    assert config["settings"]["min_df"] == 2 and config["settings"]["sublinear_tf"] is True
    tensors = load_file(directory / WEIGHTS_FILE)
    n_features = len(config["vocabulary"])
    assert {k: (v.shape, v.dtype) for k, v in tensors.items()} == {
        "idf": ((n_features,), np.float64),
        "coef": ((1, n_features), np.float64),
        "intercept": ((1,), np.float64),
    }
    # No stray temporary siblings after a successful save.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_save_replaces_an_existing_model(binary_model, three_class_model, tmp_path: Path) -> None:
    target = tmp_path / "model"
    binary_model.save(target)
    three_class_model.save(target)
    assert BagOfWordsBaseline.load(target).labels == THREE_LABELS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_save_refuses_to_clobber_unrelated_files(binary_model: BagOfWordsBaseline, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(SentimentError, match="refusing"):
        binary_model.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_interrupted_save_keeps_the_old_model(binary_model, three_class_model, tmp_path, monkeypatch) -> None:
    target = tmp_path / "model"
    binary_model.save(target)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("sentiment.model.baseline.save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        three_class_model.save(target)
    assert BagOfWordsBaseline.load(target).labels == BINARY_LABELS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_load_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(SentimentError, match="does not exist") as error:
        BagOfWordsBaseline.load(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(error.value)


@pytest.mark.parametrize("missing", [CONFIG_FILE, WEIGHTS_FILE])
def test_load_missing_file_raises(binary_model, tmp_path: Path, missing: str) -> None:
    directory = binary_model.save(tmp_path / "model")
    (directory / missing).unlink()
    with pytest.raises(SentimentError, match=f"missing {missing}") as error:
        BagOfWordsBaseline.load(directory)
    assert str(directory) in str(error.value)


def test_load_corrupt_files_raise(binary_model, tmp_path: Path) -> None:
    directory = binary_model.save(tmp_path / "model")
    (directory / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(SentimentError, match="corrupt"):
        BagOfWordsBaseline.load(directory)

    directory = binary_model.save(tmp_path / "model")
    (directory / CONFIG_FILE).write_text("{ truncated", encoding="utf-8")
    with pytest.raises(SentimentError, match="corrupt"):
        BagOfWordsBaseline.load(directory)

    directory = binary_model.save(tmp_path / "model")
    config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    config["vocabulary"].popitem()
    (directory / CONFIG_FILE).write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(SentimentError, match="vocabulary"):
        BagOfWordsBaseline.load(directory)


@pytest.mark.parametrize("fixture", ["binary_model", "three_class_model"])
def test_predict_proba_rows_sum_to_one(request, fixture: str) -> None:
    model: BagOfWordsBaseline = request.getfixturevalue(fixture)
    probs = model.predict_proba(_tok(NEUTRAL + UNSEEN))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.all((probs >= 0) & (probs <= 1))


def test_the_baseline_learns_the_obvious(binary_model: BagOfWordsBaseline) -> None:
    probs = binary_model.predict_proba([["love", "it", ",", "great", "quality"], ["terrible", ",", "broke"]])
    assert probs[0, 1] > 0.5 > probs[1, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": ["negative"]}, "at least two"),
        ({"labels": BINARY_LABELS, "c_grid": ()}, "c_grid"),
        ({"labels": BINARY_LABELS, "c_grid": (-1,)}, "c_grid"),
        ({"labels": BINARY_LABELS, "select_metric": "auc"}, "select_metric"),
        ({"labels": BINARY_LABELS, "class_weight": "heavy"}, "class_weight"),
        ({"labels": ["bad", "good"]}, "not one of the labels"),
    ],
)
def test_fit_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(SentimentError, match=message):
        BagOfWordsBaseline().fit(*BINARY, **kwargs)


def test_fit_rejects_raw_strings_and_unfitted_use() -> None:
    train_x, train_y, val_x, val_y = BINARY
    with pytest.raises(SentimentError, match="tokenize"):
        BagOfWordsBaseline().fit(POSITIVE, train_y[: len(POSITIVE)], val_x, val_y, labels=BINARY_LABELS)
    with pytest.raises(SentimentError, match="not fitted"):
        BagOfWordsBaseline().predict_proba([["fine"]])
    with pytest.raises(SentimentError, match="min_df"):
        BagOfWordsBaseline().fit([["a"], ["b"]], [0, 1], [["a"]], [0], labels=BINARY_LABELS)


def test_class_weighting_is_chosen_on_validation_too() -> None:
    model = BagOfWordsBaseline().fit(*BINARY, labels=BINARY_LABELS, c_grid=(1, 4), class_weight=(None, "balanced"))
    assert [(row["class_weight"], row["C"]) for row in model.validation] == [
        (None, 1),
        (None, 4),
        ("balanced", 1),
        ("balanced", 4),
    ]
    best = max(model.validation, key=lambda row: row["macro_f1"])
    assert model.settings["class_weight"] == best["class_weight"] and model.chosen_c == best["C"]
    with pytest.raises(SentimentError, match="class_weight"):
        BagOfWordsBaseline().fit(*BINARY, labels=BINARY_LABELS, class_weight=("inverse",))
