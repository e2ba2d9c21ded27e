# Two commands on a fresh machine: `make demo` (default pipeline end to end) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SENTIMENT := $(VENV)/bin/sentiment
CONFIG ?= configs/clothing.toml
INSTALLED := $(VENV)/.installed

.PHONY: setup demo test bench browser clean

setup: $(INSTALLED)

# torch first and pinned (constraints.txt): a looser pin pulls gigabytes of CUDA packages.
$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

demo: setup
	$(SENTIMENT) prepare --config $(CONFIG)
	@echo "Prepared data: data/prepared/$$(basename $(CONFIG) .toml)/"

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) data/prepared runs reports/*/
