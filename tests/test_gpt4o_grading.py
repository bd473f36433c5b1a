"""Assignment 02 under real nbgrader, in a temporary copy of the course:

- ``release/02-gpt4o-jsonl`` is exactly what ``nbgrader generate_assignment`` makes of the source
  (notebook and data files) and holds no solution or hidden test;
- the source notebook (the model solution) scores full marks on every autograded cell, having
  run top to bottom against the in-process emulator (its outputs are checked);
- the untouched release notebook scores zero on every autograded cell.

Scores are read from the gradebook (``nbgrader validate`` exits 0 whatever happens). Grading runs
the notebook in fast mode (the grading kernel gets ``NBGRADER_EXECUTION``), with the hidden
checks' fresh in-process emulators."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from tests.test_gpt4o_notebook import check_outputs

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "02-gpt4o-jsonl"
NOTEBOOK = "gpt4o_jsonl.ipynb"
#: The autograded cells and their points (the manually graded answer is not among them).
AUTOGRADED = {
    "test-token-counting": 3,
    "test-token-counts": 2,
    "test-estimate": 2,
    "test-uploads": 2,
    "test-submit": 3,
}


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course with only this assignment, released by nbgrader."""
    from autograder import grading

    root = tmp_path_factory.mktemp("course")
    shutil.copytree(ROOT / "source" / ASSIGNMENT, root / "source" / ASSIGNMENT)
    grading.release(root, [ASSIGNMENT])
    return root


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_committed_release_is_what_generate_assignment_makes(course):
    generated, committed = course / "release" / ASSIGNMENT, ROOT / "release" / ASSIGNMENT
    assert _tree(generated) == _tree(committed), "regenerate: python -m autograder release"
    for name in _tree(generated):
        if name.endswith(".ipynb"):
            assert json.loads((generated / name).read_text()) == json.loads(
                (committed / name).read_text()
            ), f"release/{ASSIGNMENT}/{name} is stale: python -m autograder release"
        else:
            assert filecmp.cmp(generated / name, committed / name, shallow=False), name
    text = (committed / NOTEBOOK).read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "autograder.gpt4o", "BEGIN MARK SCHEME"):
        assert marker not in text


@pytest.mark.slow  # tests/test_release.py's CI check grades every assignment the same way
def test_source_scores_full_and_untouched_release_zero(course):
    from autograder import grading

    submitted = course / "submitted"
    shutil.copytree(course / "source" / ASSIGNMENT, submitted / "model" / ASSIGNMENT)
    shutil.copytree(course / "release" / ASSIGNMENT, submitted / "untouched" / ASSIGNMENT)
    results = {r.student: r for r in grading.grade(course, ASSIGNMENT, jobs=2)}

    model, untouched = results["model"], results["untouched"]
    assert model.status == "graded", model.reasons
    cells = {name.split("/")[-1]: score for name, score in model.cells.items()}
    assert cells == {cell: float(points) for cell, points in AUTOGRADED.items()}, model.reasons
    assert model.auto_score == model.auto_max == sum(AUTOGRADED.values())
    # the model solution ran top to bottom against the in-process emulator, in fast mode
    graded = nbformat.read(course / "autograded" / "model" / ASSIGNMENT / NOTEBOOK, as_version=4)
    text = check_outputs(graded, "emulator")
    assert "the local Azure OpenAI emulator, in this process (fast mode)" in text

    assert untouched.status == "graded", untouched.reasons
    cells = {name.split("/")[-1]: score for name, score in untouched.cells.items()}
    assert cells == dict.fromkeys(AUTOGRADED, 0.0), untouched.reasons
    assert untouched.auto_score == 0
