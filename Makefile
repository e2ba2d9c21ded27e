# Two commands on a fresh machine: `make demo` (default pipeline end to end) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SENTIMENT := $(VENV)/bin/sentiment
CONFIG ?= configs/clothing.toml
INSTALLED := $(VENV)/.installed

.PHONY: setup demo demo-transfer test test-fast lint bench browser clean

setup: $(INSTALLED)

# torch first and pinned (constraints.txt): a looser pin pulls gigabytes of CUDA packages.
$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,ray]"
	touch $@

# The default's training also reads sentences of IMDB's training reviews (training.extra_sentences),
# so IMDB is prepared first (once: a later prepare finds it up to date).
demo: setup
	$(SENTIMENT) prepare --config configs/imdb.toml
	$(SENTIMENT) prepare --config $(CONFIG)
	$(SENTIMENT) train --config $(CONFIG)
	$(SENTIMENT) evaluate --config $(CONFIG)
	@echo "Open the report: reports/$$(basename $(CONFIG) .toml)/report.html"

# Transfer between datasets: the IMDB sentence model first (configs/imdb-sentences.toml, about
# 10 minutes on 2 cores), then the default clothing model started from it and mixed back towards it
# (configs/clothing-from-imdb.toml).
demo-transfer: setup
	$(SENTIMENT) prepare --config configs/imdb-sentences.toml
	$(SENTIMENT) train --config configs/imdb-sentences.toml
	$(MAKE) demo CONFIG=configs/clothing-from-imdb.toml

# The whole suite (CI runs this): slow, network and browser tests included.
test: setup browser
	$(PY) -m pytest -q

# The inner loop: everything not marked slow, network or browser (pyproject.toml's markers).
test-fast: setup
	$(PY) -m pytest -q -m "not slow and not network and not browser"

# Style, types and the import layers (settings in pyproject.toml); CI runs it before the tests.
lint: setup
	$(VENV)/bin/ruff check sentiment tests benchmarks
	$(VENV)/bin/ruff format --check sentiment tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Headless Chromium for the report's browser tests (Debian's package): apt-get as root (CI; a
# failure there fails), through sudo otherwise; without sudo the browser tests skip, and this
# says how to enable them.
browser:
	@command -v chromium >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1 && sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; then :; \
	  else echo "browser tests will skip: install Chromium (sudo apt-get install chromium) to run them"; fi

bench: setup
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) data/prepared runs reports/*/
