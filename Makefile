# Set-up and everyday commands. `make train` and `make test` set everything up first (idempotent).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A GPU user can choose another build, e.g. make install TORCH_SPEC="torch==2.5.1 --index-url ..."
TORCH_SPEC ?= torch==2.13.0
# The verified ISBI 2012 and VNC 2013 copies beside the project are used as mirrors when they exist.
SHARED_ISBI := $(abspath ../shared/data/isbi2012)
ifneq ($(wildcard $(SHARED_ISBI)/train-volume.tif),)
export ISBI2012_MIRROR ?= $(SHARED_ISBI)
endif
SHARED_VNC := $(abspath ../shared/data/vnc2013)
ifneq ($(wildcard $(SHARED_VNC)/train-volume.tif),)
export VNC2013_MIRROR ?= $(SHARED_VNC)
endif
ARGS ?=
# pytest processes (pytest-xdist), each given whole test files; most tests wait on a subprocess that imports, so
# two keep two cores busy (docs/speed.md). TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
BENCH_TRAIN_ARGS ?=
BENCH_PREDICT_ARGS ?=
BENCH_VOLUME_ARGS ?=
BENCH_LAZY_ARGS ?=

.PHONY: install train test lint format bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

train: install
	$(BIN)/python -m src.train experiment=isbi2012_cpu $(ARGS)

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

format: install
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

# Benchmarks (not tests): tables in benchmarks/results/ (docs/speed.md reads them). MONAI is installed here
# only, never for the runtime. Options: BENCH_TRAIN_ARGS="--compile false", BENCH_PREDICT_ARGS="--slices 4".
bench: install
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/train_throughput.py $(BENCH_TRAIN_ARGS)
	$(BIN)/python benchmarks/predict_vs_monai.py $(BENCH_PREDICT_ARGS)
	$(BIN)/python benchmarks/blockwise_volume.py $(BENCH_VOLUME_ARGS)
	$(BIN)/python benchmarks/lazy_training.py $(BENCH_LAZY_ARGS)

clean:
	rm -rf logs .pytest_cache .ruff_cache
