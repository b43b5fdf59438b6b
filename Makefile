# Two commands for a fresh machine (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin
# pytest's exit code 5 ("no tests collected") counts as failure too.
PYTEST := $(BIN)/pytest -ra

.PHONY: install demo study test test-slow lint format report clean-results wheelhouse

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch and torchvision as a matching pair (a CPU torch beside a CUDA torchvision fails at import)
	$(BIN)/pip install -q -c constraints.txt torch torchvision
	# every package that envs/*.yaml pins at its pinned version (constraints.txt)
	$(BIN)/pip install -q -c constraints.txt -e ".[workflow,astra,test,fast-io]"
	touch $@

install: $(VENV)/.installed

## Run the whole demo workflow on the built-in synthetic scans (minutes on 2 CPU cores).
demo: install
	$(BIN)/snakemake --cores $(CORES) --workflow-profile workflow/profiles/default

## The study (README, "What the demo shows"): the workflow with config/study.yaml in its own
## folder ($(STUDY_DIR)/results, logs, benchmarks), then figures, tables, provenance, wall
## times per stage and the criteria copied to $(STUDY_OUT). About 80 min on 2 CPU cores.
## The recipe trains on one thread per job; STUDY_GPU_SLOTS lets that many training jobs
## (which request gpu=1 for when CUDA is there) run side by side, on the CPU or one GPU.
STUDY_CONFIG ?= config/study.yaml
STUDY_DIR ?= study_run
STUDY_OUT ?= docs/study
STUDY_GPU_SLOTS ?= 2
study: install
	# a YAML error or a missing overlay as `file:line: message` (Snakemake names neither)
	$(BIN)/tomosynth check-config $(STUDY_CONFIG)
	mkdir -p $(STUDY_DIR)
	start=$$(date +%s); \
	$(BIN)/snakemake --cores $(CORES) --workflow-profile workflow/profiles/default \
		--resources gpu=$(STUDY_GPU_SLOTS) \
		--configfile $(abspath $(STUDY_CONFIG)) --directory $(STUDY_DIR) && \
	$(BIN)/tomosynth study-report $(STUDY_DIR) $(STUDY_OUT) --wall-s $$(( $$(date +%s) - start )) \
		--recipe $(STUDY_CONFIG)

## Default test suite (fast; no network, no GPU needed).
test: install
	$(PYTEST) -m "not slow"

## Long checks: end-to-end workflow, rerun sets, SLURM submission, slow trainings.
test-slow: install
	$(PYTEST) -m "slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/snakefmt Snakefile workflow/rules

## The project's Python dependencies (torch excluded) as wheels for a GPU node without
## internet: `benchmarks/gpu_check.sh --offline $(WHEELHOUSE)` installs from the folder.
## WHEELHOUSE_PYTHON is the node's Python version (a CUDA PyTorch image: 3.12).
WHEELHOUSE ?= wheelhouse
WHEELHOUSE_PYTHON ?= 3.12
wheelhouse: install
	$(BIN)/python benchmarks/wheelhouse.py $(WHEELHOUSE) --python-version $(WHEELHOUSE_PYTHON)

## HTML report of the finished demo run.
report: install
	$(BIN)/snakemake --report results/report.html

clean-results:
	rm -rf results logs .snakemake $(STUDY_DIR)
