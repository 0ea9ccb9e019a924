# worldsmith: `make demo` runs the main job, `make test` passes the tests. Both set up first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= runs/demo
SEED ?= 0

.PHONY: setup test test-slow demo demo-synth lint bench clean

BWRAP_WORKS := bwrap --ro-bind / / --unshare-all true 2>/dev/null
BWRAP_NOTE := note: bubblewrap (bwrap) does not work here, so validate, synth and audit env FILE refuse \
	untrusted programs. Install it (sudo apt-get install bubblewrap; it also needs unprivileged user \
	namespaces), or accept the risk per command with --unsafe-no-isolation (docs/sandbox.md).

# untrusted programs run in bubblewrap: installed here when root with apt-get, otherwise a note (never fails)
setup: $(STAMP)
	@if $(BWRAP_WORKS); then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && ! command -v bwrap >/dev/null 2>&1; then \
	  echo "installing bubblewrap with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) >/dev/null 2>&1 || true; \
	  if $(BWRAP_WORKS); then echo "bubblewrap works"; else echo "$(BWRAP_NOTE)"; fi; \
	else echo "$(BWRAP_NOTE)"; fi
	@# headless chromium checks `worldsmith report` pages in the tests (they skip without it)
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || true; \
	fi

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
