# worldsmith: `make demo` runs the main job, `make test` passes the tests. Both set up first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= runs/demo
SEED ?= 0

.PHONY: setup test test-slow demo demo-synth lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# the CPU build of torch first, pinned, so no dependency pulls a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -m "not slow" tests

test-slow: setup
	$(BIN)/python -m pytest -m slow tests

demo: setup
	rm -rf $(OUT)
	$(BIN)/worldsmith quickstart --out $(OUT) --seed $(SEED)

demo-synth: setup
	rm -rf runs/synth
	$(BIN)/worldsmith synth configs/synth_corpus.yaml --out runs/synth

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: setup
	@# the peers the benchmarks compare with (TRL, reasoning-gym): the package's bench extra
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/env_throughput.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
