"""``python -m autograder student-kit DIR``: the students' repository, built from this one.

This repository is the instructor's (private): it holds the solutions (``source/``), the checks
and reference answers (``autograder/``), the tests. Students get a separate repository, the
*kit*, that an instructor pushes as the class's Git repository. It holds:

- ``release/``: the release notebooks of every assignment, in every language, with their data;
- ``helpers/``: the package the notebooks import, as an installable distribution of its own
  (``pyproject.toml`` names it ``fine-tuning-course-student``), without the reference answers
  of any graded task (those live in ``autograder.reference``, which the kit does not hold);
- ``environment.yml`` and ``pyproject.toml`` (the same pinned dependencies, minus the
  instructor's tools);
- a ``Makefile`` with ``setup``, ``lab`` and ``check`` (a fast-mode self-check of the set-up);
- ``README.md``, built from ``course/student.md``, and the course text (``course/``: syllabus,
  readings in three languages, the student and Databricks guides);
- the notebooks' first cell installs the kit on Databricks (``helpers.databricks.INSTALL_CELL``
  finds the kit's ``pyproject.toml``).

It holds no solution, hidden test, mark scheme, ``autograder``, ``source/`` or reference answer;
:func:`audit` proves it on every build (and the tests on every run): a kit that would leak one is
not written.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import tomllib
from pathlib import Path

#: Dependencies of this repository that students do not need (instructor tools).
INSTRUCTOR_ONLY = {"copydetect"}
#: Course text that goes into the kit (course/instructor.md and the translation sources stay).
COURSE_TEXT = ("README.md", "student.md", "databricks.md", "reading")
#: Graded tasks whose reference answer must not be in the kit's helpers (function names).
GRADED_ANSWERS = (
    "num_tokens_from_messages", "num_assistant_tokens_from_messages", "example_token_counts",
    "token_counts", "estimate_epochs_and_cost", "estimate_training", "classification_metrics",
    "compute_metrics", "build_model", "training_arguments", "train_classifier", "load_tokenizer",
    "seed_subsets", "tokenize_batch", "tokenize_dataset", "tokenize_function",
    "upload_training_files", "submit_job",
)
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
           "BEGIN MARK SCHEME", "END MARK SCHEME", "Model answer (for graders)",
           "autograder.checker", "run_here(")


class KitError(RuntimeError):
    """The kit cannot be built (the destination is not empty, or it would leak)."""


def _copy(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", ".ipynb_checkpoints", "outputs", ".course-data", ".emulator",
        "mlruns", "mlflow.db"))


def _pyproject(root: Path) -> str:
    project = tomllib.loads((root / "pyproject.toml").read_text())
    deps = [d for d in project["project"]["dependencies"]
            if re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0].lower() not in INSTRUCTOR_ONLY]
    no_deps = project.get("tool", {}).get("course", {}).get("no-deps", [])
    uninstall = project.get("tool", {}).get("course", {}).get("uninstall", [])
    lines = [
        "[build-system]", 'requires = ["setuptools>=68"]', 'build-backend = "setuptools.build_meta"',
        "", "[project]", 'name = "fine-tuning-course-student"',
        f'version = "{project["project"]["version"]}"',
        ('description = "The student side of the fine-tuning course: the helpers package the '
        'notebooks import."'),
        'readme = "README.md"', f'requires-python = "{project["project"]["requires-python"]}"',
        'license = "MIT"', "dependencies = [",
        *[f'    "{d}",' for d in deps], "]", "", "[tool.course]",
        "# Installed by `make setup` with `pip install --no-deps` (its declared deps are not needed).",
        "no-deps = [" + ", ".join(f'"{d}"' for d in no_deps) + "]",
        "# Uninstalled by `make setup`: optional imports that slow every Jupyter and nbgrader start.",
        "uninstall = [" + ", ".join(f'"{d}"' for d in uninstall) + "]", "",
        "[tool.setuptools.packages.find]", 'include = ["helpers*"]', "",
        "[tool.setuptools.package-data]", '"*" = ["*.json", "*.jsonl", "*.csv", "*.txt", "*.md"]', "",
    ]
    return "\n".join(lines)


def _environment(root: Path) -> str:
    text = (root / "environment.yml").read_text()
    kept = [line for line in text.splitlines()
            if not any(f"- {name}" in line for name in INSTRUCTOR_ONLY)]
    return "\n".join(kept).replace("fine-tuning-course", "fine-tuning-course-student") + "\n"


MAKEFILE = """\
# The student's commands: `make setup` (once), `make lab` (work), `make check` (is the set-up right?).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch (a CUDA build is gigabytes; on a GPU machine install the one you need).
TORCH_SPEC ?= torch==2.13.0
LAB_PORT ?= 8888
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup lab check

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
\ttest -x $(PY) || $(PYTHON) -m venv $(VENV)
\t$(PY) -m pip install --quiet --upgrade pip
\t$(PY) -m pip install --quiet "$(TORCH_SPEC)"
\t$(PY) -m pip install --quiet -e .
\t$(PY) -m pip install --quiet --no-deps $$($(PY) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml','rb'))['tool']['course']['no-deps']))")
\t$(PY) -m pip uninstall --quiet --yes $$($(PY) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml','rb'))['tool']['course']['uninstall']))")
\ttouch $@

# JupyterLab on 127.0.0.1 with nbgrader's assignment list and Validate button.
lab: setup
\t$(PY) -m jupyter lab --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) --ServerApp.root_dir=$(CURDIR) $(ROOT_FLAG)

# A fast-mode self-check: every offline asset resolves, and every release notebook runs up to
# its first answer cell (what the course gives you works; the answers are yours).
check: setup
\tCOURSE_FAST=1 $(PY) -m helpers selfcheck release
"""

GITIGNORE = """.venv/
__pycache__/
*.pyc
.ipynb_checkpoints/
*.egg-info/
build/
outputs/
mlruns/
mlflow.db
.course-data/
.emulator/
"""


def _readme(root: Path) -> str:
    text = (root / "course" / "student.md").read_text()
    head = ("# Fine-tuning language models: your course repository\n\n"
            "```bash\nmake setup   # once: a Python environment in .venv with everything the "
            "notebooks use\nmake lab     # JupyterLab; open release/<assignment>/\n"
            "make check   # is the set-up right? (fast mode, a minute)\n```\n\n")
    return head + text.split("\n", 1)[1] if text.startswith("# ") else head + text


def build(root: Path, dest: Path, *, force: bool = False) -> Path:
    """Write the kit of the course at ``root`` into ``dest`` and audit it; returns ``dest``."""
    root, dest = Path(root).resolve(), Path(dest).resolve()
    if dest == root or root in dest.parents:
        raise KitError(f"{dest} is inside the course repository: build the kit outside it (the "
                       "kit is a repository of its own)")
    if dest.exists() and any(dest.iterdir()):
        if not force:
            raise KitError(f"{dest} is not empty: choose an empty folder (or --force to replace "
                           "its contents)")
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    release = root / "release"
    if not release.is_dir() or not any(release.glob("*/*.ipynb")):
        raise KitError(f"{release} holds no notebook: run `python -m autograder release` first")
    _copy(release, dest / "release")
    _copy(root / "helpers", dest / "helpers")
    for name in COURSE_TEXT:
        src = root / "course" / name
        if src.is_dir():
            _copy(src, dest / "course" / name)
        elif src.is_file():
            (dest / "course").mkdir(exist_ok=True)
            shutil.copy2(src, dest / "course" / name)
    (dest / "pyproject.toml").write_text(_pyproject(root))
    (dest / "environment.yml").write_text(_environment(root))
    (dest / "Makefile").write_text(MAKEFILE)
    (dest / ".gitignore").write_text(GITIGNORE)
    (dest / "README.md").write_text(_readme(root))
    problems = audit(dest, root)
    if problems:
        shutil.rmtree(dest)
        raise KitError("the kit would leak instructor material, so it was not written:\n  "
                       + "\n  ".join(problems[:20]))
    return dest


def _normal(line: str) -> str:
    return line.strip().rstrip(",")


def _code_lines(text: str) -> list[str]:
    return [_normal(line) for line in text.splitlines()
            if _normal(line) and not _normal(line).startswith("#")]


def _windows(lines: list[str], size: int = 3) -> set[tuple[str, ...]]:
    return {tuple(lines[i:i + size]) for i in range(len(lines) - size + 1)}


def _solution_windows(root: Path) -> set[tuple[str, ...]]:
    """Every three consecutive lines of a source notebook's solutions (and mark schemes), except
    those the release itself shows: a kit file holding one holds a piece of a solution. Single
    lines are not enough evidence (``for key, value in message.items():`` is everywhere)."""
    windows: set[tuple[str, ...]] = set()
    shown: set[tuple[str, ...]] = set()
    for path in (root / "source").glob("*/*.ipynb"):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
            source = "".join(cell["source"])
            if meta.get("solution") and cell["cell_type"] == "markdown":
                windows |= _windows(_code_lines(source))
            elif meta.get("solution"):
                region, inside = [], False
                for line in source.splitlines():
                    if "BEGIN SOLUTION" in line:
                        inside = True
                    elif "END SOLUTION" in line:
                        inside = False
                    elif inside:
                        region.append(line)
                windows |= _windows(_code_lines("\n".join(region)))
    for path in (root / "release").glob("*/*.ipynb"):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            shown |= _windows(_code_lines("".join(cell["source"])))
    return windows - shown


def audit(kit: Path, root: Path) -> list[str]:
    """Everything in ``kit`` that must not be there: ``autograder`` or ``source/``, a marker, a
    line of a solution or of a mark scheme, a reference answer in ``helpers``."""
    problems = []
    for forbidden in ("autograder", "source", "tests", "bench"):
        if (kit / forbidden).exists():
            problems.append(f"{forbidden}/ is in the kit")
    solutions = _solution_windows(root)
    for path in sorted(p for p in kit.rglob("*") if p.is_file()):
        rel = path.relative_to(kit)
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for marker in MARKERS:
            if marker in text:
                problems.append(f"{rel}: holds {marker!r}")
        if path.suffix in {".py", ".ipynb", ".md", ".txt", ".yaml", ".yml"}:
            lines = _code_lines(text)
            if path.suffix == ".ipynb":
                lines = _code_lines("\n".join("".join(c.get("source", ""))
                                              for c in json.loads(text).get("cells", [])))
            leaked = _windows(lines) & solutions
            if leaked:
                problems.append(f"{rel}: holds a solution: {' / '.join(min(leaked))[:90]!r}")
        if path.suffix == ".py" and rel.parts[0] == "helpers":
            try:
                tree = ast.parse(text)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and \
                        node.name in GRADED_ANSWERS:
                    problems.append(f"{rel}: defines {node.name}(), a graded task's answer")
    return problems
