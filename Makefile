# One entry point for every job. `make test` and `make bench` work on a fresh
# machine with nothing but Python 3.11+: they create .venv and install into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: test lint bench demo docs clean peers conformance wheel-check

# MCP peers from other SDKs (the TypeScript reference server, the conformance
# suite, and node 22 to run them), pinned by tests/peers/package-lock.json.
PEERS := tests/peers
PEERS_STAMP := $(PEERS)/node_modules/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

$(PEERS_STAMP): $(PEERS)/package.json $(PEERS)/package-lock.json
	npm ci --prefix $(PEERS) --no-audit --no-fund --loglevel=error
	touch $(PEERS_STAMP)

peers: $(PEERS_STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks
	$(VENV)/bin/flake8 src
	$(VENV)/bin/mypy

test: $(STAMP) $(PEERS_STAMP) lint
	$(VENV)/bin/pytest --cov --cov-report=term --cov-fail-under=85 $(ARGS)

# Every client scenario of the official MCP conformance suite, run through the pool
# (tests/conformance/client.py) and judged against tests/conformance/expected-failures.yml:
# fails on a new failure and on a listed scenario that now passes. Results (untracked)
# in tests/conformance/results/. ARGS="--client sdk --no-baseline" measures the raw SDK.
conformance: $(STAMP) $(PEERS_STAMP)
	$(PY) tests/conformance/run.py $(ARGS)

# Builds the wheel, installs it into a new temporary venv and runs `trio-mcp --version`
# and `trio-mcp tools` from there on a config file (.ci/wheel-check).
wheel-check:
	.ci/wheel-check $(PYTHON)

BENCH_STAMP := $(VENV)/.installed-bench
DOCS_STAMP := $(VENV)/.installed-docs

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

# Results go to benchmarks/results/ (untracked); ARGS="--update-docs" also refreshes
# the committed docs page. ARGS="--quick" is a smoke run.
bench: $(BENCH_STAMP) $(PEERS_STAMP)
	$(PY) -m benchmarks $(ARGS)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

demo: $(STAMP)
	$(PY) examples/demo.py

clean:
	rm -rf $(VENV) $(PEERS)/node_modules tests/conformance/results .pytest_cache .mypy_cache .ruff_cache .coverage site
