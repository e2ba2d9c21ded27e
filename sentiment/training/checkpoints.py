"""Checkpoints: after every epoch, everything `train --resume` needs to continue to exactly the
result an uninterrupted run reaches, in the run's (or ensemble member's) working directory:

```
checkpoint/last.safetensors   weights (and their running average), optimizer moments, every process's RNG state
checkpoint/state.json         the loop's state, optimizer settings, config fingerprint
model.safetensors             the best epoch's weights so far
```
Tensors as safetensors and the rest as JSON: no pickle anywhere, so loading a checkpoint
cannot execute code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from sentiment.artifacts import read_json, write_bytes_atomic, write_json
from sentiment.errors import SentimentError

if TYPE_CHECKING:
    from sentiment.training.loop import Trainer

CHECKPOINT = "checkpoint"
BEST_WEIGHTS = "model.safetensors"


def checkpoint_state(work_dir: Path) -> Path:
    """The JSON half of the checkpoint in a run's (or ensemble member's) working directory; a
    checkpoint exists when this file does (it is written after the tensors)."""
    return work_dir / CHECKPOINT / "state.json"


def _cpu_state(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """The module's state dict as contiguous CPU tensors (what safetensors saves), names prefixed."""
    return {f"{prefix}{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def _under(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors saved under `prefix` (what `_cpu_state(module, prefix)` wrote), without it."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def save_weights(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save

    write_bytes_atomic(path, save(_cpu_state(model)))


def save_checkpoint(trainer: Trainer) -> None:
    """Weights, optimizer moments and every process's RNG state as safetensors; the rest as JSON.

    Every process calls this (the RNG states are gathered); only rank 0 writes.
    """
    from safetensors.torch import save

    group, device = trainer.group, trainer.device
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    # Every process's generator state, so that a resumed run continues each one exactly.
    rng_all = {name: group.gather_rows(state.numpy()[None].astype(np.float32), device) for name, state in rng.items()}
    if not group.is_main:
        return
    tensors = _cpu_state(trainer.model, "model.")
    if trainer.position_losses is not None:
        tensors.update(_cpu_state(trainer.position_losses, "position_losses."))
    if trainer.averaged is not None:
        tensors.update(_cpu_state(trainer.averaged, "averaged."))
    optimizer = trainer.optimizer.state_dict()
    for index, slots in optimizer["state"].items():
        for name, value in slots.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    for name, states in rng_all.items():
        for rank, state in enumerate(states):
            tensors[f"rng.{name}.{rank}"] = torch.from_numpy(state.astype(np.uint8))
    directory = trainer.work_dir / CHECKPOINT
    directory.mkdir(exist_ok=True)
    write_bytes_atomic(directory / "last.safetensors", save(tensors))
    write_json(
        checkpoint_state(trainer.work_dir),
        {
            "state": trainer.state.__dict__,
            "optimizer_param_groups": optimizer["param_groups"],
            "config_fingerprint": trainer.config.fingerprint(),
            "prepared_fingerprint": trainer.prepared_fingerprint,
            "vectors": trainer.setup.vectors_summary,
            "world_size": group.world_size,
        },
    )


def restore_checkpoint(trainer: Trainer) -> None:
    """Put the trainer back where its last checkpoint left it: weights, optimizer, RNG, loop state."""
    from safetensors.torch import load_file

    from sentiment.training.loop import TrainingState

    work_dir, group, device = trainer.work_dir, trainer.group, trainer.device
    saved = read_json(checkpoint_state(work_dir), what="checkpoint")
    if saved["config_fingerprint"] != trainer.config.fingerprint():
        raise SentimentError(
            f"the checkpoint in {work_dir} was made with a different config; train without --resume to start over"
        )
    if saved.get("prepared_fingerprint", trainer.prepared_fingerprint) != trainer.prepared_fingerprint:
        raise SentimentError(
            f"the checkpoint in {work_dir} was made on data prepared before the current preparation; "
            "train without --resume to start over"
        )
    if saved.get("world_size", 1) != group.world_size:
        raise SentimentError(
            f"the checkpoint in {work_dir} was written by {saved.get('world_size', 1)} "
            f"processes; resume it with the same number (now {group.world_size})"
        )
    tensors = load_file(str(work_dir / CHECKPOINT / "last.safetensors"))
    trainer.model.load_state_dict(_under(tensors, "model."))
    if trainer.position_losses is not None:
        trainer.position_losses.load_state_dict(_under(tensors, "position_losses."))
    if trainer.averaged is not None:
        trainer.averaged.load_state_dict(_under(tensors, "averaged."))
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value.to(device) if name != "step" else value
    trainer.optimizer.load_state_dict({"state": slots, "param_groups": saved["optimizer_param_groups"]})
    rank = group.rank
    torch.set_rng_state(tensors[f"rng.torch.{rank}"])
    if f"rng.cuda.{rank}" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors[f"rng.cuda.{rank}"], device)
    trainer.state = TrainingState(**saved["state"])
    trainer.log(f"resuming after epoch {trainer.state.epoch} (best so far: epoch {trainer.state.best_epoch})")
