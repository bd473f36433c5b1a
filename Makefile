# The course's commands. `make course` runs the course end to end; `make test` runs every test.
# Each target installs what it needs into .venv first (idempotent: re-run only when
# pyproject.toml changes).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch that this course pins for set-up (a CUDA build is gigabytes).
TORCH_SPEC ?= torch==2.13.0
# Tests and grading never touch the network: tests/offline.sh runs them in a network
# namespace with only loopback (falls back to HF_HUB_OFFLINE=1 alone where that is not allowed).
OFFLINE := bash tests/offline.sh
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup course test test-slow lab release grade feedback export bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps $$($(PY) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml','rb'))['tool']['course']['no-deps']))")
	touch $@

course: setup
	$(OFFLINE) $(PY) -m helpers check-data source/02-gpt4o-jsonl/data/training_set.jsonl source/02-gpt4o-jsonl/data/validation_set.jsonl

test: setup
	$(OFFLINE) $(PY) -m pytest -m "not slow"

test-slow: setup
	$(OFFLINE) $(PY) -m pytest -m slow

# Benchmarks (bench/README.md): every ratio against the lab's recipe, measured side by side in one
# run, offline; about 30 minutes on 2 cores. BENCH_LONG=1 runs the issue's full sizes (hours).
# Results: bench/results/*.json; the Performance section is printed at the end
# (again with `$(PY) -m bench.summary`).
BENCH_LONG ?= 0
bench: setup
	BENCH_LONG=$(BENCH_LONG) $(OFFLINE) $(PY) -m bench --keep-going

clean:
	rm -rf $(VENV) .pytest_cache
