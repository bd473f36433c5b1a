"""Both assignments graded through the real path (sandboxed kernels, the checker process, nbgrader's
gradebook), in one grading run of a temporary copy of the course:

- answers as students write them (tests/answer_variants.py): one submission per wrong kind, with a
  wrong answer in EVERY answer cell at once, scores zero on every test cell, each for its own
  reason (so each cell is judged on its own: one mistake costs one cell); one submission with a
  right answer, written differently from the solution, in every cell scores full marks;
- one forgery submission per assignment: the untouched release plus every trick a student can play
  in their own kernel (event hooks, no tracebacks, a fake checker in sys.modules and an import
  hook, patched libraries and helpers, an input transformer) scores what the untouched release
  scores (zero), and the reasons name the tricks (a trace function, which slows every line of the
  kernel, is graded on the small fixture in tests/test_grading.py);
- the solution runs top to bottom in fast mode without an error in any cell.

The in-process tests of the same answers (every kind) are in tests/test_checks.py."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
import pytest

from autograder import ci_check, grading
from autograder.samples import attacks
from tests import answer_variants as variants
from tests.conftest import REPO

ASSIGNMENTS = {"01-gpt2-imdb": ("gpt2_imdb", variants.GPT2),
               "02-gpt4o-jsonl": ("gpt4o_jsonl", variants.GPT4O)}
WRONG_SUBMISSIONS = 2  # the issue asks for at least two wrong answers per graded cell

pytestmark = [pytest.mark.requires("sandbox"), pytest.mark.timeout(3600)]


def _submission(root: Path, assignment: str, student: str, nb: nbformat.NotebookNode) -> None:
    folder = root / "submitted" / student / assignment
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{ASSIGNMENTS[assignment][0]}.ipynb")
    release = root / "release" / assignment
    for path in release.rglob("*"):
        if path.is_file() and path.suffix != ".ipynb":
            (folder / path.relative_to(release)).parent.mkdir(parents=True, exist_ok=True)
            (folder / path.relative_to(release)).write_bytes(path.read_bytes())


def _with_answers(release_nb: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return nb


def _forgeries(release_nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = copy.deepcopy(release_nb)
    first = next(i for i, c in enumerate(nb.cells)
                 if c.get("metadata", {}).get("nbgrader", {}).get("solution"))
    tricks = [attacks.HOOK_CLEAR, attacks.HOOK_RESULT, attacks.NO_TRACEBACK, attacks.FAKE_CHECKER,
              attacks.PATCHED_LIBS, attacks.TRANSFORMER]
    for offset, code in enumerate(tricks):
        nb.cells.insert(first + offset, nbformat.v4.new_code_cell(code))
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = ci_check.make_copy(REPO, tmp_path_factory.mktemp("answers") / "course")
    grading.release(root, list(ASSIGNMENTS))
    expected: dict[tuple[str, str], dict] = {}
    for assignment, (notebook, table) in ASSIGNMENTS.items():
        release_nb = nbformat.read(root / "release" / assignment / f"{notebook}.ipynb", 4)
        for number in range(WRONG_SUBMISSIONS):
            answers = {a: e["wrong"][number % len(e["wrong"])][1] for a, e in table.items()}
            reasons = {variants.TESTS[a]: e["wrong"][number % len(e["wrong"])][2]
                       for a, e in table.items()}
            student = f"wrong-{number + 1}"
            _submission(root, assignment, student, _with_answers(release_nb, answers))
            expected[(assignment, student)] = {"score": 0, "reasons": reasons}
        answers = {a: e["right"][0] for a, e in table.items()}
        _submission(root, assignment, "right", _with_answers(release_nb, answers))
        expected[(assignment, "right")] = {"score": None}
        _submission(root, assignment, "forger", _forgeries(release_nb))
        expected[(assignment, "forger")] = {"score": 0}
    results = {(r.assignment, r.student): r for r in grading.grade(root, None, jobs=2)}
    return {"root": root, "results": results, "expected": expected}


CASES = [(a, s) for a in ASSIGNMENTS for s in
         [f"wrong-{n + 1}" for n in range(WRONG_SUBMISSIONS)] + ["right", "forger"]]


@pytest.mark.parametrize("assignment, student", CASES)
def test_score_is_the_designed_one(graded: dict, assignment: str, student: str) -> None:
    result = graded["results"][(assignment, student)]
    assert result.status == "graded", result.reasons
    designed = graded["expected"][(assignment, student)]["score"]
    if designed is None:  # full marks
        assert result.auto_score == result.auto_max > 0, result.reasons
        assert all(score == result.cell_max[cell] for cell, score in result.cells.items())
    else:
        assert result.auto_score == designed, result.reasons
        assert all(score == 0 for score in result.cells.values()), result.cells


@pytest.mark.parametrize("assignment, student",
                         [c for c in CASES if c[1].startswith("wrong")])
def test_each_wrong_answer_fails_for_its_own_reason(graded: dict, assignment: str,
                                                    student: str) -> None:
    result = graded["results"][(assignment, student)]
    reasons = "\n".join(result.reasons)
    for test_id, words in graded["expected"][(assignment, student)]["reasons"].items():
        line = next((r for r in result.reasons if f"test {test_id} " in r), None)
        assert line is not None, f"{test_id} has no reason:\n{reasons}"
        assert words in line, f"{test_id}: {line}"


@pytest.mark.parametrize("assignment", list(ASSIGNMENTS))
def test_forgeries_change_nothing_and_are_named(graded: dict, assignment: str) -> None:
    result = graded["results"][(assignment, "forger")]
    reasons = " ".join(result.reasons)
    assert result.auto_score == 0
    # The transformer turns every later cell into `pass`, probes included: nothing is answered,
    # and the checks fail closed.
    assert "could not get an answer" in reasons or "not defined" in reasons, reasons


@pytest.mark.parametrize("assignment", list(ASSIGNMENTS))
def test_a_right_submission_runs_top_to_bottom_in_fast_mode(graded: dict, assignment: str) -> None:
    """Every cell of the right submission runs without an error, the cells after the last test
    included (the source notebook itself: tests/test_checks.py up to its last test, and the CI
    check in tests/test_release.py grades it)."""
    notebook = ASSIGNMENTS[assignment][0]
    path = graded["root"] / "autograded" / "right" / assignment / f"{notebook}.ipynb"
    nb = json.loads(path.read_text())
    text = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        for output in cell["outputs"]:
            assert output["output_type"] != "error", f"{output.get('ename')}: {output.get('evalue')}"
            if output["output_type"] == "stream" and output["name"] == "stdout":
                text.append("".join(output["text"]))
    joined = "\n".join(text)
    assert "mode: fast" in joined or "Mode:    fast" in joined
    if assignment == "01-gpt2-imdb":
        assert "The reloaded model predicts the same as the trained one." in joined
        assert "status: FINISHED" in joined and "eval_accuracy" in joined
    else:
        assert "Base model: gpt-4o-2024-08-06" in joined
        assert "succeeded" in joined
    assert graded["results"][(assignment, "right")].reasons == []
