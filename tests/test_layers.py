"""Every module of the package has its place: a layer in the import-layer contract (`make lint`, import-linter)
and a line in its folder's `__init__.py` list."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
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


def test_every_folder_lists_its_modules():
    """Each folder's `__init__.py` docstring is its table of contents: a line per module, the module's
    name first (the README points readers there)."""
    package = Path(sentiment.__file__).parent
    unlisted = {}
    for init in sorted(package.glob("*/__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        listed = {line.split()[0] for line in docstring.splitlines()[1:] if line.strip()}
        modules = {path.stem for path in init.parent.glob("*.py") if path.name != "__init__.py"}
        if modules - listed:
            unlisted[init.parent.name] = sorted(modules - listed)
    assert unlisted == {}, "modules missing from their folder's __init__.py list"


def test_the_serving_package_names_its_entry_points_without_loading_them():
    code = (
        "import sys, sentiment.serving as s; loaded = 'fastapi' in sys.modules or 'torch' in sys.modules; "
        "from sentiment.serving import BatchScorer, create_app, load_model; "
        "print(loaded, BatchScorer.__module__, create_app.__module__, load_model.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "sentiment.serving.batch_scorer", "sentiment.serving.server", "sentiment.serving.inference"]
