"""Titles: `prepare` keeps each review's title beside its text, and `train` reads the validation
reviews' titles alone after training (`run.json` `title_validation`)."""

import json

import numpy as np
import pytest

from sentiment.data.prepare import prepare
from sentiment.serving.inference import load_model
from sentiment.training.stage import train

from conftest import TINY, quiet, review_rows, write_csv

TITLES = {"love": "Love it!", "great": "Great quality", "the fabric": "Cheap", "runs": "Runs small", "terrible": ""}


def titled_rows() -> list[dict]:
    """The tiny reviews, most with a title (by how the text begins), some without, one title without a text."""
    rows = []
    for row in review_rows(copies=6):
        title = next((title for start, title in TITLES.items() if row["text"].startswith(start)), "Fine")
        rows.append({**row, "title": title})
    rows.append({"text": "", "label": 5, "title": "A title and no review"})
    return rows


def test_prepare_keeps_each_title_and_the_text_begins_with_it(tmp_path, make_config):
    source = write_csv(tmp_path / "titled.csv", titled_rows(), fieldnames=("text", "label", "title"))
    prepared = prepare(make_config(source, "data.title_column=title"), log=quiet)
    assert prepared.manifest["rows"]["dropped"]["empty_text"] == 1  # a title alone is no review
    seen = 0
    for name in ("train", "validation", "test"):
        split = prepared.split(name)
        for text, title in zip(split["text"], split["title"]):
            if title:
                assert text.startswith(title) and text != title
                seen += 1
            else:
                assert text.startswith("terrible")
    assert seen == 114  # 120 reviews of two classes, the six "terrible ..." ones untitled
    # Without a title column every row's title is empty.
    untitled = prepare(make_config(write_csv(tmp_path / "plain.csv", review_rows()), "name=plain"), log=quiet)
    assert set(untitled.split("train")["title"]) == {""}


def test_train_reads_the_validation_titles_alone_as_the_run_ships_the_model(tmp_path, make_config):
    source = write_csv(tmp_path / "titled.csv", titled_rows(), fieldnames=("text", "label", "title"))
    config = make_config(source, "data.title_column=title", *TINY, "training.decision_threshold=validation")
    prepared = prepare(config, log=quiet)
    lines: list[str] = []
    train(config, log=lines.append)
    run = json.loads((tmp_path / "runs" / "tiny" / "run.json").read_text())
    reading = run["title_validation"]

    validation = prepared.split("validation")
    titled = [(title, label) for title, label in zip(validation["title"], validation["label"]) if title]
    assert reading["titles"] == len(titled) > 0
    assert reading["class_counts"] == {
        name: sum(label == k for _, label in titled) for k, name in enumerate(prepared.labels)
    }
    shipped = load_model(tmp_path / "runs" / "tiny")
    assert shipped.decision_threshold == run["decision"]["threshold"]
    predicted = shipped.predict([title for title, _ in titled]).labels
    expected = [prepared.labels[label] for _, label in titled]
    assert reading["accuracy"] == pytest.approx(np.mean([p == e for p, e in zip(predicted, expected)]), abs=1e-5)
    negatives = [p == e for p, e in zip(predicted, expected) if e == "negative"]
    assert reading["recall"]["negative"] == pytest.approx(np.mean(negatives), abs=1e-5)
    assert any(line.startswith(f"validation titles read alone ({len(titled)}, ") for line in lines)


def test_a_run_without_titles_has_no_title_reading(tiny_trained):
    run = json.loads((tiny_trained.run_dir / "run.json").read_text())
    assert "title_validation" not in run


def test_the_model_card_gives_the_titles_reading():
    from sentiment.reporting.model_card import _body

    info = {"model": {"cell": "lstm"}, "title_validation": {"titles": 1719, "macro_f1": 0.84434, "accuracy": 0.93484}}
    body = _body(info, {}, None)
    assert (
        "- The validation reviews' 1,719 titles, each read alone (short texts of this domain, labelled by their "
        "review): macro-F1 0.8443, accuracy 0.9348." in body
    )
