"""`training.weight_interpolation`: the fine-tuned weights mixed with the start, alpha chosen on validation."""

from __future__ import annotations

import pytest
import torch

import sentiment.training.stage as stage
from sentiment.config import load_config
from sentiment.data.prepare import load_prepared
from sentiment.errors import SentimentError
from sentiment.evaluation.evaluate import evaluate
from sentiment.training.interpolation import FINE_TUNED_WEIGHTS, mixed_weights, start_weights
from sentiment.training.loop import Trainer
from sentiment.training.run import partial_dir
from sentiment.training.stage import train

from conftest import quiet, tiny_model

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out

TINY = tiny_model(3)
ALPHAS = "training.weight_interpolation=[0.25, 0.5, 1.0]"


@pytest.fixture
def source_run(prepared_config):
    return train(prepared_config(*TINY, "name=source", "training.seed=5"), log=quiet)


def _target(prepared_config, source_run, *more):
    return prepared_config(*TINY, "name=target", f"model.init_from={source_run.directory}", *more)


def test_the_kept_weights_are_the_start_and_the_fine_tuned_model_mixed_at_the_best_alpha(prepared_config, source_run):
    plain = train(_target(prepared_config, source_run), log=quiet)
    config = _target(prepared_config, source_run, ALPHAS, "name=mixed")
    start = start_weights(
        Trainer(config, load_prepared(config.prepared_dir), config.run_dir, torch.device("cpu"), quiet).model
    )
    mixed = train(config, log=quiet)

    record = mixed.info["weight_interpolation"]
    candidates = record["candidates"]
    assert [c["alpha"] for c in candidates] == [1.0, 0.5, 0.25]
    # The fine-tuned end scores what the plain run selected; the kept alpha is the best on validation.
    assert candidates[0]["val_macro_f1"] == pytest.approx(plain.info["best_validation"]["val_macro_f1"], abs=1e-5)
    best = max(c["val_macro_f1"] for c in candidates)
    assert record["alpha"] == next(c["alpha"] for c in candidates if c["val_macro_f1"] == best)
    assert mixed.info["best_validation"]["val_macro_f1"] == best
    assert mixed.info["best_epoch"] == plain.info["best_epoch"]

    expected = mixed_weights(start, plain.build_model().state_dict(), record["alpha"])
    for name, tensor in mixed.build_model().state_dict().items():
        torch.testing.assert_close(tensor, expected[name], rtol=1e-6, atol=1e-6)
    assert not (mixed.directory / FINE_TUNED_WEIGHTS).exists()

    metrics = evaluate(config, n_resamples=50, log=quiet)  # the report says which weights it read
    assert metrics.run.weight_interpolation.alpha == record["alpha"]
    report = (config.report_dir / "report.md").read_text()
    assert f"its weights mixed with the start at alpha {record['alpha']:g}" in report


def test_mixing_is_linear_in_alpha_and_keeps_integer_buffers():
    start = {"w": torch.zeros(3), "kinds": torch.tensor([0, 1, 2])}
    fine = {"w": torch.tensor([4.0, 8.0, -4.0]), "kinds": torch.tensor([2, 1, 0])}
    mixed = mixed_weights(start, fine, 0.25)
    torch.testing.assert_close(mixed["w"], torch.tensor([1.0, 2.0, -1.0]))
    assert mixed["kinds"].tolist() == [2, 1, 0]
    torch.testing.assert_close(mixed_weights(start, fine, 1.0)["w"], fine["w"])


def test_a_run_interrupted_after_mixing_resumes_to_the_same_weights(prepared_config, source_run, monkeypatch):
    only_half = "training.weight_interpolation=[0.5]"  # a mix applied twice would not be the same mix
    config = _target(prepared_config, source_run, only_half)
    whole = train(_target(prepared_config, source_run, only_half, "name=whole"), log=quiet)

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # stops after the mixed weights are written, before the run is
        patch.setattr(stage, "fit_baseline", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(config, log=quiet)
    assert (partial_dir(config.run_dir) / FINE_TUNED_WEIGHTS).is_file()
    resumed = train(config, resume=True, log=quiet)
    assert resumed.info["weight_interpolation"] == whole.info["weight_interpolation"]
    for name, tensor in resumed.build_model().state_dict().items():
        torch.testing.assert_close(tensor, whole.build_model().state_dict()[name], rtol=0, atol=0)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ([ALPHAS], "a random start is not worth keeping: set model.init_from or pretrain.epochs too"),
        (["model.init_from=runs/x", "training.weight_interpolation=[0.5, 1.5]"], "every alpha must be in (0, 1]"),
    ],
)
def test_settings_that_cannot_work_are_refused(overrides, message):
    with pytest.raises(SentimentError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_config(None, overrides)
