"""A trained run on disk (`runs/<experiment>/`): what `train` writes and every later stage reads.

```
model.safetensors   best weights (safetensors: loading an untrusted run cannot execute code);
                    an ensemble's as members.<k>.<name>
run.json            architecture, labels, best epoch and metric, vectors coverage, timing, versions;
                    for an ensemble, each member's seed, best epoch and validation scores
members/<k>/        an ensemble member's metrics.jsonl and checkpoint/
config.json         the effective experiment config
vocab.json          the vocabulary the ids refer to
labels.json         class names in output order
metrics.jsonl       one line per epoch (and member)
learning_curves.png
checkpoint/         the last epoch's weights, optimizer and RNG state, for --resume
```
A run being trained lives in `runs/<experiment>.partial/` and is renamed into place when it
finishes, so a later stage never reads a half-trained run.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment.artifacts import read_json, replace_directory, write_bytes_atomic, write_json
from sentiment.config import ExperimentConfig, config_from_dict
from sentiment.data.vocab import Vocab
from sentiment.errors import SentimentError
from sentiment.schemas import RunRecord, validated, write_record

RUN_FILES = ("model.safetensors", "run.json", "config.json", "vocab.json", "labels.json")


def partial_dir(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".partial")


def discard_if_empty(directory: Path) -> None:
    """Remove a run directory that holds no file at all (a run that failed at its start), so a
    failed `train` leaves nothing behind; one with a checkpoint is kept for --resume."""
    if directory.is_dir() and not any(path.is_file() for path in directory.rglob("*")):
        shutil.rmtree(directory, ignore_errors=True)


def write_run(
    work_dir: Path,
    run_dir: Path,
    info: dict[str, Any],
    config: ExperimentConfig,
    vocab: Vocab,
    baseline,
    history: list[dict[str, Any]],
) -> None:
    """Complete a run in its working directory (the weights are already there) and move it into
    place as `run_dir`, replacing an earlier run: what `load_run` reads, plus the model card and
    the learning curves."""
    from sentiment.reporting.model_card import write_model_card
    from sentiment.reporting.plots import plot_learning_curves

    write_bytes_atomic(work_dir / "metrics.jsonl", "".join(json.dumps(line) + "\n" for line in history).encode())
    write_record(work_dir / "run.json", RunRecord, info)
    write_json(work_dir / "config.json", config.to_dict())
    write_json(work_dir / "labels.json", info["labels"])
    vocab.save(work_dir / "vocab.json")
    baseline.save(work_dir / "baseline")
    write_model_card(work_dir, info, config.to_dict())
    plot_learning_curves(history, work_dir / "learning_curves.png", title=config.name)
    replace_directory(work_dir, run_dir)


@dataclass
class TrainedRun:
    directory: Path
    info: dict[str, Any]
    config: ExperimentConfig
    vocab: Vocab
    labels: list[str]
    record: RunRecord  # run.json checked (`sentiment.schemas`); `info` is the same file as a dict

    @property
    def members(self) -> list[dict[str, Any]]:
        """One summary per model of an ensemble run (seed, best epoch, validation); empty for a single model."""
        return (self.info.get("ensemble") or {}).get("members", [])

    def build_model(self, device: str = "cpu"):
        """The classifier with the run's best weights, in eval mode: a `RecurrentClassifier`, or an
        `EnsembleClassifier` of them when the run trained several seeds (`training.ensemble`)."""
        from safetensors.torch import load_file

        from sentiment.model.recurrent import EnsembleClassifier, RecurrentClassifier

        try:
            networks = [RecurrentClassifier.from_config(self.info["model"]) for _ in range(max(len(self.members), 1))]
        except TypeError as error:  # a value of the wrong type in run.json
            raise SentimentError(f"{self.directory / 'run.json'}: the model description is invalid ({error})") from None
        for network in networks:
            # Packing is a run-time choice with the same weights: on CPU the padded path is 3.5x faster.
            network.packed = self.info["model"].get("packed", False) and str(device).startswith("cuda")
        model = networks[0] if len(networks) == 1 else EnsembleClassifier(networks)
        try:
            state = load_file(str(self.directory / "model.safetensors"), device=device)
        except Exception as error:  # safetensors raises its own error types for corrupt files
            raise SentimentError(f"{self.directory / 'model.safetensors'}: cannot read the weights ({error})") from None
        check_weights(self.directory / "model.safetensors", state, model.state_dict())
        model.load_state_dict(state)
        model.temperature = self.temperature
        return model.to(device).eval()

    @property
    def temperature(self) -> float:
        """The temperature fitted on validation (`sentiment.training.calibration`); 1 for runs without one."""
        calibration = self.record.calibration
        return 1.0 if calibration is None else calibration.temperature

    @property
    def decision_threshold(self) -> float | None:
        """The cut on P(second class) fitted on validation (`training.decision_threshold`); None: argmax."""
        decision = self.record.decision
        return None if decision is None else decision.threshold

    def history(self) -> list[dict[str, Any]]:
        import json

        path = self.directory / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def load_run(directory: str | Path) -> TrainedRun:
    """Read a finished run, or say exactly why the directory is not one."""
    directory = Path(directory)
    if not directory.is_dir():
        hint = (
            " (training in progress or interrupted: rerun train with --resume)"
            if partial_dir(directory).is_dir()
            else ""
        )
        raise SentimentError(f"no trained run at {directory}{hint}; run `sentiment train` first")
    missing = [name for name in RUN_FILES if not (directory / name).is_file()]
    if missing:
        raise SentimentError(f"{directory} is not a complete run: missing {', '.join(missing)}")
    info = read_json(directory / "run.json", what="run metadata")
    if not isinstance(info, dict) or "model" not in info:
        raise SentimentError(f"{directory / 'run.json'} does not describe a model")
    config = config_from_dict(read_json(directory / "config.json"), origin=str(directory / "config.json"))
    labels = read_json(directory / "labels.json")
    vocab = Vocab.load(directory / "vocab.json")
    check_consistent(directory, info, config, labels, len(vocab))
    record = validated(RunRecord, info, directory / "run.json")
    return TrainedRun(directory=directory, info=info, config=config, vocab=vocab, labels=labels, record=record)


ARCHITECTURE_KEYS = ("cell", "embedding_dim", "hidden_size", "num_layers", "bidirectional", "pooling")


def check_consistent(
    directory: Path, info: dict[str, Any], config: ExperimentConfig, labels: Any, vocab_size: int
) -> None:
    """The run's files must describe one model: labels.json, run.json and config.json name the same
    classes in the same order (a reordered labels.json would invert every prediction), and the same
    architecture and vocabulary size. One line naming the first disagreement."""
    from sentiment.data.labels import scheme_labels

    model = info["model"]
    if not isinstance(model, dict):
        raise SentimentError(f"{directory / 'run.json'}: 'model' must describe the architecture, got {model!r}")
    if not (
        isinstance(labels, list)
        and len(labels) >= 2
        and all(isinstance(label, str) and label for label in labels)
        and len(set(labels)) == len(labels)
    ):
        raise SentimentError(
            f"{directory / 'labels.json'} must be a list of at least two distinct class names, got {labels!r}"[:300]
        )
    expected = {
        "run.json": info.get("labels", labels),
        f"config.json (label_scheme {config.data.label_scheme})": scheme_labels(config.data.label_scheme),
    }
    for where, names in expected.items():
        if names != labels:
            raise SentimentError(
                f"{directory}: labels.json {labels} does not match the classes in {where} {names}; "
                "the files come from different runs or were edited"
            )
    if model.get("num_classes") != len(labels):
        raise SentimentError(
            f"{directory}: labels.json names {len(labels)} classes but run.json's model has "
            f"{model.get('num_classes')!r} outputs"
        )
    if model.get("vocab_size") != vocab_size:
        raise SentimentError(
            f"{directory}: vocab.json has {vocab_size} words but the model expects {model.get('vocab_size')}"
        )
    for key in ARCHITECTURE_KEYS:
        if model.get(key) != getattr(config.model, key):
            raise SentimentError(
                f"{directory}: run.json has model {key} {model.get(key)!r} but config.json has "
                f"{getattr(config.model, key)!r}; the files come from different runs or were edited"
            )


def check_weights(path: Path, state: dict[str, Any], expected: dict[str, Any]) -> None:
    """Every tensor the architecture needs, of its shape, and finite: say which one is not."""
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    wrong = [
        f"{name} has shape {list(state[name].shape)}, expected {list(tensor.shape)}"
        for name, tensor in expected.items()
        if name in state and state[name].shape != tensor.shape
    ]
    for problems, what in ((missing, "missing tensor"), (unexpected, "unexpected tensor"), (wrong, "tensor")):
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise SentimentError(
                f"{path}: the weights do not match the architecture in run.json: {what} {problems[0]}{more}"
            )
    for name, tensor in state.items():
        if tensor.is_floating_point() and not tensor.isfinite().all():
            raise SentimentError(
                f"{path}: tensor {name} holds NaN or infinite values; the weights are corrupt, train the run again"
            )
