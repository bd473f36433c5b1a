# The course's commands. `make course` runs the course end to end; `make test` runs every test.
# Each target installs what it needs into .venv first (idempotent: re-run only when
# pyproject.toml changes).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch that this course pins for set-up (a CUDA build is gigabytes).
TORCH_SPEC ?= torch==2.13.0
# Tests and grading never touch the network: tests/offline.sh runs them in a network
# namespace with only loopback (falls back to HF_HUB_OFFLINE=1 alone where that is not allowed,
# except under CI=true, where it fails and says what is missing).
OFFLINE := bash tests/offline.sh
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup setup-system course test test-slow lab release grade feedback export student-kit bench bench-gpu clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps $$($(PY) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml','rb'))['tool']['course']['no-deps']))")
	$(PY) -m pip uninstall --quiet --yes $$($(PY) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml','rb'))['tool']['course']['uninstall']))")
	touch $@

# The course end to end, offline: check the course's chat data, then the instructor's loop on a
# temporary copy of the course (release, sample submissions, sandboxed autograde of every
# assignment, feedback, CSV export, the grade table).
course: setup setup-system
	$(OFFLINE) $(PY) -m helpers check-data source/02-gpt4o-jsonl/data/training_set.jsonl source/02-gpt4o-jsonl/data/validation_set.jsonl
	$(OFFLINE) $(PY) -m autograder demo --jobs $(JOBS)

# Three pytest workers (pytest-xdist), each running whole test files: module fixtures (one grading
# run shared by a file's tests) stay whole, and the serial parts of the suite (kernels starting,
# notebooks running cell by cell, emulator jobs polling) overlap. Files go out longest first
# (tests/file_order.py, from tests/durations.json; --no-loadscope-reorder keeps that order), and
# every test process uses one math thread (tests/conftest.py). On the 2-core machine
# (2026-12-04): 2 workers as before 919 s; 3 workers, longest first, one thread 611 s; 4 workers
# no faster (632 s).
TEST_WORKERS ?= 3

test: setup setup-system
	$(OFFLINE) $(PY) -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-slow: setup
	$(OFFLINE) $(PY) -m pytest -m slow

# The instructor's loop (course/instructor.md). Grading runs offline; student code runs in the
# bubblewrap sandbox (autograder/sandbox.py). ASSIGNMENT= limits to one assignment, JOBS= sets
# how many submissions are graded at once, TIMEOUT= the per-cell limit in seconds.
ASSIGNMENT ?=
JOBS ?= 2
TIMEOUT ?=
LAB_PORT ?= 8888
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

release: setup
	$(OFFLINE) $(PY) -m autograder release $(ASSIGNMENT)

grade: setup
	$(OFFLINE) $(PY) -m autograder grade $(ASSIGNMENT) --jobs $(JOBS) $(if $(TIMEOUT),--timeout $(TIMEOUT))

feedback: setup
	$(OFFLINE) $(PY) -m autograder feedback $(ASSIGNMENT)

export: setup
	$(PY) -m autograder export
	$(PY) -m autograder summary

# The students' repository (release notebooks, helpers, course text; no solution, hidden test or
# check): push KIT as the class's Git repository (course/instructor.md).
KIT ?= ../fine-tuning-course-student
student-kit: setup
	$(PY) -m autograder student-kit $(KIT)

# JupyterLab on this course with nbgrader's formgrader and assignment list, on 127.0.0.1 only.
lab: setup
	$(PY) -m jupyter lab --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) --ServerApp.root_dir=$(CURDIR) $(ROOT_FLAG)

# System packages the grading sandbox, the browser test and Spark need (Debian/Ubuntu): bubblewrap,
# chromium, a Java 17+ runtime. Installed only when missing; elsewhere it says what to install.
SYSTEM_NEEDS := bwrap:bubblewrap chromium:chromium java:openjdk-17-jre-headless
setup-system:
	@missing=""; for need in $(SYSTEM_NEEDS); do \
	  command -v $${need%%:*} >/dev/null 2>&1 || missing="$$missing $${need#*:}"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1; then \
	  echo "setup-system: installing$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "setup-system: please install$$missing with your package manager (grading sandbox, browser test, Spark)"; \
	fi

# Benchmarks (bench/README.md): every ratio against the lab's recipe, measured side by side in one
# run, offline; about 20 minutes on 2 idle cores (measured: bench/README.md). BENCH_LONG=1 runs
# the issue's full sizes (hours).
# Results: bench/results/<name>.json, and <name>.long.json for BENCH_LONG=1 (neither overwrites
# the other); the Performance section is printed at the end (again with `$(PY) -m bench.summary`;
# into the README with `--write README.md`).
BENCH_LONG ?= 0
bench: setup
	BENCH_LONG=$(BENCH_LONG) $(OFFLINE) $(PY) -m bench --keep-going

# The GPU path (bench/gpu.py) on a machine with an NVIDIA GPU: assignment 01 with the lab's sizes,
# then the emulator's SmolLM2 backend on CUDA; writes bench/results/gpu.json. Needs a CUDA build
# of torch (the CPU wheel that `make setup` installs sees no GPU).
bench-gpu: setup
	$(OFFLINE) $(PY) -m bench.gpu

clean:
	rm -rf $(VENV) .pytest_cache
