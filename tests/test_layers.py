"""The import-layer contract (`make lint`, import-linter) covers every module of the package, in its folders."""

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
    modules = {
        ".".join(("sentiment", *path.relative_to(package).with_suffix("").parts))
        for path in package.rglob("*.py")
        if path.name != "__init__.py"
    }
    packages = {
        ".".join(("sentiment", *path.parent.relative_to(package).parts)) for path in package.rglob("*/__init__.py")
    }

    def layer_of(module: str) -> str | None:
        return next((name for name in listed if module == name or module.startswith(name + ".")), None)

    assert {m for m in modules if layer_of(m) is None} == set(), "modules missing from [tool.importlinter] layers"
    assert listed - modules - packages == set(), "layers name modules or packages that do not exist"
