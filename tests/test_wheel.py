"""The package as `pip install .` builds it: the wheel holds what `evaluate` needs (the contrast
suite, the report templates), and an installed copy evaluates a run from outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_an_installed_wheel_evaluates_a_run_outside_the_checkout(evaluated_run, tmp_path):
    built = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(built), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = built.glob("sentiment-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "sentiment/resources/contrast/product_reviews.jsonl" in names
    assert "sentiment/reporting/templates/document.html.j2" in names
    target = tmp_path / "installed"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}  # ahead of the checkout's editable install
    where = subprocess.run(
        [sys.executable, "-c", "import sentiment; print(sentiment.__file__)"],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(target))
    config_path, overrides = evaluated_run
    result = subprocess.run(
        [sys.executable, "-m", "sentiment", "evaluate", "--config", config_path, *overrides, "--resamples", "100"],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "contrast pass rate" in result.stdout
