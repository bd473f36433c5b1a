"""autograder.report on notebooks and rows made here: reasons lead with the root cause and collapse
the cascade, a test cell zeroed for stderr says so, limits are named, language variants make one
row per student (the best counts, with a warning)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from autograder import execute, limits, report


def _cell(source: str, outputs: list, **nbgrader) -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    cell.outputs = outputs
    if nbgrader:
        cell.metadata["nbgrader"] = {"schema_version": 3, "locked": False, **nbgrader}
    return cell


def _error(ename: str, evalue: str = "") -> nbformat.NotebookNode:
    return new_output("error", ename=ename, evalue=evalue, traceback=[])


def _graded(tmp_path: Path, cells: list) -> Path:
    nb = new_notebook(cells=[new_markdown_cell("# task"), *cells])
    nbformat.write(nb, tmp_path / "lab.ipynb")
    return tmp_path


def test_root_cause_first_then_tests_then_the_cascade_collapsed(tmp_path: Path) -> None:
    cells = [
        _cell("import x", []),
        _cell("raise NotImplementedError()", [_error("NotImplementedError")],
              grade_id="answer-1", solution=True, grade=False),
        _cell("check", [_error("CheckFailed", "`f` is not defined: write it in step 1.")],
              grade_id="test-1", grade=True, solution=False, points=2),
        *[_cell(f"use {i}", [_error("NameError", f"name 'v{i}' is not defined")])
          for i in range(14)],
        _cell("check", [_error("CheckFailed", "g raised NotImplementedError")],
              grade_id="test-2", grade=True, solution=False, points=3),
    ]
    reasons = report.notebook_reasons(_graded(tmp_path, cells))
    assert reasons == [
        "lab cell answer-1: NotImplementedError: the answer still has the placeholder",
        "lab test test-1 (2 pts lost): `f` is not defined: write it in step 1.",
        "lab test test-2 (3 pts lost): g raised NotImplementedError",
        "lab: … and 14 later cells that need it",
    ]


def test_a_test_cell_zeroed_for_stderr_says_so_with_its_first_line(tmp_path: Path) -> None:
    stderr = new_output("stream", name="stderr", text="\nUserWarning: something noisy\nmore\n")
    cells = [_cell("check", [stderr], grade_id="t", grade=True, solution=False, points=1)]
    assert report.notebook_reasons(_graded(tmp_path, cells)) == [
        "lab test t: zeroed because it wrote to stderr: UserWarning: something noisy"]
    passed = new_output("stream", name="stdout", text=execute.PASSED + "\n")
    cells = [_cell("check", [passed, stderr], grade_id="t", grade=True, solution=False, points=1)]
    assert report.notebook_reasons(_graded(tmp_path, cells)) == []


def test_limits_and_grader_notes_are_named(tmp_path: Path) -> None:
    low = limits.Limits(memory=1 << 30)
    note = new_output("stream", name="stdout", text=execute.OUTPUT_NOTE.format(
        limit=low.describe("output")))
    cells = [
        _cell("big = bytearray(1 << 40)", [_error("MemoryError", "")]),
        _cell("print(...)", [note]),
        _cell("check", [new_output("stream", name="stdout", text=(
            f"{execute.PASSED}\n{execute.KERNEL_NOTE} (a post_run_cell hook (x)); grading does "
            "not read anything the kernel prints or displays, so this changes no score.\n"))],
              grade_id="t", grade=True, solution=False, points=1),
    ]
    reasons = report.notebook_reasons(_graded(tmp_path, cells), low)
    assert reasons[0] == "lab cell #1: memory limit (1 GiB) reached: MemoryError"
    assert any("output limit (5 MiB) reached" in r for r in reasons)
    assert any("a post_run_cell hook (x)" in r for r in reasons)


def _row(assignment: str, student: str, score: float, status: str = "graded") -> dict:
    return {"assignment": assignment, "student": student, "status": status, "auto_score": score,
            "auto_max": 10, "manual_max": 2, "needs_manual_grade": True, "reasons": []}


def test_language_variants_are_one_row_per_student() -> None:
    rows = report.group_variants([
        _row("01-gpt2-imdb-de", "ada", 7), _row("01-gpt2-imdb", "ada", 4),
        _row("01-gpt2-imdb-zh", "bo", 10),
        _row("02-gpt4o-jsonl", "ada", 3),
    ])
    by_key = {(r["assignment"], r["student"]): r for r in rows}
    assert set(by_key) == {("01-gpt2-imdb", "ada"), ("01-gpt2-imdb", "bo"),
                           ("02-gpt4o-jsonl", "ada")}
    ada = by_key[("01-gpt2-imdb", "ada")]
    assert ada["variant"] == "01-gpt2-imdb-de" and ada["auto_score"] == 7
    assert ada["reasons"][0].startswith("WARNING: several language variants submitted; the best "
                                        "counts (01-gpt2-imdb-de); also graded: 01-gpt2-imdb (4/10)")
    assert by_key[("01-gpt2-imdb", "bo")]["variant"] == "01-gpt2-imdb-zh"
    assert by_key[("01-gpt2-imdb", "bo")]["reasons"] == []
    table = report.summary_table([*rows])
    line = next(ln for ln in table.splitlines() if ln.split()[:2] == ["01-gpt2-imdb", "bo"])
    assert line.split()[2] == "zh" and "missing" not in table


def test_duplicate_ids_are_found_with_their_cells(tmp_path: Path) -> None:
    test = _cell("check", [], grade_id="t-1", grade=True, solution=False, points=1)
    nbformat.write(new_notebook(cells=[test, new_markdown_cell("x"), test]), tmp_path / "a.ipynb")
    (problem,) = report.duplicate_ids(tmp_path)
    assert problem.startswith("a.ipynb has 2 cells with the nbgrader id 't-1' (cells 1, 3)")
