"""Hostile experiment names and output paths: every stage refuses them with one line, and nothing
outside the configured folders (nor inside them) changes. Before issue 15, `name=` replaced all of
data/prepared/, runs/ or reports/, and `name=../../victim` deleted a sibling directory."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from sentiment.cli import cli
from sentiment.config import load_config
from sentiment.data.prepare import prepare
from sentiment.errors import SentimentError
from sentiment.evaluation.evaluate import evaluate
from sentiment.training.stage import train

from conftest import TINY_CONFIG, experiment_sets, one_line_error, quiet, tiny_model

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out

HOSTILE = ["", ".", "..", "../x", "/tmp/x", "a/../../b", "a\x00b", "../../victim", "x.partial", ".hidden"]
OUTSIDE = [Path("/tmp/x"), Path("/tmp/b")]


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every path under `roots` (and the roots themselves) with its type, size and modification time."""
    seen = {}
    for root in roots:
        if not root.exists():
            seen[str(root)] = None
            continue
        for path in [root, *root.rglob("*")]:
            info = path.lstat()
            seen[str(path)] = (path.is_dir(), info.st_size, info.st_mtime_ns)
    return seen


@pytest.fixture(scope="module")
def world(tiny_trained, tmp_path_factory):
    """A copy of the tiny experiment with every stage's output (data/prepared/tiny, runs/tiny,
    reports/tiny), beside a `victim` directory that the hostile names aim at."""
    root = tmp_path_factory.mktemp("hostile") / "work"
    shutil.copytree(Path(tiny_trained.paths.data).parent, root)
    sets = [*experiment_sets(root, tiny_trained.data.source), *tiny_model(4), "tokenize.max_len=32"]
    evaluate(load_config(TINY_CONFIG, sets), n_resamples=100, log=quiet)
    (root.parent / "victim").mkdir()
    (root.parent / "victim" / "keep.txt").write_text("keep me")
    return root, sets


@pytest.mark.parametrize("name", HOSTILE)
def test_every_stage_refuses_a_name_that_is_not_one_directory(world, name):
    root, sets = world
    before = snapshot(root.parent, *OUTSIDE)
    for stage in (["prepare", "--force"], ["train"], ["evaluate", "--resamples", "100"], ["compare", "--cells", "rnn"]):
        result = CliRunner().invoke(
            cli, [*stage, "-c", TINY_CONFIG, *(f"--set={s}" for s in sets), f"--set=name={name}"]
        )
        one_line_error(result, "name: must")
    for run in (prepare, train, evaluate):  # the Python API reads the same config
        with pytest.raises(SentimentError, match="name: must"):
            run(load_config(TINY_CONFIG, [*sets, f"name={name}"]), log=quiet)
    assert snapshot(root.parent, *OUTSIDE) == before


@pytest.mark.parametrize("name", ["", "..", "../x", "/tmp/x", "a\x00b"])
def test_a_shared_prepared_dataset_name_is_one_directory_too(world, name):
    root, sets = world
    with pytest.raises(SentimentError, match="paths.prepared: must"):
        load_config(TINY_CONFIG, [*sets, f"paths.prepared={name}"])


def test_no_stage_replaces_a_directory_it_did_not_write(world):
    """Defence in depth: a valid name whose directory holds something else is refused, not replaced."""
    root, sets = world
    theirs = [root / "runs" / "victim", root / "reports" / "victim2", root / "data" / "prepared" / "victim3"]
    for directory in theirs:
        directory.mkdir(parents=True)
        (directory / "keep.txt").write_text("keep me")
    shutil.copytree(root / "runs" / "tiny", root / "runs" / "victim2")  # a real run, to evaluate
    with pytest.raises(SentimentError, match="refusing to replace .*victim.*did not write"):
        train(load_config(TINY_CONFIG, [*sets, "name=victim", "paths.prepared=tiny"]), log=quiet)
    with pytest.raises(SentimentError, match="refusing to replace .*victim2.*did not write"):
        evaluate(load_config(TINY_CONFIG, [*sets, "name=victim2", "paths.prepared=tiny"]), n_resamples=100, log=quiet)
    with pytest.raises(SentimentError, match="refusing to replace .*victim3.*did not write"):
        prepare(load_config(TINY_CONFIG, [*sets, "name=victim3"]), force=True, log=quiet)
    for directory in theirs:
        assert [p.name for p in directory.iterdir()] == ["keep.txt"]
    for made in ("victim.partial", "victim2"):  # the finished training (kept for --resume), the copy
        shutil.rmtree(root / "runs" / made)
    for directory in theirs:
        shutil.rmtree(directory)


@pytest.mark.parametrize("output", ["", ".", "..", "../x", "/tmp/x", "a/../../b", "a\x00b", "x\x00.csv"])
def test_score_refuses_a_hostile_output_path(world, output, monkeypatch):
    root, _ = world
    (root / "in.txt").write_text("love it\n")
    monkeypatch.chdir(root)
    before = snapshot(root.parent, *OUTSIDE)
    one_line_error(
        CliRunner().invoke(cli, ["score", "-m", str(root / "runs" / "tiny"), "in.txt", "-o", output]),
        "directory|cannot tell the output format|NUL",
    )
    assert snapshot(root.parent, *OUTSIDE) == before
    assert os.getcwd() == str(root)
