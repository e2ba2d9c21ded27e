"""A soup of branches (`training.soup = K`): epoch 1 trained once, epoch 2 trained K times from
the same point, and the K results' weights averaged (a uniform model soup, Wortsman et al. 2022,
"Model soups: averaging weights of multiple fine-tuned models improves accuracy without
increasing inference time").

Default runs peak at epoch 1, 2 or 3 and the seeds spread over about two points of validation
macro-F1, so which batches epoch 2 happened to see decides much of a run's score.
Averaging seeds' predictions removes that lottery but costs K times the scoring; branches that
share epoch 1 stay in one basin of the loss (Frankle et al. 2020 find networks forked after early
training linearly connected), so their weights can be averaged into one network that scores as
fast as a single model. K branches of one epoch cost K epochs, about what `patience = 2` spends
on the two epochs after a default run's peak.

Branch b starts from epoch 1's weights and optimizer moments, draws its batch order from
(seed + 1000 b, epoch 2) (branch 0 sees the batches an ordinary epoch 2 would) and its dropout
from `torch.manual_seed(seed + 1000 b)`, so a resumed run trains the same branches again. The
soup is scored on validation as epoch 2, model selection keeps the better of epoch 1 and the
soup, and the run ends there.

Measured on the clothing default (docs/RESULTS.md): the soup of three beats the mean of its own
branches on every seed of 13-17 (+0.004 to +0.013 validation macro-F1), but not the default's pick
of the best of four ordinary epochs (0.8942 against 0.8974), which can still take epoch 3; so it is
opt-in. Forked later, at epoch 3, the branches no longer average well (seed 13: 0.8721 against
branches of 0.8550 and 0.8963).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch

from sentiment.training.loop import EpochResult

if TYPE_CHECKING:
    from sentiment.training.loop import Trainer

SOUP_EPOCH = 2
"""The epoch trained in branches; the run ends after it."""
BRANCH_SEED_STRIDE = 1000
"""Branch b's batch order and dropout come from seed + 1000 b."""


def average_weights(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of each floating-point tensor over `states` (accumulated in float64); other tensors
    (the vocabulary's integer token kinds, equal in every branch) as the first state has them."""
    first = states[0]
    return {
        name: torch.stack([state[name].double() for state in states]).mean(dim=0).to(tensor.dtype)
        if tensor.is_floating_point()
        else tensor
        for name, tensor in first.items()
    }


def train_soup(trainer: Trainer, branches: int) -> tuple[EpochResult, list[dict[str, Any]]]:
    """Train epoch 2 in `branches` branches from the trainer's current point, leave their averaged
    weights in the trainer's network, and return the soup's epoch result and each branch's record."""
    modules = [trainer.model] + ([trainer.position_losses] if trainer.position_losses is not None else [])
    start = [copy.deepcopy(module.state_dict()) for module in modules]
    start_optimizer = copy.deepcopy(trainer.optimizer.state_dict())
    trained: list[list[dict[str, torch.Tensor]]] = []
    records: list[dict[str, Any]] = []
    results: list[EpochResult] = []
    for branch in range(branches):
        for module, state in zip(modules, start):
            module.load_state_dict(state)
        trainer.optimizer.load_state_dict(start_optimizer)
        branch_seed = trainer.seed + BRANCH_SEED_STRIDE * branch
        torch.manual_seed(branch_seed + trainer.group.rank)
        result = trainer.run_epoch(SOUP_EPOCH, order_seed=branch_seed)
        results.append(result)
        trained.append([copy.deepcopy(module.state_dict()) for module in modules])
        records.append(
            {
                "branch": branch,
                "seed": branch_seed,
                "train_loss": round(result.train_loss, 5),
                **{f"val_{name}": round(value, 5) for name, value in result.validation.items()},
                "seconds": round(result.seconds, 2),
            }
        )
        v = result.validation
        trainer.log(
            f"soup branch {branch + 1}/{branches} (seed {branch_seed}): loss {result.train_loss:.4f}  "
            f"val loss {v['loss']:.4f}  acc {v['accuracy']:.4f}  macro-F1 {v['macro_f1']:.4f}  {result.seconds:5.1f} s"
        )
    for index, module in enumerate(modules):
        module.load_state_dict(average_weights([states[index] for states in trained]))
    seconds = sum(result.seconds for result in results)
    examples = sum(result.examples for result in results)
    soup = EpochResult(
        epoch=SOUP_EPOCH,
        train_loss=sum(result.train_loss for result in results) / branches,
        validation=trainer.validate(),
        seconds=seconds,
        examples_per_second=examples / max(seconds, 1e-9),
        examples=examples,
    )
    return soup, records
