"""The import-layer contract (`make lint`, import-linter) covers every module of the package."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import sentiment

ROOT = Path(__file__).parent.parent


def test_every_module_has_a_layer():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    listed = {name.strip() for layer in layers for name in re.split(r"[|:]", layer)}
    package = Path(sentiment.__file__).parent
    modules = {f"sentiment.{path.stem}" for path in package.glob("*.py") if path.stem != "__init__"}
    assert modules - listed == set(), "modules missing from [tool.importlinter] layers in pyproject.toml"
    assert listed - modules == set(), "layers name modules that do not exist"
