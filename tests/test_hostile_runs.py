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
from sentiment.data.prepare import prepare
from sentiment.errors import SentimentError
from sentiment.serving.scoring import score_files

from conftest import TINY_CONFIG, experiment_sets, one_line_error, quiet, tiny_model, write_csv


def invoke(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


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
    sets = [
        *experiment_sets(tmp_path, tiny_trained.data.source),
        *tiny_model(2),
        "tokenize.max_len=32",
        f"paths.data={tiny_trained.paths.data}",
        "name=diverged",
        "paths.prepared=tiny",
        "training.lr=1e30",
    ]
    one_line_error(
        invoke("train", "-c", TINY_CONFIG, *(f"--set={s}" for s in sets)),
        r"training diverged in epoch 1: the loss is nan; lower training.lr",
    )
    assert not (tmp_path / "runs" / "diverged").exists() and not (tmp_path / "runs" / "diverged.partial").exists()


def test_non_finite_weights_are_refused_when_the_run_loads(run_copy, reviews_txt, tmp_path):
    # Before: every row labelled `negative` with empty probabilities, exit 0.
    weights = load_file(run_copy / "model.safetensors")
    name = sorted(weights)[0]
    weights[name][0] = float("nan")
    save_file(weights, run_copy / "model.safetensors")
    one_line_error(
        invoke("score", "-m", run_copy, reviews_txt, "-o", tmp_path / "out.csv"),
        f"tensor {re.escape(name)} holds NaN or infinite values",
    )
    assert not (tmp_path / "out.csv").exists()


def test_non_finite_probabilities_stop_scoring_naming_the_row(tiny_trained, reviews_txt, tmp_path):
    model = load_model(tiny_trained.run_dir)
    model.predict_inputs = lambda inputs: np.full((len(inputs), 2), np.nan)  # what score calls
    with pytest.raises(SentimentError, match=r"reviews.txt, row 1: the model's probabilities are not finite"):
        score_files(model, [reviews_txt], tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists() and not hidden_leftovers(tmp_path)


# ---- 7, 13: the run's files must agree -------------------------------------------------------


@pytest.mark.parametrize(
    "labels, pattern",
    [
        (["positive", "negative"], r"labels.json \['positive', 'negative'\] does not match the classes in run.json"),
        ("negative", "labels.json must be a list of at least two distinct class names"),
        (["negative", "positive", "neutral"], "does not match the classes in run.json"),
        (["negative", "negative"], "must be a list of at least two distinct class names"),
    ],
)
def test_labels_json_is_checked_against_run_json(run_copy, reviews_txt, tmp_path, labels, pattern):
    # Before: reversed labels inverted every prediction silently; a string or wrong length, a traceback.
    (run_copy / "labels.json").write_text(json.dumps(labels))
    one_line_error(invoke("score", "-m", run_copy, reviews_txt, "-o", tmp_path / "out.csv"), pattern)
    one_line_error(invoke("explain", "-m", run_copy, "love it"), pattern)


def test_run_json_and_config_json_must_describe_one_architecture(run_copy, reviews_txt, tmp_path):
    config = json.loads((run_copy / "config.json").read_text())
    config["model"]["hidden_size"] = 32
    (run_copy / "config.json").write_text(json.dumps(config))
    one_line_error(
        invoke("score", "-m", run_copy, reviews_txt), "run.json has model hidden_size 16 but config.json has 32"
    )
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
    for texts, reason in [
        ([""], "empty_text"),
        (["ok", None], "missing_text"),
        (["ok", "fine", b"x"], "not_text"),
        ([42], "not_text"),
        (["\x00\x00"], "empty_text"),
        (["  \t"], "empty_text"),
    ]:
        index = len(texts) - 1
        with pytest.raises(SentimentError, match=rf"^text {index} .*cannot be scored \({reason}\)"):
            model.predict(texts)
    with pytest.raises(SentimentError, match="texts must be a string or a list of strings"):
        model.predict(None)
    empty = model.predict([])
    assert empty.labels == [] and empty.probabilities.shape == (0, 2)
    assert model.predict("love it").probabilities.shape == (1, 2)


# ---- 10: full disks, unwritable outputs, memory ----------------------------------------------

RUNNER = textwrap.dedent("""
    import contextlib, io, json, resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
    import matplotlib
    matplotlib.use("Agg")
    import datasets, joblib, matplotlib.pyplot, sklearn.linear_model, spacy, torch  # caches, semaphores: written
    from sentiment.cli import cli
    results = []
    for args in json.loads(sys.argv[1]):
        limit = resource.RLIM_INFINITY if args[0] == "unlimited" else 1
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            try:
                cli.main(args[1:], prog_name="sentiment")
                code = 0
            except SystemExit as exit:
                code = exit.code
        results.append([code, stderr.getvalue()])
    print(json.dumps(results))
""")


def run_with_full_disk(commands: list[list[str]], cwd: Path) -> list[tuple[int, list[str]]]:
    """Run CLI commands in one fresh process where no file can grow past 1 byte (`full`), or `unlimited`."""
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(commands)], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [(code, [line for line in err.splitlines() if line.strip()]) for code, err in json.loads(result.stdout)]


def test_a_full_disk_is_one_line_and_exit_1_in_every_stage_that_writes(tiny_trained, tmp_path):
    # Before: OSError tracebacks from prepare, train, explain and score; train left an empty <name>.partial/.
    source = write_csv(
        tmp_path / "reviews.csv",
        [{"text": f"love it {i}", "label": 5} for i in range(20)]
        + [{"text": f"awful {i}", "label": 1} for i in range(20)],
    )
    sets = [f"--set={s}" for s in [*experiment_sets(tmp_path, source), *tiny_model(1), "name=full"]]
    trained = [
        f"--set={s}"
        for s in [
            *experiment_sets(tmp_path, tiny_trained.data.source),
            *tiny_model(1),
            f"paths.data={tiny_trained.paths.data}",
            "paths.prepared=tiny",
            "tokenize.max_len=32",
            "name=full",
        ]
    ]
    (tmp_path / "in.txt").write_text("love it\n")
    (tmp_path / "d.html").mkdir()
    commands = [
        ["full", "prepare", "-c", TINY_CONFIG, *sets],
        ["full", "train", "-c", TINY_CONFIG, *trained],
        ["full", "explain", "-m", str(tiny_trained.run_dir), "love it", "-o", "out.png"],
        ["full", "explain", "-m", str(tiny_trained.run_dir), "love it", "-o", "out.html"],
        ["full", "score", "-m", str(tiny_trained.run_dir), "in.txt", "-o", "out.csv"],
        ["unlimited", "explain", "-m", str(tiny_trained.run_dir), "love it", "-o", "d.html"],
        ["unlimited", "explain", "-m", str(tiny_trained.run_dir), "love it", "-o", "/proc/no/out.png"],
    ]
    results = run_with_full_disk(commands, tmp_path)
    for command, (code, lines) in zip(commands, results[:5]):
        assert code == 1 and len(lines) == 1 and "File too large" in lines[0], (command, lines)
    assert results[5] == (2, ["error: -o d.html is a directory; give a file name such as d.html/explain.png"])
    assert results[6][0] == 2 and len(results[6][1]) == 1 and "cannot" in results[6][1][0]
    # Nothing half-written: no file but the inputs, no empty full.partial/ (only empty parent folders).
    assert sorted(p.name for p in tmp_path.rglob("*") if not p.is_dir()) == ["in.txt", "reviews.csv"]
    assert not (tmp_path / "runs" / "full.partial").exists()
    assert sorted(p.name for p in Path(tiny_trained.paths.runs).iterdir()) == ["tiny"]


def test_scoring_to_a_full_standard_output_is_one_line(tiny_trained, reviews_txt):
    # Before: the CSV header was written outside the error guard: a traceback.
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "sentiment", "score", "-m", str(tiny_trained.run_dir), str(reviews_txt)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: cannot write the output standard output: No space left on device"
    ]


def test_a_model_too_large_for_memory_is_one_line(tiny_trained, tmp_path):
    sets = [
        *experiment_sets(tmp_path, tiny_trained.data.source),
        f"paths.data={tiny_trained.paths.data}",
        "paths.prepared=tiny",
        "tokenize.max_len=32",
        "name=huge",
        "model.vectors=none",
        f"model.hidden_size={2**42}",
    ]
    one_line_error(
        invoke("train", "-c", TINY_CONFIG, *(f"--set={s}" for s in sets)),
        "out of memory .*model.hidden_size",
        exit_code=1,
    )
    assert not (tmp_path / "runs" / "huge.partial").exists()


# ---- 11, 12: data and split problems, before any training ------------------------------------


def test_prepare_refuses_a_dataset_with_one_class(make_config, tmp_path):
    # Before: prepared without a word; train failed at the baseline, after all its epochs.
    source = write_csv(tmp_path / "one.csv", [{"text": f"love it {i}", "label": 5} for i in range(40)])
    with pytest.raises(SentimentError, match=r"the training split has no negative reviews \(negative 0, positive"):
        prepare(make_config(source), log=quiet)
    assert not (tmp_path / "data" / "prepared" / "tiny").exists()


@pytest.mark.parametrize("validation, test", [(0.5, 0.5), (0.6, 0.7), (0.9, 0.1)])
def test_split_shares_must_leave_a_training_share(validation, test):
    # Before: accepted; prepare then blamed the data size.
    with pytest.raises(SentimentError, match=r"^config: split: validation .* \+ test .* must be below 1"):
        load_config(None, [f"split.validation={validation}", f"split.test={test}"])


# ---- 14: SIGTERM -----------------------------------------------------------------------------


def test_sigterm_during_score_removes_the_temporary_output(tiny_trained, tmp_path):
    # Before: a hidden .out.csv.*.tmp stayed beside the target (SIGINT cleaned up).
    (tmp_path / "big.txt").write_text("love this dress, it fits perfectly and the fabric is soft\n" * 400_000)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sentiment",
            "score",
            "-m",
            str(tiny_trained.run_dir),
            str(tmp_path / "big.txt"),
            "-o",
            str(tmp_path / "out.csv"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not hidden_leftovers(tmp_path) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hidden_leftovers(tmp_path), "the output never started"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    assert stderr.strip().splitlines()[-1] == "error: stopped by SIGTERM (nothing half-written was left)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt"]


def test_sigterm_during_prepare_leaves_no_staging_directory(reviews_csv, tmp_path, monkeypatch):
    import datasets

    def terminated(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", terminated)
    sets = experiment_sets(tmp_path, reviews_csv)
    result = invoke("prepare", "-c", TINY_CONFIG, *(f"--set={s}" for s in sets))
    assert result.exit_code == 143 and result.output.strip().endswith(
        "error: stopped by SIGTERM (nothing half-written was left)"
    )
    assert not any((tmp_path / "data" / "prepared").iterdir())
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is the command's only


# ---- 15, 16: one line on stderr --------------------------------------------------------------


def test_prepare_on_a_malformed_file_prints_only_the_error_line(tmp_path):
    # Before: datasets logged "Failed to read file ..." before our error line.
    rows = ["text,label"] + [f"good review number {i},5" for i in range(3000)]
    rows[2001] = 'another, "x" ,2,,9'
    (tmp_path / "bad.csv").write_text("\n".join(rows) + "\n")
    sets = [f"--set={s}" for s in experiment_sets(tmp_path, tmp_path / "bad.csv")]
    result = subprocess.run(
        [sys.executable, "-m", "sentiment", "prepare", "-c", TINY_CONFIG, *sets],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'bad.csv'}: cannot read it as CSV: Error "
        "tokenizing data. C error: Expected 2 fields in line 2002, saw 5"
    ]


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["score", "--batch-size", "0", "x.txt"], r"Invalid value for '--batch-size': 0 is not in the range x>=1"),
        (["prepare", "--config", "/"], r"Invalid value for '--config' / '-c': .* is a directory"),
        (["evaluate", "--resamples", "5"], r"Invalid value for '--resamples': 5 is not in the range x>=100"),
        (["score"], r"Missing argument 'INPUT...'"),
        (["score", "--format", "xlsx", "x"], r"Invalid value for '--format'"),
        (["train", "--bogus"], r"No such option '--bogus'"),
        (["bogus"], r"No such command 'bogus'"),
    ],
)
def test_click_usage_errors_are_one_line(args, pattern):
    # Before: three lines (usage, hint, error).
    one_line_error(invoke(*args), pattern)


def test_help_and_version_still_work():
    assert invoke("--help").output.startswith("Usage: ")
    assert invoke().output.startswith("Usage: ")
    assert invoke("score", "--help").exit_code == 0 and invoke("--version").exit_code == 0
