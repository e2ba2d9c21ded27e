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


