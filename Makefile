# The two commands of the quick start: `make run` (the default pipeline) and `make test` (the test suite).
# Both create or refresh .venv themselves.
#
# torch: the CPU build by default. CUDA users: `make run TORCH_SPEC="torch==2.13.0" \
#   TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu128"` (or install torch into .venv yourself
#   and pass TORCH_SPEC=skip).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
CORES ?= all
BIN := $(VENV)/bin
# Offline force-field weights: where ../shared/mlff/torchani exists (this workplace, CI), torchani reads them
# from there; elsewhere torchani downloads its weights on first use.
SHARED_ANI := $(abspath ../shared/mlff/torchani)
ifneq ($(wildcard $(SHARED_ANI)),)
export TORCHANI_DATA_DIR ?= $(SHARED_ANI)
endif
SHARED_AIMNET2 := $(abspath ../shared/mlff/aimnet2/aimnet2_wb97m-d3_ens.jpt)
ifneq ($(wildcard $(SHARED_AIMNET2)),)
export ELIGN_AIMNET2_MODEL ?= $(SHARED_AIMNET2)
endif
STAMP := $(VENV)/.elign-installed

.PHONY: setup run test lint format schema clean-results

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if [ "$(TORCH_SPEC)" != "skip" ]; then $(BIN)/pip install -q $(TORCH_INDEX) "$(TORCH_SPEC)"; fi
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	PATH="$(abspath $(BIN)):$$PATH" snakemake --cores $(CORES) --workflow-profile workflow/profiles/default

# Static checks first (seconds): the layer contract (pyproject.toml [tool.importlinter]), ruff's lint and
# format, snakefmt; then the tests, the workflow lint and a dry run.
test: setup
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	PATH="$(abspath $(BIN)):$$PATH" pytest -q
	PATH="$(abspath $(BIN)):$$PATH" snakemake --lint
	PATH="$(abspath $(BIN)):$$PATH" snakemake -n --cores 1 --quiet rules

# The static checks alone, and the formatters applied (what .pre-commit-config.yaml runs on each commit).
lint: setup
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/snakefmt Snakefile workflow/rules

schema: setup
	$(BIN)/elign config-schema

clean-results:
	rm -rf results logs benchmarks .snakemake
