# kioskmatch — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ONCE ?=

.PHONY: install demo test lint typecheck train protocol-docs benchmarks clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## install: create .venv with everything to run the system, its tests and benchmarks
install: $(STAMP)

## demo: run the whole system on this machine (ONCE=1 exits after one appraisal)
demo: $(STAMP)
	$(BIN)/kioskmatch demo $(if $(ONCE),--once,)

## test: lint, type-check and run the whole test suite
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy .

## train: reproduce the shipped TFLite models from the data (installs TensorFlow in .venv-train)
train:
	@test -x .venv-train/bin/python || $(PYTHON) -m venv .venv-train
	.venv-train/bin/python -m pip install --quiet --upgrade pip
	.venv-train/bin/python -m pip install --quiet -e '.[train]'
	.venv-train/bin/python -m models.training

protocol-docs: $(STAMP)
	$(BIN)/kioskmatch protocol docs > docs/protocol.md

## benchmarks: every benchmark (a quick run where the script offers one)
benchmarks: $(STAMP)
	@for b in benchmarks/[!_]*.py; do \
	  q=$$(grep -q -- '"--quick"' $$b && echo --quick); \
	  echo "== $$b $$q"; $(BIN)/python $$b $$q || exit 1; \
	done

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
