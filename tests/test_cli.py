"""The instructor's command line, ``python -m autograder COMMAND``, typed as a user types it, on
a copy of the self-test course (tests/fixtures/course): each command's exit code, what it
prints and the files it writes, and clear errors for bad input.

One module-scoped course goes through the loop once: ``release`` (from an empty release/),
``samples`` (a perfect and a partial submission), ``grade`` (both, in the sandbox), ``feedback``,
``export``, ``summary``. ``check`` runs once on a second copy, on a broken assignment.

The self-test assignment's scores, by hand from its notebook: two autograded test cells,
``add-tests`` (2 points) and ``mean-tests`` (1 point), so 3 autograded points; ``explain-answer``
(2) and the task ``risk-task`` (1) are graded by hand, 3 points. The perfect sample passes both
test cells: 3/3. The partial sample fills the first of the two code answers (``add``) and leaves
``mean`` raising NotImplementedError: 2/3."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import copy_fixture_course

STUDENTS = ("sample-partial", "sample-perfect")
SCORES = {"sample-perfect": 3.0, "sample-partial": 2.0}
AUTO_MAX = 3.0


def cli(root: Path, *args: str, venv_on_path: bool = True,
        timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m autograder --root ROOT ARGS`` from another folder, with the environment `make`
    gives it (the virtualenv's bin/ first on PATH, as the Makefile exports it)."""
    env = {k: v for k, v in os.environ.items() if k != "NBG_ROOT"}
    if venv_on_path:
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    else:
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                      if Path(p).resolve() != Path(sys.executable).parent.resolve())
    return subprocess.run([sys.executable, "-m", "autograder", "--root", str(root), *args],
                          cwd=root.parent, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _explain(run: subprocess.CompletedProcess) -> str:
    return f"exit {run.returncode}\n--- stdout\n{run.stdout[-3000:]}\n--- stderr\n{run.stderr[-3000:]}"


def _table_rows(text: str) -> dict[str, list[str]]:
    """The summary table's rows by student: [assignment, student, variant, status, auto, ...]."""
    return {line.split()[1]: line.split() for line in text.splitlines()
            if line.startswith("selftest ")}


def _gradebook_scores(db: Path) -> dict[str, float]:
    """Each student's autograded score, read from nbgrader's gradebook with sqlite3."""
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT student.id, SUM(grade.auto_score) FROM grade "
            "JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
            "JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id "
            "JOIN student ON submitted_assignment.student_id = student.id "
            "GROUP BY student.id").fetchall()
    return {student: float(score or 0) for student, score in rows}


# --------------------------------------------------------------------------- the loop, once

@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = copy_fixture_course(tmp_path_factory.mktemp("cli") / "course")
    shutil.rmtree(root / "release")  # `release` must make it
    runs = {"release": cli(root, "release")}
    runs["samples"] = cli(root, "samples", "selftest", "--kinds", "perfect,partial")
    runs["grade"] = cli(root, "grade", "selftest", "--jobs", "2")
    runs["feedback"] = cli(root, "feedback", "selftest")
    runs["export"] = cli(root, "export", "--to", str(root / "out" / "grades.csv"))
    runs["summary"] = cli(root, "summary")
    return {"root": root, "runs": runs}


needs_sandbox = pytest.mark.requires("sandbox")


@needs_sandbox
def test_release_writes_the_student_version(loop: dict) -> None:
    root, run = loop["root"], loop["runs"]["release"]
    assert run.returncode == 0, _explain(run)
    assert run.stdout.strip() == f"released {root / 'release' / 'selftest'}"
    released = root / "release" / "selftest" / "selftest.ipynb"
    text = released.read_text()
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert "BEGIN MARK SCHEME" not in text
    cells = {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"])
             for c in json.loads(text)["cells"] if "nbgrader" in c["metadata"]}
    assert "return a + b" not in cells["add-answer"]
    assert "raise NotImplementedError()" in cells["add-answer"]
    assert "add(1, 2) should be 3" in cells["add-tests"]  # the visible test stays
    assert "autograder.checker" not in cells["add-tests"]  # the hidden one goes
    with sqlite3.connect(root / "gradebook.db") as con:
        assert con.execute("SELECT name FROM assignment").fetchall() == [("selftest",)]


@needs_sandbox
def test_samples_writes_one_submission_per_kind(loop: dict) -> None:
    root, run = loop["root"], loop["runs"]["samples"]
    assert run.returncode == 0, _explain(run)
    assert run.stdout.strip() == f"selftest: wrote 2 submissions to {root / 'submitted'}"
    assert sorted(p.name for p in (root / "submitted").iterdir()) == list(STUDENTS)
    perfect = (root / "submitted" / "sample-perfect" / "selftest" / "selftest.ipynb").read_text()
    partial = (root / "submitted" / "sample-partial" / "selftest" / "selftest.ipynb").read_text()
    assert "return a + b" in perfect and "math.fsum(values) / len(values)" in perfect
    assert "return a + b" in partial and "math.fsum" not in partial


@needs_sandbox
def test_grade_prints_the_scores_and_records_them(loop: dict) -> None:
    root, run = loop["root"], loop["runs"]["grade"]
    assert run.returncode == 0, _explain(run)
    assert "Traceback" not in run.stderr
    rows = _table_rows(run.stdout)
    assert sorted(rows) == list(STUDENTS), run.stdout
    for student, score in SCORES.items():
        assert rows[student][2:5] == ["en", "graded", f"{score:g}/{AUTO_MAX:g}"], rows[student]
    assert "NotImplementedError" in " ".join(rows["sample-partial"])
    # the gradebook holds the same scores, and each graded notebook is kept
    assert _gradebook_scores(root / "gradebook.db") == SCORES
    for student in STUDENTS:
        assert (root / "autograded" / student / "selftest" / "selftest.ipynb").is_file()
    report = json.loads((root / "autograded" / "grading-report.json").read_text())
    assert {r["student"]: (r["status"], r["auto_score"], r["auto_max"]) for r in report} == {
        s: ("graded", score, AUTO_MAX) for s, score in SCORES.items()}


@needs_sandbox
def test_feedback_writes_html_without_hidden_tests(loop: dict) -> None:
    root, run = loop["root"], loop["runs"]["feedback"]
    assert run.returncode == 0, _explain(run)
    assert run.stdout.strip() == f"2 feedback files under {root / 'feedback'}"
    for student in STUDENTS:
        html = (root / "feedback" / student / "selftest" / "selftest.html").read_text()
        assert "add(1, 2) should be 3" in html
        assert "HIDDEN TESTS" not in html and "autograder.checker" not in html


@needs_sandbox
def test_export_writes_the_grade_csv(loop: dict) -> None:
    root, run = loop["root"], loop["runs"]["export"]
    path = root / "out" / "grades.csv"
    assert run.returncode == 0, _explain(run)
    assert run.stdout.strip() == f"wrote {path}"
    with path.open(newline="") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == list(STUDENTS)
    for student, score in SCORES.items():
        row = rows[student]
        assert (row["assignment"], row["status"]) == ("selftest", "graded")
        assert float(row["auto_score"]) == score and float(row["auto_max"]) == AUTO_MAX
        # the whole assignment: 3 autograded points and 3 to grade by hand
        assert float(row["max_score"]) == AUTO_MAX + 3
    assert "NotImplementedError" in rows["sample-partial"]["reasons"]
    assert rows["sample-perfect"]["reasons"] == ""


@needs_sandbox
def test_summary_repeats_the_last_grading_table(loop: dict) -> None:
    run, graded = loop["runs"]["summary"], loop["runs"]["grade"]
    assert run.returncode == 0, _explain(run)
    assert _table_rows(run.stdout) == _table_rows(graded.stdout)
    assert run.stdout.splitlines()[0].split() == ["assignment", "student", "variant", "status",
                                                  "auto", "manual", "reasons"]


# --------------------------------------------------------------------------- check

@pytest.mark.requires("sandbox")
def test_check_fails_a_leaky_assignment_on_each_broken_condition(tmp_path: Path) -> None:
    """`check leaky` on a copy of the self-test assignment whose release still holds its
    solution: exit 1, one line per condition, ok where the copy is sound. (The whole course
    passing the check is tests/test_release.py's.)"""
    root = copy_fixture_course(tmp_path / "course")
    for folder in ("source", "release"):
        shutil.copytree(root / folder / "selftest", root / folder / "leaky")
    released = root / "release" / "leaky" / "selftest.ipynb"
    nb = json.loads(released.read_text())
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "add-answer":
            cell["source"] = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"
    released.write_text(json.dumps(nb, indent=1))
    run = cli(root, "check", "leaky")
    assert run.returncode == 1, _explain(run)
    lines = {}  # (assignment, condition) -> "ok" or "FAIL", from "ok   leaky: condition: detail"
    for line in run.stdout.splitlines():
        if line.startswith(("ok ", "FAIL ")):
            mark, rest = line.split(None, 1)
            assignment, condition = rest.split(": ")[:2]
            lines[(assignment, condition)] = mark
    assert lines == {
        ("leaky", "release-up-to-date"): "FAIL",
        ("leaky", "no-markers-in-release"): "FAIL",
        ("leaky", "source-scores-full"): "ok",
        ("leaky", "release-scores-zero"): "FAIL",  # the solution left in scores points
    }, run.stdout
    assert "selftest.ipynb:" in run.stdout and "BEGIN SOLUTION" in run.stdout
    assert "1 of 4 checks passed" in run.stderr
    assert not (root / "submitted").exists() and not (root / "gradebook.db").exists(), (
        "check grades in a temporary copy, never in the course itself")


# --------------------------------------------------------------------------- bad input

@pytest.fixture
def course(tmp_path: Path) -> Path:
    return copy_fixture_course(tmp_path / "course")


@pytest.mark.parametrize("command", [
    "release", "grade", "check",
    "feedback",
])
def test_an_unknown_assignment_is_a_clear_error(course: Path, command: str) -> None:
    run = cli(course, command, "no-such-assignment")
    assert run.returncode == 2, _explain(run)
    assert "Traceback" not in run.stderr
    # (check names the temporary copy it works in, not the course's source/)
    assert run.stderr.startswith("error: no assignment 'no-such-assignment' in "), run.stderr
    assert run.stderr.rstrip().endswith("the course has: selftest"), run.stderr


def test_grade_without_submissions_says_where_they_go(course: Path) -> None:
    run = cli(course, "grade")
    assert run.returncode == 0, _explain(run)
    assert run.stdout.strip() == f"nothing to grade: no submission under {course / 'submitted'}"
    assert not list(course.glob("autograded/*/selftest"))


def test_summary_before_any_grading(course: Path) -> None:
    run = cli(course, "summary")
    assert (run.returncode, run.stdout.strip()) == (0, "no grading run yet"), _explain(run)


def test_a_folder_without_a_course_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    run = cli(tmp_path / "empty", "release")
    assert run.returncode == 2, _explain(run)
    assert run.stderr.strip() == f"error: no assignment found under {tmp_path / 'empty' / 'source'}"


def test_no_command_prints_the_usage(course: Path) -> None:
    run = cli(course)
    assert run.returncode == 2
    assert "usage: python -m autograder" in run.stderr and "COMMAND" in run.stderr


def test_samples_of_an_unknown_assignment_is_a_clear_error(course: Path) -> None:
    run = cli(course, "samples", "no-such-assignment")
    assert run.returncode == 2, _explain(run)
    assert "Traceback" not in run.stderr and "no-such-assignment" in run.stderr


def test_samples_with_an_unknown_kind_writes_nothing(course: Path) -> None:
    run = cli(course, "samples", "selftest", "--kinds", "perfect,bogus")
    assert run.returncode == 2, _explain(run)
    assert "Traceback" not in run.stderr and "unknown sample kind 'bogus'" in run.stderr
    assert not (course / "submitted").exists()


def test_export_runs_without_the_virtualenv_on_path(course: Path) -> None:
    run = cli(course, "export", venv_on_path=False)
    assert run.returncode == 0, _explain(run)
    assert (course / "grades.csv").read_text().startswith("assignment,student,variant,status")
