"""Seed ensembles (`training.ensemble`): the averaging module, training, resume, and every stage
that reads a run (scoring, evaluation, explanations) working on one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sentiment.cli import cli
from sentiment.config import load_config
from sentiment.data.prepare import load_prepared, token_ids
from sentiment.errors import SentimentError
from sentiment.evaluation.evaluate import evaluate
from sentiment.evaluation.explain import explain_text, load_explainable_model
from sentiment.metrics import validation_scores
from sentiment.model.batching import predict_ids
from sentiment.model.recurrent import EnsembleClassifier, ModelSpec, RecurrentClassifier, recurrent_members
from sentiment.serving.inference import load_model
from sentiment.training import loop as training_module
from sentiment.training.run import partial_dir
from sentiment.training.stage import train

from conftest import TINY_CONFIG, experiment_sets, metrics_lines, quiet, tiny_model, without_timing

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out

TINY = [*tiny_model(3), "model.dropout=0.2"]  # dropout: the RNG state is part of what resume restores
TEXTS = ["love this dress", "the zipper broke and it runs small", "not perfect, but pretty good"]


@pytest.fixture
def tiny(prepared_config):
    return lambda *overrides: prepared_config(*TINY, *overrides)


def test_the_ensemble_predicts_the_mean_of_its_members_probabilities():
    torch.manual_seed(0)
    members = [RecurrentClassifier(ModelSpec(30, 3, embedding_dim=8, hidden_size=8)) for _ in range(3)]
    ensemble = EnsembleClassifier(members).eval()
    ids = torch.randint(1, 30, (4, 7))
    lengths = torch.tensor([7, 5, 2, 1])
    with torch.no_grad():
        expected = torch.stack([torch.softmax(m.eval()(ids, lengths), -1) for m in members]).mean(0)
        np.testing.assert_allclose(torch.softmax(ensemble(ids, lengths), -1).numpy(), expected.numpy(), atol=1e-6)
    assert ensemble.num_parameters() == 3 * members[0].num_parameters()
    assert recurrent_members(ensemble) == members and recurrent_members(members[0]) == [members[0]]
    with pytest.raises(SentimentError, match="at least two members"):
        EnsembleClassifier(members[:1])


def test_an_ensemble_run_averages_members_trained_like_single_runs_from_consecutive_seeds(tiny):
    single = {seed: train(tiny(f"name=seed{seed}", f"training.seed={seed}"), log=quiet) for seed in (13, 14)}
    messages = []
    run = train(tiny("name=pair", "training.ensemble=2"), log=messages.append)

    members = run.info["ensemble"]["members"]
    assert [m["seed"] for m in members] == [13, 14] and run.info["best_epoch"] is None
    # Each member is exactly the single run with its seed: same epochs, same selected weights.
    for member, seed in zip(members, (13, 14)):
        assert member["best_epoch"] == single[seed].info["best_epoch"]
        assert without_timing([member["best_validation"]]) == without_timing([single[seed].info["best_validation"]])
    lines = metrics_lines(run.directory)
    assert [line["member"] for line in lines] == [1] * members[0]["epochs_run"] + [2] * members[1]["epochs_run"]
    assert without_timing(
        [{k: v for k, v in line.items() if k != "member"} for line in lines if line["member"] == 2]
    ) == without_timing(metrics_lines(single[14].directory))
    assert any(m.startswith("[member 2/2, seed 14] epoch") for m in messages)
    assert any(m.startswith("ensemble of 2 (best epochs") for m in messages)

    # One weights file; the members' copies are gone, their checkpoints stay for --resume.
    assert not list((run.directory / "members").rglob("model.safetensors"))
    assert (run.directory / "members" / "2" / "checkpoint" / "state.json").is_file()
    network = run.build_model()
    assert isinstance(network, EnsembleClassifier) and run.info["parameters"] == network.num_parameters()

    def unscaled(directory):  # the averaging is of the members' own probabilities, before temperature scaling
        model = load_model(directory)
        model.network.temperature = 1.0
        return model.predict_proba(TEXTS)

    expected = np.mean([unscaled(single[seed].directory) for seed in (13, 14)], axis=0)
    np.testing.assert_allclose(unscaled(run.directory), expected, atol=1e-6)
    assert run.info["calibration"]["temperature"] == network.temperature
    network.temperature = 1.0

    # The recorded validation scores are the ensemble's own, recomputed here from the saved model.
    validation = load_prepared(run.info["prepared"]["directory"]).split("validation")
    scores = validation_scores(predict_ids(network, token_ids(validation)), np.asarray(validation["label"]))
    assert run.info["best_validation"] == {f"val_{k}": round(v, 5) for k, v in scores.items()}
    assert (run.directory / "learning_curves.png").stat().st_size > 0


def test_training_seed_changes_the_start_but_not_the_split(tiny):
    default, other = train(tiny(), log=quiet), train(tiny("name=other", "training.seed=99"), log=quiet)
    assert default.info["prepared"] == other.info["prepared"] | {"directory": default.info["prepared"]["directory"]}
    assert other.info["seed"] == 99 and default.info["seed"] == 13
    assert not np.array_equal(
        load_model(default.directory).predict_proba(TEXTS), load_model(other.directory).predict_proba(TEXTS)
    )


def test_an_ensemble_interrupted_in_its_second_member_resumes_to_the_same_result(tiny, monkeypatch):
    config = tiny("training.ensemble=2")
    uninterrupted = without_timing(metrics_lines(train(config, log=quiet).directory))
    reference = load_model(config.run_dir).predict_proba(TEXTS)

    original = training_module.Trainer._step

    def crash_in_member_two(self, batch):
        if self.seed == 14 and self.state.epoch == 1:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(training_module.Trainer, "_step", crash_in_member_two)
    with pytest.raises(KeyboardInterrupt):
        train(config, log=quiet)
    work = partial_dir(config.run_dir)
    assert (work / "members" / "1" / "model.safetensors").is_file()
    assert len(metrics_lines(work / "members" / "2")) == 1
    monkeypatch.setattr(training_module.Trainer, "_step", original)
    messages = []
    resumed = train(config, resume=True, log=messages.append)
    assert any(m.startswith("[member 2/2, seed 14] resuming after epoch 1") for m in messages)
    assert without_timing(metrics_lines(resumed.directory)) == uninterrupted
    np.testing.assert_array_equal(load_model(config.run_dir).predict_proba(TEXTS), reference)


def test_evaluate_score_and_explain_read_an_ensemble_run(tmp_path, reviews_csv):
    sets = [*experiment_sets(tmp_path, reviews_csv), *TINY, "training.ensemble=2"]
    args = ["--config", TINY_CONFIG, *[part for s in sets for part in ("--set", s)]]
    runner = CliRunner()
    for stage in ("prepare", "train"):
        result = runner.invoke(cli, [stage, *args])
        assert result.exit_code == 0, result.output
    assert "for the ensemble of 2 (seeds 13, 14)" in result.output

    config = load_config(TINY_CONFIG, sets)
    metrics = evaluate(config, n_resamples=50, log=quiet)
    assert [m.seed for m in metrics.run.ensemble.members] == [13, 14]
    report = (config.report_dir / "report.md").read_text()
    assert "2 models averaged, each selected on validation macro\\_f1" in report
    assert "member 2: seed 14" in report

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    scored = tmp_path / "scored.csv"
    result = runner.invoke(cli, ["score", str(texts), "--model", str(config.run_dir), "--output", str(scored)])
    assert result.exit_code == 0, result.output
    assert len(scored.read_text().splitlines()) == len(TEXTS) + 1

    model = load_explainable_model(config.run_dir)
    explanation = explain_text(model, TEXTS[2])
    np.testing.assert_allclose(explanation.probs, model.predict_proba([TEXTS[2]])[0], atol=1e-6)
    first_member = recurrent_members(model.network)[0]
    assert explanation.trace.outputs.shape[-1] == first_member.hidden_size * 2
