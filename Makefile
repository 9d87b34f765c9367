# The two commands of the README:  make demo  |  make test
# Both create the virtual environment and install what they need on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test web lint typecheck contracts unit slow check clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python web
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python web
	$(BIN)/pip install --quiet -e '.[test,bench]'

# The dashboard (docs/DASHBOARD.md): plain ES modules from web/ and uPlot from npm, copied into the package.
# npm ci runs only when the lock file changed; without npm the API still works and / says to run make web.
STATIC := src/opsmind/api/static
WEB_FILES := web/index.html $(wildcard web/src/*.js web/src/*.css)

web:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(STATIC)/index.html; \
	else echo "npm not found: the dashboard is not built (install npm, then make web)" >&2; fi

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund
	touch $@

$(STATIC)/index.html: web/node_modules/.package-lock.json $(WEB_FILES)
	rm -rf $(STATIC) && mkdir -p $(STATIC)
	cp web/src/*.js web/src/*.css web/node_modules/uplot/dist/uPlot.esm.js web/node_modules/uplot/dist/uPlot.min.css $(STATIC)/
	cp web/index.html $(STATIC)/index.html

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
