"""Corrupt runs, diverging training, full disks, signals and usage mistakes (issue 15): each ends
with one line on stderr and a documented exit code (2: fix the input; 1: the machine; 143:
SIGTERM), leaves nothing half-written, and never turns into confident-looking labels."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from sentiment import load_model
from sentiment.cli import cli
from sentiment.config import load_config
from sentiment.errors import SentimentError
from sentiment.prepare import prepare
from sentiment.scoring import score_files
from sentiment.training import train

from conftest import TINY_CONFIG, experiment_sets, quiet, tiny_model, write_csv

REPO = Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def one_line_error(result, pattern: str, exit_code: int = 2) -> None:
    assert result.exit_code == exit_code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(pattern, lines[0]), result.output


@pytest.fixture
def run_copy(tiny_trained, tmp_path):
    """A copy of the tiny run to corrupt."""
    return Path(shutil.copytree(tiny_trained.run_dir, tmp_path / "run"))


@pytest.fixture
def reviews_txt(tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_text("love it\nawful\n")
    return path


def hidden_leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.rglob(".*") if p.name.endswith((".tmp", ".old"))]


# ---- 5: non-finite numbers -------------------------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_the_config_refuses_non_finite_numbers(value):
    # Before: training.lr=inf was accepted (nan was not) and trained a run that labels everything alike.
    for key in ("training.lr", "training.clip_norm", "pretrain.lr", "split.test"):
        with pytest.raises(SentimentError, match=f"{key}: Input should be a finite number"):
            load_config(None, [f"{key}={value}"])


def test_training_stops_with_one_error_when_the_loss_is_not_finite(tiny_trained, tmp_path):
    # Before: lr=1e30 trained to NaN weights and wrote a finished run.
    sets = [*experiment_sets(tmp_path, tiny_trained.data.source), *tiny_model(2), "tokenize.max_len=32",
            f"paths.data={tiny_trained.paths.data}", "name=diverged", "paths.prepared=tiny", "training.lr=1e30"]
    one_line_error(invoke("train", "-c", TINY_CONFIG, *(f"--set={s}" for s in sets)),
                   r"training diverged in epoch 1: the loss is nan; lower training.lr")
    assert not (tmp_path / "runs" / "diverged").exists() and not (tmp_path / "runs" / "diverged.partial").exists()


def test_non_finite_weights_are_refused_when_the_run_loads(run_copy, reviews_txt, tmp_path):
    # Before: every row labelled `negative` with empty probabilities, exit 0.
    weights = load_file(run_copy / "model.safetensors")
    name = sorted(weights)[0]
    weights[name][0] = float("nan")
    save_file(weights, run_copy / "model.safetensors")
    one_line_error(invoke("score", "-m", run_copy, reviews_txt, "-o", tmp_path / "out.csv"),
                   f"tensor {re.escape(name)} holds NaN or infinite values")
    assert not (tmp_path / "out.csv").exists()


def test_non_finite_probabilities_stop_scoring_naming_the_row(tiny_trained, reviews_txt, tmp_path):
    model = load_model(tiny_trained.run_dir)
    model.predict_tokens = lambda tokens: np.full((len(tokens), 2), np.nan)
    with pytest.raises(SentimentError, match=r"reviews.txt, row 1: the model's probabilities are not finite"):
        score_files(model, [reviews_txt], tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists() and not hidden_leftovers(tmp_path)


# ---- 7, 13: the run's files must agree -------------------------------------------------------

@pytest.mark.parametrize("labels, pattern", [
    (["positive", "negative"], r"labels.json \['positive', 'negative'\] does not match the classes in run.json"),
    ("negative", "labels.json must be a list of at least two distinct class names"),
    (["negative", "positive", "neutral"], "does not match the classes in run.json"),
    (["negative", "negative"], "must be a list of at least two distinct class names"),
])
def test_labels_json_is_checked_against_run_json(run_copy, reviews_txt, tmp_path, labels, pattern):
    # Before: reversed labels inverted every prediction silently; a string or wrong length, a traceback.
    (run_copy / "labels.json").write_text(json.dumps(labels))
    one_line_error(invoke("score", "-m", run_copy, reviews_txt, "-o", tmp_path / "out.csv"), pattern)
    one_line_error(invoke("explain", "-m", run_copy, "love it"), pattern)


def test_run_json_and_config_json_must_describe_one_architecture(run_copy, reviews_txt, tmp_path):
    config = json.loads((run_copy / "config.json").read_text())
    config["model"]["hidden_size"] = 32
    (run_copy / "config.json").write_text(json.dumps(config))
    one_line_error(invoke("score", "-m", run_copy, reviews_txt), "run.json has model hidden_size 16 but config.json has 32")
    info = json.loads((run_copy / "run.json").read_text())
    info["model"]["hidden_size"] = "16"
    (run_copy / "run.json").write_text(json.dumps(info))
    one_line_error(invoke("score", "-m", run_copy, reviews_txt), "hidden_size")


def test_a_missing_tensor_is_named(run_copy, reviews_txt):
    # Before: the message was cut before it named the tensor.
    weights = load_file(run_copy / "model.safetensors")
    name = sorted(weights)[-1]
    del weights[name]
    save_file(weights, run_copy / "model.safetensors")
    one_line_error(invoke("score", "-m", run_copy, reviews_txt), f"missing tensor {re.escape(name)}$")


# ---- 9: one contract for the Python API ------------------------------------------------------

@pytest.mark.parametrize("system", ["model", "baseline"])
def test_the_model_and_the_baseline_refuse_unscorable_texts_naming_the_index(tiny_trained, system):
    # Before: the baseline classified "" (positive 0.571) where the model raised.
    model = load_model(tiny_trained.run_dir if system == "model" else tiny_trained.run_dir / "baseline")
    for texts, reason in [([""], "empty_text"), (["ok", None], "missing_text"), (["ok", "fine", b"x"], "not_text"),
                          ([42], "not_text"), (["\x00\x00"], "empty_text"), (["  \t"], "empty_text")]:
        index = len(texts) - 1
        with pytest.raises(SentimentError, match=rf"^text {index} .*cannot be scored \({reason}\)"):
            model.predict(texts)
    with pytest.raises(SentimentError, match="texts must be a string or a list of strings"):
        model.predict(None)
    empty = model.predict([])
    assert empty.labels == [] and empty.probabilities.shape == (0, 2)
    assert model.predict("love it").probabilities.shape == (1, 2)


