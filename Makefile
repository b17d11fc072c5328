# cifarae: one-command set-up, training, evaluation and tests.  `make help` lists the targets.
SHELL := /bin/bash
PYTHON_BASE ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

DATA ?=
RUN ?= runs/default
CONFIG ?=
GPUS ?= 1
PROFILE ?= smoke
OVERRIDES ?=

.DEFAULT_GOAL := help
.PHONY: help venv test lint data pipeline train-ae train-clf evaluate

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the pinned requirements (reused on later calls)

lint: $(STAMP) ## ruff lint + format check
	$(VENV)/bin/ruff check src tests jobs bench
	$(VENV)/bin/ruff format --check src tests jobs bench

test: $(STAMP) lint ## set up, lint, and run the whole test suite
	$(PY) -m pytest -q

data: $(STAMP) ## decode DATA=<source> once into the cache under data/
	$(PY) src/prepare_data.py $(if $(DATA),--data $(DATA),--download --data data)
