"""Assignment 01 through real nbgrader, in a temporary copy of the course:

- ``release/01-gpt2-imdb`` is exactly what ``nbgrader generate_assignment`` makes of ``source/``,
  and no solution or hidden test survives in it;
- the source notebook, autograded, runs top to bottom in fast mode without an error in any cell
  and scores full marks on every autograded cell;
- the untouched release notebook scores zero on every autograded cell.

Scores come from the gradebook: ``nbgrader validate`` exits 0 even when tests fail."""

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


@pytest.fixture(scope="module")
def graded(course):
    """Autograde the solution (the source notebook) and the untouched release notebook."""
    for student, folder in (("solution", "source"), ("untouched", "release")):
        target = course / "submitted" / student / ASSIGNMENT
        target.mkdir(parents=True)
        shutil.copy2(course / folder / ASSIGNMENT / NOTEBOOK, target / NOTEBOOK)
    done = _nbgrader(course, "autograde", ASSIGNMENT)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    from nbgrader.api import Gradebook

    scores: dict[str, dict[str, tuple]] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in ("solution", "untouched"):
            submission = gradebook.find_submission(ASSIGNMENT, student)
            (notebook,) = submission.notebooks
            scores[student] = {grade.name: (grade.auto_score, grade.max_score, grade.needs_manual_grade)
                               for grade in notebook.grades}
    return course, scores


AUTOGRADED = {"test_tokenize", "test_subsets", "test_model", "test_compute_metrics", "test_trainer"}


def test_source_scores_full_marks_on_every_autograded_cell(graded):
    _, scores = graded
    solution = scores["solution"]
    assert AUTOGRADED <= set(solution)
    for name in AUTOGRADED:
        auto, maximum, _ = solution[name]
        assert auto == maximum > 0, f"{name}: {auto} of {maximum}"
    auto, maximum, manual = solution["padding_answer"]
    assert manual and auto is None and maximum == 2  # graded by hand


def test_untouched_release_scores_zero_on_every_autograded_cell(graded):
    _, scores = graded
    untouched = scores["untouched"]
    assert set(untouched) == set(scores["solution"])
    for name, (auto, maximum, _) in untouched.items():
        assert auto == 0, f"{name}: {auto} of {maximum} for an untouched notebook"


def test_source_runs_top_to_bottom_in_fast_mode(graded):
    course, _ = graded
    notebook = json.loads((course / "autograded" / "solution" / ASSIGNMENT / NOTEBOOK).read_text())
    text = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        assert cell["execution_count"] is not None, f"cell not executed: {cell['source'][:80]}"
        for output in cell["outputs"]:
            assert output["output_type"] != "error", f"{output.get('ename')}: {output.get('evalue')}"
            if output["output_type"] == "stream" and output["name"] == "stdout":
                text.append("".join(output["text"]))
    joined = "\n".join(text)
    assert "mode: fast" in joined and "Fast mode: a tiny randomly initialised GPT-2" in joined
    assert "IMDB from the" in joined
    assert "The reloaded model predicts the same as the trained one." in joined
    assert "status: FINISHED" in joined and "eval_accuracy" in joined
