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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment.artifacts import read_json
from sentiment.config import ExperimentConfig, config_from_dict
from sentiment.errors import SentimentError
from sentiment.vocab import Vocab

RUN_FILES = ("model.safetensors", "run.json", "config.json", "vocab.json", "labels.json")


def partial_dir(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".partial")


@dataclass
class TrainedRun:
    directory: Path
    info: dict[str, Any]
    config: ExperimentConfig
    vocab: Vocab
    labels: list[str]

    @property
    def members(self) -> list[dict[str, Any]]:
        """One summary per model of an ensemble run (seed, best epoch, validation); empty for a single model."""
        return (self.info.get("ensemble") or {}).get("members", [])

    def build_model(self, device: str = "cpu"):
        """The classifier with the run's best weights, in eval mode: a `RecurrentClassifier`, or an
        `EnsembleClassifier` of them when the run trained several seeds (`training.ensemble`)."""
        from safetensors.torch import load_file

        from sentiment.model import EnsembleClassifier, RecurrentClassifier

        networks = [RecurrentClassifier.from_config(self.info["model"]) for _ in range(max(len(self.members), 1))]
        for network in networks:
            # Packing is a run-time choice with the same weights: on CPU the padded path is 3.5x faster.
            network.packed = self.info["model"].get("packed", False) and str(device).startswith("cuda")
        model = networks[0] if len(networks) == 1 else EnsembleClassifier(networks)
        try:
            state = load_file(str(self.directory / "model.safetensors"), device=device)
        except Exception as error:  # safetensors raises its own error types for corrupt files
            raise SentimentError(f"{self.directory / 'model.safetensors'}: cannot read the weights ({error})") from None
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            first = str(error).splitlines()[0]
            raise SentimentError(f"{self.directory}: the weights do not match the architecture ({first})") from None
        return model.to(device).eval()

    def history(self) -> list[dict[str, Any]]:
        import json

        path = self.directory / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def load_run(directory: str | Path) -> TrainedRun:
    """Read a finished run, or say exactly why the directory is not one."""
    directory = Path(directory)
    if not directory.is_dir():
        hint = " (training in progress or interrupted: rerun train with --resume)" if partial_dir(directory).is_dir() else ""
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
    if info["model"].get("vocab_size") != len(vocab):
        raise SentimentError(f"{directory}: vocab.json has {len(vocab)} words but the model expects {info['model'].get('vocab_size')}")
    return TrainedRun(directory=directory, info=info, config=config, vocab=vocab, labels=labels)
