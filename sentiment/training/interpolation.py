"""Mixing a fine-tuned model with its start (`training.weight_interpolation`): the weight-space
ensemble of WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models").

A model started from another run (`model.init_from`) or from language-model pretraining learns
its labels by moving away from that start, and forgets part of what the start knew: the IMDB
sentence models read the out-of-domain sentence sets better than the clothing model fine-tuned
from them. The mixed weights

    theta(alpha) = (1 - alpha) * start + alpha * fine_tuned

keep part of the start. After the best epoch is chosen, each configured alpha is scored on the
validation split and the best by `training.select_metric` is kept (on a tie, the larger alpha:
the smaller step away from the model training chose). Integer buffers (the vocabulary's token
kinds) are the fine-tuned model's.

The fine-tuned weights wait as `fine_tuned.safetensors` in the working directory until the run
is written, so that a resumed run mixes from them again and reaches the same weights.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch

from sentiment.metrics import improves
from sentiment.training.checkpoints import BEST_WEIGHTS, save_weights

if TYPE_CHECKING:
    from sentiment.training.loop import Trainer

FINE_TUNED_WEIGHTS = "fine_tuned.safetensors"


def start_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's weights as they are now (its start), on the CPU."""
    return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}


def mixed_weights(
    start: dict[str, torch.Tensor], fine_tuned: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """(1 - alpha) * start + alpha * fine_tuned for every floating-point tensor; the others as fine-tuned."""
    return {
        name: torch.lerp(start[name].to(tensor.dtype), tensor, alpha) if tensor.is_floating_point() else tensor
        for name, tensor in fine_tuned.items()
    }


def interpolate_with_start(trainer: Trainer, start: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Choose alpha on validation, leave the mixed weights as the trainer's best weights, and
    return the record for run.json: the alpha kept and every candidate's validation scores."""
    from safetensors.torch import load_file

    t = trainer.config.training
    work_dir = trainer.work_dir
    fine_tuned_path = work_dir / FINE_TUNED_WEIGHTS
    if not fine_tuned_path.is_file():  # a resumed run mixed once already: its fine-tuned weights wait here
        os.replace(work_dir / BEST_WEIGHTS, fine_tuned_path)
    fine_tuned = load_file(str(fine_tuned_path))
    metric = t.select_metric
    candidates: list[dict[str, Any]] = []
    best: tuple[float, dict[str, float], dict[str, torch.Tensor]] | None = None
    for alpha in sorted(set(t.weight_interpolation), reverse=True):  # on a tie the first, larger alpha stays
        weights = mixed_weights(start, fine_tuned, alpha)
        trainer.model.load_state_dict(weights)
        scores = trainer.validate()
        candidates.append({"alpha": alpha, **{f"val_{name}": round(value, 5) for name, value in scores.items()}})
        if improves(scores[metric], None if best is None else best[1][metric], metric):
            best = (alpha, scores, weights)
    assert best is not None  # the config holds at least one alpha whenever this runs
    alpha, scores, weights = best
    trainer.model.load_state_dict(weights)
    save_weights(trainer.model, work_dir / BEST_WEIGHTS)
    trainer.log(
        "weights mixed with the start: "
        + ", ".join(f"alpha {c['alpha']:g} {c['val_' + metric]:.4f}" for c in candidates)
        + f"; kept alpha {alpha:g}"
    )
    return {
        "alpha": alpha,
        "validation": {name: round(value, 5) for name, value in scores.items()},
        "candidates": candidates,
    }
