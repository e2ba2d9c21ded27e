"""Real (tiny) training runs: overfitting, save/load, resume, reproducibility, errors."""

import gzip
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sentiment.cli import cli
from sentiment.errors import SentimentError
from sentiment.model.batching import predict_ids
from sentiment.model.recurrent import RecurrentClassifier
from sentiment.serving.inference import load_model
from sentiment.training import loop as training_module
from sentiment.training.checkpoints import checkpoint_state
from sentiment.training.run import load_run, partial_dir
from sentiment.training.stage import train

from conftest import TINY, TINY_CONFIG, metrics_lines, one_line_error, quiet, without_timing

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out


def test_overfits_the_training_reviews_and_writes_a_complete_run(tiny):
    config = tiny("training.max_epochs=15", "training.patience=15", "training.select_metric=loss")
    run = train(config, log=quiet)
    assert run.directory == config.run_dir and not partial_dir(config.run_dir).exists()
    for name in (
        "model.safetensors",
        "config.json",
        "vocab.json",
        "labels.json",
        "metrics.jsonl",
        "learning_curves.png",
        "run.json",
    ):
        assert (run.directory / name).is_file(), name
    assert not list(run.directory.rglob("*.pt")) and not list(run.directory.rglob("*.pkl"))
    train_split = config.prepared_dir / "train"
    import datasets

    data = datasets.load_from_disk(str(train_split))
    probabilities = predict_ids(run.build_model(), data["ids"])
    assert (probabilities.argmax(1) == np.array(data["label"])).mean() == 1.0
    info = run.info
    assert info["best_epoch"] >= 1 and info["labels"] == ["negative", "positive"]
    assert len(metrics_lines(run.directory)) == info["epochs_run"]
    assert json.loads((run.directory / "labels.json").read_text()) == ["negative", "positive"]


def test_save_then_load_gives_identical_probabilities_and_batching_does_not_matter(tiny):
    config = tiny()
    run = train(config, log=quiet)
    texts = ["love this dress", "the zipper broke and it runs small", "not perfect, but pretty good", "ok"]
    model = load_model(run.directory)
    batched = model.predict_proba(texts)
    one_by_one = np.concatenate([model.predict_proba([text]) for text in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-6)
    again = load_model(run.directory).predict(texts)
    np.testing.assert_array_equal(again.probabilities, batched)
    assert again.labels == [model.classes[i] for i in batched.argmax(1)]


def test_two_runs_with_the_same_seed_are_identical(tiny):
    first = without_timing(metrics_lines(train(tiny(), log=quiet).directory))
    second = without_timing(metrics_lines(train(tiny(), log=quiet).directory))
    assert first == second


def test_each_epoch_trains_at_the_decayed_learning_rate(tiny, monkeypatch):
    original = training_module.Trainer._step
    seen: dict[int, set[float]] = {}

    def recording(self, batch):
        seen.setdefault(self.state.epoch + 1, set()).update(g["lr"] for g in self.optimizer.param_groups)
        return original(self, batch)

    monkeypatch.setattr(training_module.Trainer, "_step", recording)
    config = tiny("training.lr=0.01", "training.lr_decay=0.5")
    train(config, log=quiet)
    assert seen == {1: {0.01}, 2: {0.005}, 3: {0.0025}, 4: {0.00125}}


def _word_vector_steps(monkeypatch) -> dict[str, object]:
    """Patches `Trainer._step` to record each parameter group's rate and the word vectors before
    the first step and after the last."""
    original = training_module.Trainer._step
    seen: dict[str, object] = {"network": set(), "vectors": set()}

    def recording(self, batch):
        vectors = self.model.embedding.weight
        for group in self.optimizer.param_groups:
            seen["vectors" if any(p is vectors for p in group["params"]) else "network"].add(group["lr"])
        if "first" not in seen:
            seen["first"] = vectors.detach().clone()
        loss = original(self, batch)
        seen["last"] = vectors.detach().clone()
        return loss

    monkeypatch.setattr(training_module.Trainer, "_step", recording)
    return seen


def test_the_word_vectors_learn_at_their_share_of_the_decayed_rate(tiny, monkeypatch):
    seen = _word_vector_steps(monkeypatch)
    train(tiny("training.lr=0.01", "training.lr_decay=0.5", "training.embedding_lr_scale=0.25"), log=quiet)
    assert seen["network"] == {0.01, 0.005, 0.0025, 0.00125}
    assert sorted(seen["vectors"]) == pytest.approx([0.0003125, 0.000625, 0.00125, 0.0025])


def test_word_vectors_at_a_tenth_of_the_rate_move_less_than_at_the_whole(tiny, monkeypatch):
    moved = {}
    for scale in (1.0, 0.1):
        seen = _word_vector_steps(monkeypatch)
        train(tiny(f"training.embedding_lr_scale={scale}", f"name=scale{int(scale * 10)}"), log=quiet)
        moved[scale] = float((seen["last"] - seen["first"]).norm())
        assert len(seen["vectors"]) == 1  # one rate all through, whichever group holds the vectors
    assert 0 < moved[0.1] < 0.5 * moved[1.0]


def test_the_linear_schedule_falls_step_by_step_to_zero_at_the_end_of_max_epochs(tiny, monkeypatch):
    original = training_module.Trainer._step
    seen: list[tuple[int, float]] = []

    def recording(self, batch):
        seen.append((self.state.epoch + 1, self.optimizer.param_groups[0]["lr"]))
        return original(self, batch)

    monkeypatch.setattr(training_module.Trainer, "_step", recording)
    train(tiny("training.lr=0.01", "training.lr_schedule=linear", "training.max_epochs=2"), log=quiet)
    steps = len(seen) // 2
    assert [epoch for epoch, _ in seen] == [1] * steps + [2] * steps
    expected = [0.01 * (1 - i / (2 * steps)) for i in range(2 * steps)]
    assert [lr for _, lr in seen] == pytest.approx(expected)  # from lr, one equal fall per step
    assert seen[-1][1] == pytest.approx(0.01 / (2 * steps))  # the last step's rate is one step above 0


def _crash_in_epoch_three(config, monkeypatch):
    """Train `config` until a step early in epoch 3 raises (as Ctrl-C would); returns the real step."""
    original = training_module.Trainer._step
    calls = {"n": 0}

    def crash_in_epoch_three(self, batch):
        calls["n"] += 1
        if self.state.epoch == 2 and calls["n"] > 2 * 9 + 3:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(training_module.Trainer, "_step", crash_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        train(config, log=quiet)
    return original


def test_resume_after_an_interrupted_epoch_reaches_the_same_result(tiny, monkeypatch):
    # Dropout makes the RNG state part of what must be restored; the decayed learning rate must
    # come back too.
    config = tiny("model.dropout=0.2", "training.lr_decay=0.5")
    uninterrupted = without_timing(metrics_lines(train(config, log=quiet).directory))
    reference = load_model(config.run_dir).predict_proba(["love it", "awful"])

    original = _crash_in_epoch_three(config, monkeypatch)
    # The unfinished run stays apart; the previous finished run is untouched until this one ends.
    assert partial_dir(config.run_dir).is_dir() and load_run(config.run_dir).info["epochs_run"] == 4
    assert len(metrics_lines(partial_dir(config.run_dir))) == 2
    monkeypatch.setattr(training_module.Trainer, "_step", original)
    messages = []
    resumed = train(config, resume=True, log=messages.append)
    assert any("resuming after epoch 2" in m for m in messages)
    assert without_timing(metrics_lines(resumed.directory)) == uninterrupted
    np.testing.assert_array_equal(load_model(config.run_dir).predict_proba(["love it", "awful"]), reference)


def test_a_checkpoint_made_on_data_prepared_before_is_not_resumed(tiny, monkeypatch):
    config = tiny()
    _crash_in_epoch_three(config, monkeypatch)
    state = checkpoint_state(partial_dir(config.run_dir))
    saved = json.loads(state.read_text())
    assert (
        saved["prepared_fingerprint"] == json.loads((config.prepared_dir / "manifest.json").read_text())["fingerprint"]
    )
    state.write_text(json.dumps({**saved, "prepared_fingerprint": "an older preparation"}))
    with pytest.raises(SentimentError, match="made on data prepared before the current preparation"):
        train(config, resume=True, log=quiet)


def test_pretrained_vectors_from_a_text_file(tiny, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "vectors.vec.gz"
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        stream.write("4 16\n")
        for word in ["love", "dress", "fabric", "notaword"]:
            stream.write(word + " " + " ".join(f"{x:.4f}" for x in rng.normal(size=16)) + "\n")
    run = train(tiny(f"model.vectors={path}", "model.freeze_embeddings=true"), log=quiet)
    vectors = run.info["vectors"]
    assert vectors["found"] == 3
    assert 0 < vectors["coverage"] < 1
    assert run.info["trainable_parameters"] < run.info["parameters"]


def test_vectors_fall_back_to_the_lowercase_form(tmp_path):
    from sentiment.data.vocab import Vocab
    from sentiment.model.embeddings import align_vectors

    (tmp_path / "v.txt").write_text("dress 1 2\nnice 3 4\n")
    aligned = align_vectors(str(tmp_path / "v.txt"), Vocab.build([["Dress", "nice", "zzz"]]), tmp_path, seed=0)
    vocab_rows = {
        word: aligned.matrix[i].tolist() for i, word in enumerate(Vocab.build([["Dress", "nice", "zzz"]]).tokens)
    }
    assert vocab_rows["Dress"] == [1, 2] and vocab_rows["nice"] == [3, 4] and vocab_rows["<pad>"] == [0, 0]
    assert (aligned.found, aligned.found_lowercase, aligned.vocab_words) == (2, 1, 3)


# --- errors: one line, exit code 2 ----------------------------------------------------------


def cli_train(config_args):
    return CliRunner().invoke(cli, ["train", "--config", TINY_CONFIG, *config_args])


def as_args(reviews_csv, tmp_path, *overrides):
    sets = [
        "name=tiny",
        f"data.source={reviews_csv}",
        f"paths.data={tmp_path / 'data'}",
        f"paths.runs={tmp_path / 'runs'}",
        "vocab.min_freq=1",
        *TINY,
        *overrides,
    ]
    return [arg for value in sets for arg in ("--set", value)]


def test_training_before_preparing(reviews_csv, tmp_path):
    one_line_error(cli_train(as_args(reviews_csv, tmp_path)), "no prepared data .* run `sentiment prepare`")


def test_config_changed_since_prepare(reviews_csv, tmp_path, tiny):
    tiny()
    one_line_error(cli_train(as_args(reviews_csv, tmp_path, "vocab.min_freq=3")), "made with a different config")


def test_unknown_cell_type(reviews_csv, tmp_path):
    one_line_error(cli_train(as_args(reviews_csv, tmp_path, "model.cell=transformer")), "model.cell")


def test_unreadable_vectors_file(reviews_csv, tmp_path, tiny):
    tiny()
    (tmp_path / "bad.txt").write_bytes(b"word \xff\xfe 1.0\n")
    one_line_error(
        cli_train(as_args(reviews_csv, tmp_path, f"model.vectors={tmp_path / 'bad.txt'}")), "cannot read vectors file"
    )
    one_line_error(
        cli_train(as_args(reviews_csv, tmp_path, f"model.vectors={tmp_path / 'none.txt'}")), "vectors file not found"
    )


def test_out_of_memory_batch_size(reviews_csv, tmp_path, tiny, monkeypatch):
    tiny()

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(RecurrentClassifier, "forward", out_of_memory)
    one_line_error(cli_train(as_args(reviews_csv, tmp_path, "training.batch_size=4096")), "does not fit in .* memory")
    assert not (tmp_path / "runs" / "tiny").exists()


def test_vector_words_extend_the_vocabulary_after_the_prepared_one(tiny, tmp_path):
    # A vectors file whose first (most frequent) words include ones the reviews never use.
    vectors = tmp_path / "vectors.txt"
    words = ["superb", "dreadful", "dress", "love", "zipper", "marvellous"]
    vectors.write_text(
        "".join(f"{w} {' '.join(str((i + j) % 7 / 7) for j in range(16))}\n" for i, w in enumerate(words)),
        encoding="utf-8",
    )
    config = tiny(f"model.vectors={vectors}", "model.vector_words=4")
    run = train(config, log=quiet)
    from sentiment.data.prepare import load_prepared

    prepared = load_prepared(config.prepared_dir).vocab
    assert run.vocab.tokens[: len(prepared)] == prepared.tokens  # every prepared id keeps its word
    assert run.vocab.tokens[len(prepared) :] == ["superb", "dreadful"]  # of the first 4, the unseen ones
    model = load_model(run.directory)
    assert model.encode(["superb"]) == [len(prepared)]
    assert run.build_model().embedding.weight.shape[0] == len(run.vocab)


def test_weight_averaging_keeps_the_validated_average_and_resumes_exactly(tiny, monkeypatch):
    import datasets

    config = tiny("model.dropout=0.2", "training.ema_decay=0.9")
    uninterrupted = without_timing(metrics_lines(train(config, log=quiet).directory))
    # What the run keeps is the average that validation scored at the selected epoch: temperature
    # scaling, fitted on the kept weights' validation probabilities, starts from that epoch's loss.
    run = load_run(config.run_dir)
    best = [line for line in uninterrupted if line["best"]][-1]
    assert run.info["calibration"]["validation"]["nll_before"] == pytest.approx(best["val_loss"], abs=1e-5)
    validation = datasets.load_from_disk(str(config.prepared_dir / "validation"))
    probabilities = predict_ids(run.build_model(), validation["ids"])
    assert np.mean(probabilities.argmax(1) == np.array(validation["label"])) == pytest.approx(best["val_accuracy"])
    plain = without_timing(metrics_lines(train(tiny("model.dropout=0.2"), log=quiet).directory))
    # The same steps, another network scored: the average's validation differs from the weights'.
    assert [line["val_loss"] for line in uninterrupted] != [line["val_loss"] for line in plain]

    original = _crash_in_epoch_three(config, monkeypatch)
    monkeypatch.setattr(training_module.Trainer, "_step", original)
    resumed = train(config, resume=True, log=quiet)
    assert without_timing(metrics_lines(resumed.directory)) == uninterrupted


def test_label_smoothing_keeps_the_training_reviews_from_certainty(tiny):
    import datasets

    confidence = {}
    for smoothing in (0.0, 0.4):
        config = tiny(
            f"training.label_smoothing={smoothing}",
            "training.temperature_scaling=false",
            "training.max_epochs=15",
            "training.patience=15",
            "training.select_metric=loss",
        )
        run = train(config, log=quiet)
        reviews = datasets.load_from_disk(str(config.prepared_dir / "train"))
        confidence[smoothing] = predict_ids(run.build_model(), reviews["ids"]).max(axis=1)
    # Fitted to certainty without it (0.9999 here); with e = 0.4 the loss is lowest at 1 - e / 2
    # = 0.8 for every review (0.84 on average here).
    assert confidence[0.0].mean() > 0.99
    assert 0.7 < confidence[0.4].mean() < 0.9
