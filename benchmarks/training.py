"""Training throughput of the full pipeline against the bare recurrent kernel, same batch shapes.

Pipeline: one `Trainer._step` per batch (collate, embedding, our bidirectional encoder,
masked pooling, loss, backward, clipping, AdamW). Kernel: `nn.LSTM`/`nn.GRU(bidirectional=True)`
forward + backward on random inputs of identical [batch, length, embedding] shapes.
Target: the pipeline reaches at least 80% of the kernel's examples/s.

The pipeline is timed with `training.adversarial` off, so that both sides run one forward and one
backward per batch. Where the config trains adversarially (the clothing default), the step it
really takes (a second forward and backward on perturbed word vectors) is timed against the plain
step as well, interleaved: `adversarial_step_cost`, the price of that lever (no target). Where it
drops recurrent weights (`model.weight_drop`), the plain step is timed against the same step
without the drop: `weight_drop_step_cost`.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import median_seconds, print_table, record
from sentiment.config import load_config
from sentiment.data.prepare import load_prepared, prepare
from sentiment.model.batching import bucket_batches
from sentiment.training.initialise import resolve_device, use_packed
from sentiment.training.loop import Trainer

REPEATS = 5


def _batches(trainer: Trainer, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    batches = bucket_batches([len(ids) for ids in trainer.train_ids], trainer.config.training.batch_size, rng)
    return batches[:count]


def _pipeline(trainer: Trainer, batches: list[np.ndarray]):
    trainer.model.train()

    def run():
        for batch in batches:
            trainer._step(batch)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()

    return run


def _kernel(trainer: Trainer, batches: list[np.ndarray], packed: bool):
    m = trainer.config.model
    kernel_class = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[m.cell]
    kernel = kernel_class(
        m.embedding_dim, m.hidden_size, num_layers=m.num_layers, batch_first=True, bidirectional=m.bidirectional
    ).to(trainer.device)
    lengths = [np.array([len(trainer.train_ids[i]) for i in batch]) for batch in batches]
    inputs = [
        torch.randn(len(batch), int(length.max()), m.embedding_dim, device=trainer.device)
        for batch, length in zip(batches, lengths)
    ]

    def run():
        for x, length in zip(inputs, lengths):
            if packed:
                x = torch.nn.utils.rnn.pack_padded_sequence(
                    x, torch.as_tensor(length), batch_first=True, enforce_sorted=False
                )
                output = torch.nn.utils.rnn.pad_packed_sequence(kernel(x)[0], batch_first=True)[0]
            else:
                output = kernel(x)[0]
            output.sum().backward()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()

    return run


def _interleaved_medians(first, second, repeats: int) -> tuple[float, float]:
    """Median seconds of each, timed alternately (ABAB...): a slow spell of a shared machine
    then slows both sides of the ratio, not just whichever happened to run during it."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for function, measured in zip((first, second), times):
            measured.append(median_seconds(function, repeats=1))
    return statistics.median(times[0]), statistics.median(times[1])


def _warm_trainer(config, prepared, directory: Path, device: torch.device, batches: list[np.ndarray]) -> Trainer:
    """A second trainer on the same data, its pipeline run once over a few batches (warm-up)."""
    trainer = Trainer(config, prepared, directory, device, log=lambda *_: None)
    _pipeline(trainer, batches[:5])()
    return trainer


def _step_cost(base: Trainer, variant: Trainer, batches: list[np.ndarray]) -> float:
    """How many times the base trainer's pipeline time the variant's takes, interleaved."""
    base_seconds, variant_seconds = _interleaved_medians(_pipeline(base, batches), _pipeline(variant, batches), REPEATS)
    return round(variant_seconds / base_seconds, 3)


def measure(config_path: str, device: str, batches_count: int, packed: str) -> dict:
    sets = [f"training.device={device}", f"training.packed={packed}"]
    config = load_config(config_path, sets)
    plain_config = load_config(config_path, [*sets, "training.adversarial=0"])
    prepare(config, log=lambda *_: None)
    prepared = load_prepared(config.prepared_dir)
    device_ = resolve_device(device)
    adversarial_cost = weight_drop_cost = None
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(plain_config, prepared, Path(scratch), device_, log=lambda *_: None)
        batches = _batches(trainer, batches_count)
        examples = sum(len(batch) for batch in batches)
        _pipeline(trainer, batches[:5])()  # warm-up: allocator, oneDNN/cuDNN primitives
        pipeline_seconds, kernel_seconds = _interleaved_medians(
            _pipeline(trainer, batches), _kernel(trainer, batches, use_packed(packed, device_)), REPEATS
        )
        pipeline, kernel = examples / pipeline_seconds, examples / kernel_seconds
        if config.training.adversarial > 0:  # the default's step against the plain step
            adversarial = _warm_trainer(config, prepared, Path(scratch) / "adversarial", device_, batches)
            adversarial_cost = _step_cost(trainer, adversarial, batches)
        if config.model.weight_drop > 0:  # the plain step against the same step without the drop
            undropped_config = load_config(config_path, [*sets, "training.adversarial=0", "model.weight_drop=0"])
            undropped = _warm_trainer(undropped_config, prepared, Path(scratch) / "undropped", device_, batches)
            weight_drop_cost = _step_cost(undropped, trainer, batches)
    return {
        "adversarial_step_cost": adversarial_cost,
        "weight_drop_step_cost": weight_drop_cost,
        "device": device_.type,
        "packed": use_packed(packed, device_),
        "threads": torch.get_num_threads(),
        "batches": len(batches),
        "examples": examples,
        "cell": config.model.cell,
        "pipeline_examples_per_second": round(pipeline, 1),
        "kernel_examples_per_second": round(kernel, 1),
        "ratio": round(pipeline / kernel, 3),
    }


def run(quick: bool = False) -> dict:
    batches = 30 if quick else 120
    results = {"cpu": measure("configs/clothing.toml", "cpu", batches, "no")}
    if torch.cuda.is_available():
        for packed in ("no", "yes"):
            results[f"cuda_{'packed' if packed == 'yes' else 'padded'}"] = measure(
                "configs/clothing.toml", "cuda", batches, packed
            )
    rows = []
    for name, figures in results.items():
        rows.append((f"{name}: pipeline", f"{figures['pipeline_examples_per_second']:,.0f} ex/s"))
        rows.append((f"{name}: bare {figures['cell']} fwd+bwd", f"{figures['kernel_examples_per_second']:,.0f} ex/s"))
        rows.append((f"{name}: ratio", f"{figures['ratio']:.2f}  (target >= 0.80)"))
        if figures["adversarial_step_cost"] is not None:
            rows.append((f"{name}: adversarial step / plain step", f"{figures['adversarial_step_cost']:.2f}x"))
        if figures["weight_drop_step_cost"] is not None:
            rows.append((f"{name}: step with weight drop / without", f"{figures['weight_drop_step_cost']:.2f}x"))
    print_table(f"training throughput (clothing, {batches} batches, median of {REPEATS}, interleaved)", rows)
    figures = {**results, "target_ratio": 0.8}
    record("training", figures)
    return figures


if __name__ == "__main__":
    run()
