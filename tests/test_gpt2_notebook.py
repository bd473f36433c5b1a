"""Assignment 01 through real nbgrader, in a temporary copy of the course:

- ``release/01-gpt2-imdb`` is exactly what ``nbgrader generate_assignment`` makes of ``source/``,
  and no solution or hidden test survives in it;
- the source notebook is committed clean (no outputs, nbgrader schema 3).

Grading the source (full marks) and the untouched release (zero) is the course CI check
(tests/test_release.py); graded answers of every kind are tests/test_answers.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "01-gpt2-imdb"
NOTEBOOK = "gpt2_imdb.ipynb"
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
           "BEGIN MARK SCHEME", "Model answer (for graders)")


def _nbgrader(course: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from PATH
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    env["NBG_ROOT"] = str(course)
    env.setdefault("MPLBACKEND", "Agg")
    env.pop("COURSE_FAST", None)  # grading turns fast mode on by itself (NBGRADER_EXECUTION)
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], check=False, cwd=course, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A copy of the course with only this assignment, its release regenerated."""
    course = tmp_path_factory.mktemp("course")
    shutil.copy2(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copytree(ROOT / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT,
                    ignore=shutil.ignore_patterns("outputs", ".ipynb_checkpoints", "__pycache__"))
    done = _nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    return course


def test_release_is_what_generate_assignment_makes(course):
    generated = (course / "release" / ASSIGNMENT / NOTEBOOK).read_text(encoding="utf-8")
    committed = ROOT / "release" / ASSIGNMENT / NOTEBOOK
    assert committed.is_file(), f"{committed} is missing: run `make release`"
    assert committed.read_text(encoding="utf-8") == generated, (
        f"{committed} is stale: regenerate it with `nbgrader generate_assignment {ASSIGNMENT} --force`"
    )
    assert sorted(p.name for p in (ROOT / "release" / ASSIGNMENT).iterdir()) == [NOTEBOOK]
    for marker in MARKERS:
        assert marker not in generated, f"{marker!r} survived in the release notebook"


def test_source_is_committed_clean():
    notebook = json.loads((ROOT / "source" / ASSIGNMENT / NOTEBOOK).read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
        meta = cell["metadata"].get("nbgrader")
        if meta:
            assert meta["schema_version"] == 3
            assert ("points" in meta) == bool(meta.get("grade"))
