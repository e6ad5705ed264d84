# jaxsci developer entry points. Everything installs into ./.venv from this repo's files.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?= -n 2

.PHONY: run test test-slow lint format bench docs docs-serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,docs]'
	touch $@ $(VENV)/.installed-dev $(VENV)/.installed

## run: install jaxsci and run the default pipeline (configs/quickstart.yaml)
run: $(VENV)/.installed
	$(BIN)/jaxsci run configs/quickstart.yaml --out runs/quickstart --overwrite

## test: install jaxsci[dev]; ruff, pyright (basic) and the fast tier of the test suite (every
## test not marked `slow`) under the jaxtyping import hook (beartype; see addopts in
## pyproject.toml), with the 20 slowest tests reported
test: $(VENV)/.installed-dev
	$(BIN)/ruff check jaxsci tests examples benchmarks docs/hooks
	$(BIN)/pyright jaxsci
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

## test-slow: the tests marked `slow` (statistical studies, convergence orders, long
## gradient checks, whole runs); CI (.ci/run) runs `make test` and then this
test-slow: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check jaxsci tests examples benchmarks docs/hooks
	$(BIN)/pyright jaxsci

format: $(VENV)/.installed-dev
	$(BIN)/ruff format jaxsci tests examples benchmarks docs/hooks

## docs: install jaxsci[dev,docs]; build the documentation site into site/ with
## `mkdocs build --strict` (runs examples/tutorial_*.py; a broken reference, a griffe
## warning or a failing tutorial fails it)
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

## docs-serve: serve the documentation at http://127.0.0.1:8000, rebuilt on changes
docs-serve: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

## bench: install the peer packages and run the benchmarks (see benchmarks/RESULTS.md)
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs site .cache .pytest_cache .ruff_cache
