"""`training.soup`: epoch 2 trained in branches from epoch 1's point, their weights averaged."""

from __future__ import annotations

import copy

import pytest
import torch

import sentiment.training.stage as stage
from sentiment.config import load_config
from sentiment.data.prepare import load_prepared
from sentiment.errors import SentimentError
from sentiment.training.loop import Trainer
from sentiment.training.run import partial_dir
from sentiment.training.soup import BRANCH_SEED_STRIDE, average_weights
from sentiment.training.stage import train

from conftest import metrics_lines, quiet, tiny_model, without_timing

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out

# Dropout on, so that the branches differ by their dropout as well as by their batch order.
TINY = [*tiny_model(4), "model.dropout=0.2", "training.seed=7"]
SOUP = "training.soup=3"


def _soup_by_hand(config) -> tuple[list[dict], dict[str, float]]:
    """The recipe written out: epoch 1, then three branches of epoch 2 from its weights and
    optimizer moments, each seeded seed + 1000 b; their validation scores and the average's."""
    trainer = Trainer(config, load_prepared(config.prepared_dir), config.run_dir, torch.device("cpu"), quiet, seed=7)
    trainer.run_epoch(1)
    weights, moments = copy.deepcopy(trainer.model.state_dict()), copy.deepcopy(trainer.optimizer.state_dict())
    branches, scores = [], []
    for branch in range(3):
        trainer.model.load_state_dict(weights)
        trainer.optimizer.load_state_dict(moments)
        torch.manual_seed(7 + BRANCH_SEED_STRIDE * branch)
        scores.append(trainer.run_epoch(2, order_seed=7 + BRANCH_SEED_STRIDE * branch).validation)
        branches.append(copy.deepcopy(trainer.model.state_dict()))
    trainer.model.load_state_dict(average_weights(branches))
    return scores, trainer.validate()


def test_epoch_two_is_the_average_of_three_branches_and_the_last_epoch(prepared_config):
    config = prepared_config(*TINY, SOUP)
    run = train(config, log=quiet)
    branches, soup = _soup_by_hand(config)

    lines = metrics_lines(run.directory)
    assert [line["epoch"] for line in lines] == [1, 2]  # the run ends with the soup
    assert run.info["epochs_run"] == 2
    record = run.info["soup"]
    assert [branch["seed"] for branch in record] == [7, 1007, 2007]
    for recorded, expected in zip(record, branches):
        assert recorded["val_loss"] == pytest.approx(expected["loss"], abs=1e-5)
    # The branches went different ways, and epoch 2's scores are their average's, not any branch's.
    assert len({branch["val_loss"] for branch in record}) == 3
    assert lines[1]["val_loss"] == pytest.approx(soup["loss"], abs=1e-5)
    assert all(abs(lines[1]["val_loss"] - branch["val_loss"]) > 1e-6 for branch in record)
    assert lines[1]["examples"] == 3 * lines[0]["examples"]  # three branches of one epoch each
    assert run.info["best_epoch"] == (2 if lines[1]["best"] else 1)


def test_the_average_is_taken_over_floating_point_tensors_only():
    states = [
        {"w": torch.tensor([1.0, 2.0]), "kinds": torch.tensor([0, 1])},
        {"w": torch.tensor([3.0, 6.0]), "kinds": torch.tensor([0, 1])},
        {"w": torch.tensor([5.0, 1.0]), "kinds": torch.tensor([0, 1])},
    ]
    averaged = average_weights(states)
    torch.testing.assert_close(averaged["w"], torch.tensor([3.0, 3.0]))
    assert averaged["kinds"].dtype == torch.int64 and averaged["kinds"].tolist() == [0, 1]


def test_a_run_interrupted_after_the_soup_resumes_to_the_same_run(prepared_config, monkeypatch):
    whole = train(prepared_config(*TINY, SOUP, "name=whole"), log=quiet)
    config = prepared_config(*TINY, SOUP)

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # stops after the soup's checkpoint, before the run is written
        patch.setattr(stage, "fit_baseline", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(config, log=quiet)
    assert partial_dir(config.run_dir).is_dir()
    resumed = train(config, resume=True, log=quiet)
    untimed = [{k: v for k, v in branch.items() if k != "seconds"} for branch in resumed.info["soup"]]
    assert untimed == [{k: v for k, v in branch.items() if k != "seconds"} for branch in whole.info["soup"]]
    assert without_timing(metrics_lines(resumed.directory)) == without_timing(metrics_lines(whole.directory))
    for name, tensor in resumed.build_model().state_dict().items():
        torch.testing.assert_close(tensor, whole.build_model().state_dict()[name], rtol=0, atol=0)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ([SOUP, "training.max_epochs=1"], "training.soup trains epoch 2 in branches"),
        ([SOUP, "training.ema_decay=0.99"], "training.soup and training.ema_decay both average"),
    ],
)
def test_settings_that_cannot_work_are_refused(overrides, message):
    with pytest.raises(SentimentError, match=message):
        load_config(None, overrides)
