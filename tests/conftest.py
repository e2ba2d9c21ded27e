"""Shared fixtures: small review files written to tmp_path, and configs that point at them."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from sentiment.config import load_config

TINY_CONFIG = str(Path(__file__).parent / "tiny.toml")
"""Base config for tests that go through the CLI: the package defaults, named `tiny`."""

POSITIVE = [
    "love this dress, the fabric is soft and it fits perfectly",
    "great quality and the color is exactly as pictured",
    "so comfortable, i wear it every day",
    "beautiful top, flattering cut and true to size",
    "excellent jeans, they hold their shape after washing",
    "perfect for summer, light and breezy",
    "the sweater is warm and cozy, highly recommend",
    "gorgeous color and the material feels expensive",
    "fits like a glove, i ordered a second one",
    "very happy with this purchase, looks great",
]
NEGATIVE = [
    "the fabric is cheap and scratchy, returning it",
    "runs very small and the zipper broke",
    "terrible quality, it fell apart after one wash",
    "the color is nothing like the picture, disappointed",
    "awful fit, way too boxy and unflattering",
    "poorly made, the seams came undone",
    "see through and thin, not worth the price",
    "the sleeves are too long and the waist is huge",
    "itchy material and it shrank in the wash",
    "waste of money, looks like a sack",
]


def review_rows(copies: int = 4, seed: int = 0) -> list[dict]:
    """Distinct reviews (a varying suffix) with star ratings, including some 3-star ones."""
    rng = random.Random(seed)
    rows = []
    for copy in range(copies):
        for text in POSITIVE:
            rows.append({"text": f"{text} {'!' * (copy + 1)} order {copy}", "label": rng.choice([4, 5])})
        for text in NEGATIVE:
            rows.append({"text": f"{text} {'.' * (copy + 1)} order {copy}", "label": rng.choice([1, 2])})
        rows.append({"text": f"it is okay, nothing special, version {copy}", "label": 3})
    return rows


def write_csv(path: Path, rows: list[dict], fieldnames=("text", "label"), delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(fieldnames), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def reviews_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "reviews.csv", review_rows())


def quiet(*_):
    """A `log` that drops every message."""


def tiny_model(epochs: int) -> list[str]:
    """--set overrides for a small model that trains in seconds, for `epochs` epochs."""
    return [
        "model.vectors=none",
        "model.embedding_dim=16",
        "model.hidden_size=16",
        "training.batch_size=8",
        "training.lr=0.01",
        "training.threads=1",
        f"training.max_epochs={epochs}",
        f"training.patience={epochs}",
        "model.dropout=0.0",
    ]


TINY = tiny_model(4)
"""The small model most training tests use: four epochs."""


def experiment_sets(root: Path, source: Path | str) -> list[str]:
    """--set overrides that read `source` and put every output under `root`; no out-of-domain
    sets (the named ones are fetched from the registry; tests that want some pass a file)."""
    return [
        f"data.source={source}",
        f"paths.data={root / 'data'}",
        f"paths.runs={root / 'runs'}",
        f"paths.reports={root / 'reports'}",
        "vocab.min_freq=1",
        "evaluate.out_of_domain=[]",
    ]


RATED_SENTENCES = [
    ("s1", 2.6, "love this dress, so soft"),
    ("s2", -2.2, "the zipper broke after one wash"),
    ("s3", 1.9, "great quality and a perfect fit"),
    ("s4", -1.7, "cheap fabric, returning it"),
    ("s5", 0.2, "it came in a box"),
    ("s6", -0.8, "runs small and looks like a sack"),
]


def write_rated_sentences(path: Path) -> Path:
    """A small out-of-domain set in the sdist's `id<TAB>mean<TAB>text` format."""
    path.write_text("".join(f"{i}\t{mean}\t{text}\r\n" for i, mean, text in RATED_SENTENCES), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def evaluated_run(tmp_path_factory):
    """A tiny trained run for CLI tests: (config path, --set arguments that select it)."""
    from sentiment.data.prepare import prepare
    from sentiment.training.stage import train

    root = tmp_path_factory.mktemp("tiny-run")
    source = write_csv(root / "reviews.csv", review_rows())
    overrides = [*experiment_sets(root, source), *tiny_model(3)]
    config = load_config(TINY_CONFIG, overrides)
    prepare(config, log=quiet)
    train(config, log=quiet)
    return TINY_CONFIG, [argument for value in overrides for argument in ("--set", value)]


@pytest.fixture
def make_config(tmp_path: Path):
    """A config for a local file, with every output under tmp_path."""

    def make(source: Path | str, *overrides: str):
        return load_config(None, ["name=tiny", *experiment_sets(tmp_path, source), *overrides])

    return make


@pytest.fixture
def prepared_config(reviews_csv, make_config):
    """`prepared_config(*overrides)`: a config for the tiny reviews, its data already prepared."""
    from sentiment.data.prepare import prepare

    def make(*overrides: str):
        config = make_config(reviews_csv, *overrides)
        prepare(config, log=quiet)
        return config

    return make


@pytest.fixture
def tiny(prepared_config):
    """`tiny(*overrides)`: a prepared config for the tiny reviews and the `TINY` model."""
    return lambda *overrides: prepared_config(*TINY, *overrides)


def one_line_error(result, pattern: str, exit_code: int = 2) -> None:
    """A CLI result that failed as every user mistake should: the exit code, and one line on the
    output, `error: ...`, matching `pattern`."""
    import re

    assert result.exit_code == exit_code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(pattern, lines[0]), result.output


def metrics_lines(run_dir: Path) -> list[dict]:
    """A run's metrics.jsonl, one dict per epoch."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_timing(lines: list[dict]) -> list[dict]:
    """Epoch lines without their wall-clock fields, for comparing two runs."""
    return [{k: v for k, v in line.items() if k not in ("seconds", "examples_per_second")} for line in lines]


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory):
    """One tiny prepared and trained experiment for the whole session (its config), for tests that
    only read a run: every stage's outputs exist under its root (data/, runs/; reports/ empty)."""
    from sentiment.data.prepare import prepare
    from sentiment.training.stage import train

    root = tmp_path_factory.mktemp("tiny-trained")
    source = write_csv(root / "reviews.csv", review_rows(copies=6))
    config = load_config(None, ["name=tiny", *experiment_sets(root, source), *tiny_model(4), "tokenize.max_len=32"])
    prepare(config, log=quiet)
    train(config, log=quiet)
    return config
