"""`model.init_from`: starting a model from another finished run (transfer between datasets)."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from sentiment.cli import cli
from sentiment.data.prepare import load_prepared, prepare
from sentiment.errors import SentimentError
from sentiment.training.loop import Trainer
from sentiment.training.stage import train

from conftest import TINY_CONFIG, experiment_sets, quiet, review_rows, tiny_model, write_csv

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out

TINY = tiny_model(2)


@pytest.fixture
def source_run(prepared_config):
    """A finished tiny run to transfer from."""
    return train(prepared_config(*TINY, "name=source"), log=quiet)


def start_of(config):
    """The model a run with `config` starts from, before any training step."""
    return Trainer(config, load_prepared(config.prepared_dir), config.run_dir, torch.device("cpu"), quiet).model


def test_the_new_model_starts_from_the_source_weights_for_shared_words(source_run, tmp_path, make_config):
    # Other reviews: a vocabulary that shares some words with the source's and lacks others.
    rows = [dict(row, text=row["text"].replace("dress", "gown")) for row in review_rows(seed=3)]
    config = make_config(
        write_csv(tmp_path / "other.csv", rows),
        *TINY,
        "name=target",
        f"model.init_from={source_run.directory}",
        "paths.prepared=other",
    )
    prepare(config, log=quiet)
    model, source = start_of(config), source_run.build_model()
    for name, tensor in source.state_dict().items():
        if name != "embedding.weight":
            torch.testing.assert_close(model.state_dict()[name], tensor, rtol=0, atol=0)
    vocab, source_vocab = load_prepared(config.prepared_dir).vocab, source_run.vocab
    for word in ("fabric", "zipper", "<unk>"):
        torch.testing.assert_close(
            model.embedding.weight[vocab.index[word]], source.embedding.weight[source_vocab.index[word]], rtol=0, atol=0
        )
    assert "gown" not in source_vocab.index and "gown" in vocab.index

    run = train(config, log=quiet)
    transfer = run.info["transfer"]
    assert transfer["run"] == str(source_run.directory) and transfer["experiment"] == "source"
    assert 0 < transfer["shared_words"] < transfer["vocab_words"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.hidden_size=8", "has model.hidden_size = 16 and this config 8; they must match"),
        ("model.cell=gru", "has model.cell = 'lstm' and this config 'gru'; they must match"),
        ("data.label_scheme=ternary", "predicts negative, positive and this data negative, neutral, positive"),
    ],
)
def test_a_source_that_does_not_fit_is_one_line_and_exit_2(source_run, tmp_path, override, message):
    more = write_csv(tmp_path / "more.csv", review_rows(copies=12))  # enough 3-star reviews to split
    sets = [*experiment_sets(tmp_path, more), *TINY, "name=target", f"model.init_from={source_run.directory}", override]
    args = ["--config", TINY_CONFIG, *[part for s in sets for part in ("--set", s)]]
    runner = CliRunner()
    assert runner.invoke(cli, ["prepare", *args]).exit_code == 0
    result = runner.invoke(cli, ["train", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_from_an_ensemble_the_first_member_is_copied(prepared_config):
    ensemble = train(prepared_config(*TINY, "name=pair", "training.ensemble=2"), log=quiet)
    model = start_of(prepared_config(*TINY, "name=target", f"model.init_from={ensemble.directory}"))
    first = ensemble.build_model().members[0]
    for name, tensor in first.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, rtol=0, atol=0)


def test_a_missing_source_is_refused(prepared_config, tmp_path):
    with pytest.raises(SentimentError, match="no trained run at"):
        start_of(prepared_config(*TINY, "name=target", f"model.init_from={tmp_path / 'nowhere'}"))
