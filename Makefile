# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench install install-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	./scripts/system-deps.sh test
	$(BIN)/pip install -q -e '.[test]'

## Install lanner and run it with its embedded defaults (forward proxy on 127.0.0.1:8080).
run: install
	$(BIN)/lanner run

## Install everything the tests need, lint, type-check and run the whole suite.
test: install-test lint
	$(BIN)/pytest -q

lint:
	$(BIN)/ruff check src tests
	$(BIN)/mypy

## Benchmark lanner against a direct connection and its peers (see docs/BENCHMARKS.md).
bench: install
	./bench/run.sh
