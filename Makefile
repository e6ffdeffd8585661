# msphub developer tasks. Quick start on a fresh machine with Python 3.11:
#   make run    # the hub with a built-in sandbox PSA/RMM
#   make test   # lint, type-check, tests
# The virtualenv is created on first use and refreshed when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv run serve test lint typecheck imports pytest bench clean distclean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install msphub with dev tools

run: $(STAMP) ## start the hub with the built-in sandbox (demo)
	$(BIN)/msphub demo

serve: $(STAMP) ## start the API server only (settings from MSPHUB_* / .env)
	$(BIN)/msphub serve

# One recipe, not prerequisites, so the order holds even under `make -j`.
test: $(STAMP) ## ruff, mypy, import contracts, pytest - in this order, stopping at the first failure
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q -ra --durations=20 $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check
	$(BIN)/ruff check .

typecheck: $(STAMP) ## mypy (strict outside tests/)
	$(BIN)/mypy

imports: $(STAMP) ## import-linter contracts (pyproject.toml [tool.importlinter])
	$(BIN)/lint-imports --no-cache

pytest: $(STAMP) ## the test suite (PYTEST_ARGS="-k name" to narrow it)
	$(BIN)/pytest -q -ra $(PYTEST_ARGS)

bench: $(STAMP) ## benchmarks
	$(BIN)/python bench/run.py

clean: ## remove caches and build output (keeps .venv and data/)
	rm -rf build dist .mypy_cache .ruff_cache .pytest_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean ## also remove .venv and the egg-info
	rm -rf $(VENV) *.egg-info
