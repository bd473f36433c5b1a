"""Every test cell of every source notebook is decided by a check of the checker, and the hidden
tests say which: the block is one call of ``autograder.checker.run_here(notebook, grade_id)`` with
the cell's own notebook and grade id (what an instructor's own run of the source notebook
executes), and every registered check belongs to a test cell (no orphan, no cell without one)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from autograder import checker

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(REPO.glob("source/*/*.ipynb")) + sorted(
    REPO.glob("tests/fixtures/course/source/*/*.ipynb"))
CALL = re.compile(r'^autograder\.checker\.run_here\("([^"]+)", "([^"]+)"\)$')


def _test_cells(path: Path) -> list[tuple[str, str]]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    out = []
    for cell in cells:
        meta = cell["metadata"].get("nbgrader") or {}
        if cell["cell_type"] == "code" and meta.get("grade") and not meta.get("solution"):
            out.append((meta["grade_id"], "".join(cell["source"])))
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_each_test_cell_names_its_own_check(path: Path) -> None:
    notebook = path.stem
    checks = checker.checks_for(notebook)
    cells = _test_cells(path)
    assert cells, f"{path} has no test cell"
    for grade_id, source in cells:
        hidden = source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
        lines = [ln.strip() for ln in hidden.strip().splitlines() if ln.strip()]
        assert lines[0] == "import autograder.checker", (grade_id, lines)
        match = CALL.match(lines[-1])
        assert len(lines) == 2 and match, (grade_id, lines)
        assert match.groups() == (notebook, grade_id)
        assert grade_id in checks, f"no check for {notebook}/{grade_id}"
    assert set(checks) == {grade_id for grade_id, _ in cells}, "a check without a test cell"


def test_every_notebook_with_checks_is_in_the_course() -> None:
    names = {p.stem for p in NOTEBOOKS}
    assert set(checker.CHECK_MODULES) <= names
