# cifarae: one-command set-up, training, evaluation and tests.  `make help` lists the targets.
#
#   make pipeline DATA=<path>            jobs/pipeline.yaml's stages here, for PROFILE (default smoke: minutes on a CPU)
#   make train-ae GPUS=4 PROFILE=full    accelerate launch --multi_gpu --num_processes 4 src/train_ae.py ...
#
# Variables:
#   PROFILE    smoke (tiny model, slice of the data, minutes on a CPU) | report (REPORT.md's CPU run) | full (the real recipe)
#   DATA       CIFAR-10: cifar-10-batches-py root, image folder, .tar.gz, or prepared cache .pt.
#              Empty: `make data` downloads it with torchvision into data/ (needs the internet)
#   RUN        pipeline directory (default runs/$(PROFILE)): $(RUN)/ae, $(RUN)/clf-<mode>, $(RUN)/codec
#   CONFIG     YAML config for the training stages (default jobs/configs/$(PROFILE).yaml)
#   GPUS       processes: GPUS>1 runs `accelerate launch --multi_gpu --num_processes $(GPUS)`; on a
#              machine without GPUs, $(GPUS) CPU processes with torchrun instead (it says so)
#   MODE       classifier mode of train-clf: finetune | linear | scratch
#   MODES      classifier modes of the pipeline (default finetune,linear,scratch)
#   CODEC      0 leaves the pipeline's codec stage out
#   OVERRIDES  free-form key=value config overrides, e.g. OVERRIDES="epochs=5 lr=1e-3"
#   EVAL_ARGS  extra src/evaluate.py flags, e.g. EVAL_ARGS="--splits test --no-wandb"
#   IMAGE      Docker image tag for `make docker`
SHELL := /bin/bash
PYTHON_BASE ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

PROFILE ?= smoke
DATA ?=
RUN ?= runs/$(PROFILE)
CONFIG ?=
GPUS ?= 1
MODE ?= finetune
MODES ?= finetune,linear,scratch
CODEC ?= 1
OVERRIDES ?=
IMAGE ?= cifarae:latest
EVAL_ARGS ?=
BENCH_ARGS ?=

SOURCE := $(if $(DATA),$(DATA),data)
TRAIN_CONFIG := $(if $(CONFIG),$(CONFIG),jobs/configs/$(PROFILE).yaml)
LAUNCH := GPUS=$(GPUS) PYTHON=$(PY) bash jobs/launch.sh
EVAL_RUNS ?= $(RUN)/ae $(RUN)/clf-$(MODE)
SHELL_SCRIPTS := jobs/launch.sh jobs/signals.sh experiments/*/*.sh bench/gpu_check.sh slurm/*.sh slurm/stage.sbatch slurm/local/*.sh docker/entrypoint.sh .ci/run

.DEFAULT_GOAL := help
.PHONY: help venv test lint data pipeline train-ae train-clf evaluate report-run report-objectives bench docker check-inputs

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'
	@echo "variables: PROFILE=$(PROFILE) DATA=$(DATA) RUN=$(RUN) CONFIG=$(CONFIG) GPUS=$(GPUS) MODE=$(MODE) OVERRIDES=$(OVERRIDES)"
	@echo "on a Slurm cluster: slurm/pipeline.sh --help, or python jobs/pipeline.py --help (submitit)"

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the pinned requirements (reused on later calls)

lint: $(STAMP) ## ruff lint + format check, shellcheck on the launch scripts, hadolint on the Dockerfile
	$(VENV)/bin/ruff check src tests jobs bench experiments
	$(VENV)/bin/ruff format --check src tests jobs bench experiments
	$(VENV)/bin/shellcheck -x $(SHELL_SCRIPTS)
	$(VENV)/bin/hadolint docker/Dockerfile

test: $(STAMP) lint ## set up, lint, and run the whole test suite
	$(PY) -m pytest -q

data: $(STAMP) ## decode DATA=<source> once into the cache under data/ (no DATA: torchvision download)
	@$(PY) src/prepare_data.py $(if $(DATA),--data $(DATA),--download --data data)

# Fail in one line, before anything starts, when the inputs are missing.
check-inputs:
	@if [ -z "$(DATA)" ] && [ ! -d data/cifar-10-batches-py ]; then \
	  echo "error: no DATA=<CIFAR-10 dir, .tar.gz or cache .pt> given, and no download in data/ (make data)" >&2; exit 2; fi
	@if [ ! -f "$(TRAIN_CONFIG)" ]; then \
	  echo "error: config $(TRAIN_CONFIG) does not exist; use PROFILE=smoke|report|full or CONFIG=<file>" >&2; exit 2; fi

train-ae: $(STAMP) check-inputs ## train the autoencoder into RUN/ae (GPUS, PROFILE, CONFIG, OVERRIDES)
	$(LAUNCH) src/train_ae.py --data $(SOURCE) --out $(RUN)/ae --config $(TRAIN_CONFIG) $(OVERRIDES)

train-clf: $(STAMP) check-inputs ## train the MODE classifier on RUN/ae's backbone into RUN/clf-MODE
	$(LAUNCH) src/train_clf.py --data $(SOURCE) --out $(RUN)/clf-$(MODE) --config $(TRAIN_CONFIG) \
	  --encoder $(RUN)/ae --mode $(MODE) $(OVERRIDES)

evaluate: $(STAMP) check-inputs ## evaluate RUN/ae and RUN/clf-MODE (writes <run>/eval/metrics.json)
	@found=0; for run in $(EVAL_RUNS); do \
	  if [ -d "$$run" ]; then found=1; echo "$(PY) src/evaluate.py --run $$run --data $(SOURCE) $(EVAL_ARGS)"; \
	    $(PY) src/evaluate.py --run "$$run" --data $(SOURCE) $(EVAL_ARGS) || exit $$?; \
	  else echo "evaluate: skipping $$run (not trained)"; fi; done; \
	[ $$found = 1 ] || { echo "error: none of $(EVAL_RUNS) exists; train first (make train-ae)" >&2; exit 2; }

pipeline: $(STAMP) ## set up .venv, then the stages of jobs/pipeline.yaml here: AE -> classifiers, codec -> evaluation
	@# No DATA: download first. With DATA, the AE stage decodes it into the cache (once).
	@$(if $(DATA),,$(PY) src/prepare_data.py --download --data data)
	$(PY) jobs/pipeline.py --local --data $(SOURCE) --run $(RUN) --profile $(PROFILE) $(if $(CONFIG),--config $(CONFIG)) \
	  --modes $(MODES) --gpus $(GPUS) $(if $(filter 0,$(CODEC)),--no-codec) --eval-args="$(EVAL_ARGS)" $(OVERRIDES)

report-run: $(STAMP) ## REPORT.md's figures: one pipeline run of PROFILE=report on Slurm -> outs/{autoencoder,classifier,codec}
	@$(if $(DATA),,echo "error: report-run needs DATA=<CIFAR-10 source>" >&2; exit 2)
	bash experiments/report/run.sh $(DATA)

report-objectives: $(STAMP) ## after report-run: the classifier grid per AE pretraining objective -> outs/objectives
	@$(if $(DATA),,echo "error: report-objectives needs DATA=<CIFAR-10 source>" >&2; exit 2)
	bash experiments/report/objectives.sh $(DATA)

bench: $(STAMP) ## run the benchmarks (bench/bench.py $(BENCH_ARGS))
	$(PY) bench/bench.py $(if $(DATA),--data $(DATA)) $(BENCH_ARGS)

docker: ## build the CUDA image IMAGE (default cifarae:latest) from docker/Dockerfile
	docker build -f docker/Dockerfile -t $(IMAGE) .
