# The two commands of the README:  make demo  |  make test
# Both create the virtual environment and install what they need on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test lint typecheck contracts unit slow check clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'

demo: install
	$(BIN)/opsmind demo

lint: install-test
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: install-test
	$(BIN)/mypy

contracts: install-test
	$(BIN)/lint-imports

# Fast tests first, then the slow ones (real Prometheus, subprocesses, kill -9).
unit: install-test
	$(BIN)/pytest -m "not slow" -q

slow: install-test
	$(BIN)/pytest -m slow -q

test: lint typecheck contracts unit slow

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
