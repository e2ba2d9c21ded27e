"""`torchrun --nproc_per_node=2` with gloo on the CPU trains the same model as one process.

Each global batch is split between the processes, per-process losses are divided by the
whole batch's size and DDP averages the gradients, so a 2-process step is mathematically the
single-process step. Only floating-point summation order differs (all-reduce vs one sum),
hence the tolerance: validation loss within 1e-4 per epoch, and the same predictions.
"""

import json
import os
import subprocess
import sys

import pytest

from sentiment.data.prepare import prepare
from sentiment.training.stage import train

from conftest import TINY, TINY_CONFIG, metrics_lines, quiet

TOLERANCE = 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("lever", [[], ["training.adversarial=0.5"]], ids=["plain", "adversarial"])
def test_torchrun_two_processes_match_one_process(lever, reviews_csv, make_config, tmp_path):
    # Adversarial training perturbs each process's rows by their own gradient, which the
    # per-example normalisation makes independent of how the batch is shared out.
    overrides = [*TINY, "training.max_epochs=3", "training.patience=3", "training.batch_size=9", *lever]
    single = make_config(reviews_csv, *overrides)
    prepare(single, log=quiet)
    single_run = train(single, log=quiet)

    sets = [
        "name=tiny",
        f"data.source={reviews_csv}",
        f"paths.data={tmp_path / 'data'}",
        f"paths.runs={tmp_path / 'ddp-runs'}",
        "vocab.min_freq=1",
        *overrides,
    ]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "sentiment",
        "train",
        "--config",
        TINY_CONFIG,
    ]
    for value in sets:
        command += ["--set", value]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]

    runs = sorted(p.name for p in (tmp_path / "ddp-runs").iterdir())
    assert runs == ["tiny"], runs  # exactly one run directory, written by rank 0 only
    assert result.stderr.count("best epoch") == 1  # and only rank 0 logged

    ddp_lines, single_lines = metrics_lines(tmp_path / "ddp-runs" / "tiny"), metrics_lines(single_run.directory)
    assert len(ddp_lines) == len(single_lines) == 3
    for ddp, one in zip(ddp_lines, single_lines):
        assert abs(ddp["val_loss"] - one["val_loss"]) < TOLERANCE
        assert abs(ddp["train_loss"] - one["train_loss"]) < TOLERANCE
        assert ddp["val_accuracy"] == one["val_accuracy"] and ddp["val_macro_f1"] == one["val_macro_f1"]
    info = json.loads((tmp_path / "ddp-runs" / "tiny" / "run.json").read_text())
    assert info["best_epoch"] == single_run.info["best_epoch"]
