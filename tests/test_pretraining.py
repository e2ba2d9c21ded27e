"""Language-model pretraining of the encoder: it learns to predict tokens, and `train` uses it."""

import json

import numpy as np
import pytest
import torch

from sentiment.config import PretrainConfig
from sentiment.model.recurrent import ModelSpec, RecurrentClassifier
from sentiment.training import loop as training_module
from sentiment.training.pretraining import LanguageModelHeads, head_cutoffs, language_model_loss, pretrain_encoder
from sentiment.training.run import partial_dir
from sentiment.training.stage import train

from conftest import metrics_lines, quiet, without_timing

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out


def test_cutoffs_fit_any_vocabulary_size():
    assert head_cutoffs(30000) == [2000, 8000]
    assert head_cutoffs(5000) == [2000]
    assert head_cutoffs(40) == [20]
    assert head_cutoffs(2) == [1]


def test_the_loss_counts_each_real_next_token_once_per_direction_and_ignores_padding():
    torch.manual_seed(0)
    model = RecurrentClassifier(ModelSpec(6, 2, embedding_dim=8, hidden_size=16, dropout=0.0))
    heads = LanguageModelHeads(16, 6, 2, dropout=0.0)
    ids = torch.tensor([[4, 2, 3, 5, 2, 3, 0], [5, 2, 3, 4, 2, 3, 4]])
    lengths = torch.tensor([6, 7])
    loss, count = language_model_loss(model, heads, ids, lengths)
    assert count == 5 + 6 and loss.ndim == 0 and float(loss.detach()) > 0
    # Padding never becomes a target: making the padded tail longer changes nothing.
    padded = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    model.eval(), heads.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            language_model_loss(model, heads, padded, lengths)[0], language_model_loss(model, heads, ids, lengths)[0]
        )


def test_pretraining_lowers_the_language_model_loss_on_held_out_text():
    rng = np.random.default_rng(0)
    # Reviews from a small grammar: predictable next tokens, so the loss must fall well below uniform.
    phrases = [[4, 5, 6], [7, 8], [9, 10, 11, 12], [13, 14]]

    def review():
        return np.array([t for i in rng.integers(0, len(phrases), 5) for t in phrases[i]], dtype=np.int32)

    train_ids, val_ids = [review() for _ in range(200)], [review() for _ in range(40)]
    torch.manual_seed(0)
    model = RecurrentClassifier(ModelSpec(15, 2, embedding_dim=8, hidden_size=16, dropout=0.0))
    settings = PretrainConfig(epochs=3, lr=0.01, batch_size=16, dropout=0.0)
    messages = []
    summary = pretrain_encoder(
        model,
        train_ids,
        val_ids,
        settings,
        seed=0,
        clip_norm=1.0,
        device=torch.device("cpu"),
        log=messages.append,
        show_progress=False,
    )
    losses = [line["val_loss"] for line in summary.epochs]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert losses[-1] < 0.6 * np.log(15)  # well below guessing among 15 ids
    assert summary.tokens_per_epoch == sum(len(ids) for ids in train_ids)
    assert len(messages) == 3 and "val perplexity" in messages[0]


def test_train_pretrains_records_it_and_resumes_from_the_pretrained_weights(tiny, monkeypatch):
    config = tiny("pretrain.epochs=2", "pretrain.batch_size=8", "model.dropout=0.2")
    messages = []
    run = train(config, log=messages.append)
    assert sum("pretrain " in m for m in messages) == 2
    info = json.loads((run.directory / "run.json").read_text())
    assert [line["epoch"] for line in info["pretraining"]["epochs"]] == [1, 2]
    assert not (run.directory / "pretrained.safetensors").exists()  # scratch for --resume only
    uninterrupted = without_timing(metrics_lines(run.directory))

    # Interrupt in the second classifier epoch, then resume: pretraining is not run again,
    # and the result is the uninterrupted one.
    original = training_module.Trainer._step

    def crash_in_epoch_two(self, batch):
        if self.state.epoch == 1:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(training_module.Trainer, "_step", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(config, log=quiet)
    assert (partial_dir(config.run_dir) / "pretrained.safetensors").is_file()
    monkeypatch.setattr(training_module.Trainer, "_step", original)
    messages = []
    resumed = train(config, resume=True, log=messages.append)
    assert any("pretrained encoder reloaded" in m for m in messages)
    assert not any(m.startswith("pretrain ") for m in messages)
    assert without_timing(metrics_lines(resumed.directory)) == uninterrupted


def test_pretraining_changes_the_starting_point(tiny):
    plain = without_timing(metrics_lines(train(tiny(), log=quiet).directory))
    pretrained = without_timing(metrics_lines(train(tiny("pretrain.epochs=1"), log=quiet).directory))
    assert plain != pretrained
