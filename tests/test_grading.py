"""The grading loop end to end on the self-test course: real `nbgrader autograde` processes, real
kernels in the bubblewrap sandbox, every test cell decided by the checker process, scores read
back from the gradebook.

One module-scoped course is graded in three runs: the honest and robustness samples; then every
attack (forgeries from inside the kernel, metadata edits, exits, attempts on the gradebook, other
submissions, the network); then the resource abuses under low limits. Each attack sample is an
honest base plus the attack: its score must equal the honest score of the same answers
(``samples.designed_score``), its reasons must name what happened, and no other student's grade or
submission may change."""

from __future__ import annotations

import csv
import hashlib
import socket
import sqlite3
import threading
from pathlib import Path

import nbformat
import pytest

from autograder import grading, samples
from tests.conftest import copy_fixture_course

FIRST = ["perfect", "partial", "empty", "syntax", "renamed", "missing", "stale"]
ATTACKS = ["loop", "crash", "gradebook", "peek", "tamper", "socket", *samples.FORGERIES,
           "duplicate", "deleted"]
RESOURCES = list(samples.RESOURCES)
TIMEOUT = 6  # per-cell seconds: the fixture's cells take milliseconds
#: Low limits for the resource run, so each abuse reaches its limit in seconds (the CPU limit
#: leaves the kernel's own start-up, 2-3 s of CPU on a slow 2-core machine, well inside it).
LOW_LIMITS = ("memory=1500M,processes=48,cpu_seconds=10,workdir=16M,tmp=32M,file_size=64M,"
              "output=256K")

pytestmark = pytest.mark.requires("sandbox")


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _grade_rows(db: Path, students: list[str]) -> list[tuple]:
    marks = ",".join("?" * len(students))
    with sqlite3.connect(db) as con:
        return con.execute(
            "SELECT student.id, grade.auto_score, grade.manual_score FROM grade "
            "JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
            "JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id "
            f"JOIN student ON submitted_assignment.student_id = student.id WHERE student.id IN ({marks}) "
            "ORDER BY student.id, grade.id", students).fetchall()


class Listener:
    """A TCP server on the grader's loopback that records every connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = copy_fixture_course(tmp_path_factory.mktemp("grading") / "course")
    listener = Listener()
    try:
        kinds = [k for k in FIRST if k != "stale"]
        samples.write_samples(root, "selftest", kinds)
        samples.write_samples(root, "selftest", ["perfect"], prefix="stale-")
        (root / "submitted" / "stale-perfect").rename(root / "submitted" / "stale")
        samples.write_samples(root, "selftest", ATTACKS, target=("127.0.0.1", listener.port))
        samples.write_samples(root, "selftest", RESOURCES)
        first = {r.student: r for r in grading.grade(root, "selftest", jobs=2, timeout=TIMEOUT,
                                                      students=FIRST)}
        db = root / "gradebook.db"
        rows_before = _grade_rows(db, FIRST)
        submitted_before = _tree_digest(root / "submitted")
        attacks = {r.student: r for r in grading.grade(root, "selftest", jobs=2, timeout=TIMEOUT,
                                                        students=ATTACKS)}
        mp = pytest.MonkeyPatch()
        mp.setenv("AUTOGRADER_LIMITS", LOW_LIMITS)
        try:
            resources = {r.student: r for r in grading.grade(root, "selftest", jobs=2, timeout=30,
                                                              students=RESOURCES)}
        finally:
            mp.undo()
        rows_after = _grade_rows(db, FIRST)
        submitted_after = _tree_digest(root / "submitted")
    finally:
        listener.close()
    return {"root": root, "results": {**first, **attacks, **resources},
            "rows": (rows_before, rows_after),
            "submitted": (submitted_before, submitted_after), "connections": listener.connections}


def _result(graded: dict, student: str) -> grading.SubmissionResult:
    return graded["results"][student]


def _designed(graded: dict, kind: str) -> float | None:
    root = graded["root"]
    release = nbformat.read(root / "release" / "selftest" / "selftest.ipynb", 4)
    source = nbformat.read(root / "source" / "selftest" / "selftest.ipynb", 4)
    return samples.designed_score(kind, release, source)


@pytest.mark.parametrize("student, score", [
    ("perfect", 3), ("partial", 2), ("empty", 0), ("syntax", 1), ("renamed", 0), ("missing", 0),
    ("loop", 1), ("crash", 0), ("gradebook", 3), ("peek", 3), ("tamper", 1), ("socket", 3),
])
def test_exact_autograded_scores(graded: dict, student: str, score: float) -> None:
    result = _result(graded, student)
    assert result.status == "graded", result.reasons
    assert (result.auto_score, result.auto_max) == (score, 3), result.reasons
    assert _designed(graded, student) == score


@pytest.mark.parametrize("kind", [*samples.FORGERIES, *RESOURCES, "deleted"])
def test_an_attack_scores_what_its_honest_answers_score(graded: dict, kind: str) -> None:
    result = _result(graded, kind)
    assert result.status == "graded", result.reasons
    assert result.auto_score == _designed(graded, kind), result.reasons


@pytest.mark.parametrize("student, expected", [
    ("syntax", "cell add-answer: SyntaxError"),
    ("renamed", "notebook selftest.ipynb missing (submitted my_selftest.ipynb: renamed?)"),
    ("missing", "notebook selftest.ipynb missing: scores zero"),
    ("loop", "cell add-answer: timed out (per-cell limit) and was interrupted"),
    ("crash", "DeadKernelError: the kernel died while running this cell"),
    ("crash", "later code cells not run (dead kernel)"),
    ("gradebook", "FileNotFoundError: attack blocked: no gradebook in reach"),
    ("peek", "FileNotFoundError: attack blocked: no other notebook in reach"),
    ("tamper", "cell add-tests was edited: restored from the source"),
    ("socket", "[Errno"),
    ("hook-clear", "a post_run_cell hook (_clear)"),
    ("hook-result", "a pre_run_cell hook (_score)"),
    ("no-traceback", "IPython's showtraceback replaced"),
    ("transformer", "could not get an answer from your notebook's kernel"),
    ("fake-checker", "an import hook (sys.meta_path)"),
    ("fake-checker", "builtins.__import__ replaced"),
    ("patched-libs", "patched library functions: math.isclose"),
    ("always-equal", "returned a __main__._Always; return a number"),
    # tracing every line makes the kernel crawl: it is named when a probe gets through, else the
    # cells time out; either way the score is the honest one (test above)
    ("settrace", ("a trace function (sys.settrace)", "timed out (per-cell limit)")),
    ("exit", "the kernel died while running this cell"),
    ("metadata", "cell add-tests had its points changed: restored from the source"),
    ("metadata", "cell mean-tests had its lock changed: restored from the source"),
    ("cross", "PermissionError: attack blocked"),
    ("duplicate", "has 2 cells with the nbgrader id 'add-tests'"),
    ("deleted", "cell add-tests was deleted: put back from the source and graded"),
    ("memory", "memory limit (1.46 GiB) reached"),
    ("fork", "processes limit (48 processes and threads) reached"),
    ("threads", "processes limit (48 processes and threads) reached"),
    ("cpu", "CPU time limit (10 s of CPU time) reached: the kernel was stopped"),
    ("disk", "No space left on device"),
    ("tmp", "No space left on device"),
    ("filesize", "file size limit (64 MiB) reached"),
    ("output", "output limit (256 KiB) reached"),
])
def test_reason_in_summary(graded: dict, student: str, expected: str | tuple[str, ...]) -> None:
    options = (expected,) if isinstance(expected, str) else expected
    result = _result(graded, student)
    assert any(o in reason for reason in result.reasons for o in options), result.reasons
    table = grading.summary_table(graded["results"].values())
    line = next(line for line in table.splitlines() if f"  {student} " in line)
    assert any(o in line for o in options)


def test_honest_samples_have_no_reason_but_their_failing_tests(graded: dict) -> None:
    assert _result(graded, "perfect").reasons == []
    reasons = _result(graded, "partial").reasons
    assert reasons[0].startswith("selftest test mean-tests (1 pts lost): mean([1, 2, 3]) raised "
                                 "NotImplementedError"), reasons
    # The manually graded answer and the task wait for the instructor.
    assert _result(graded, "perfect").needs_manual_grade
    assert _result(graded, "perfect").manual_max == 3


def test_a_duplicated_grade_id_fails_that_submission_alone(graded: dict) -> None:
    assert _result(graded, "duplicate").status == "failed"
    assert all(_result(graded, k).status == "graded" for k in FIRST if k != "stale")


def test_attacks_change_no_grade_and_no_submission(graded: dict) -> None:
    before, after = graded["rows"]
    assert before and before == after
    sub_before, sub_after = graded["submitted"]
    assert sub_before == sub_after
    # The gradebook attack would have set manual scores to 1000.
    with sqlite3.connect(graded["root"] / "gradebook.db") as con:
        assert con.execute("SELECT COUNT(*) FROM grade WHERE manual_score >= 1000").fetchone() == (0,)


def test_socket_from_a_submission_fails(graded: dict) -> None:
    assert graded["connections"] == 0
    reasons = " ".join(_result(graded, "socket").reasons)
    assert "network reached" not in reasons
    assert "ConnectionRefusedError" in reasons or "Network is unreachable" in reasons


def test_failed_regrade_leaves_no_stale_score(graded: dict) -> None:
    root = graded["root"]
    assert _result(graded, "stale").auto_score == 3
    (root / "submitted" / "stale" / "selftest" / "selftest.ipynb").write_text("{not a notebook")
    (result,) = grading.grade(root, "selftest", students=["stale"], timeout=TIMEOUT)
    assert result.status == "failed"
    assert any("autograde failed" in r for r in result.reasons), result.reasons
    assert _grade_rows(root / "gradebook.db", ["stale"]) == []
    assert not (root / "autograded" / "stale").joinpath("selftest").exists()


def test_feedback_hides_hidden_tests_and_export_has_every_student(graded: dict) -> None:
    root = graded["root"]
    files = grading.feedback(root, "selftest")
    perfect = root / "feedback" / "perfect" / "selftest" / "selftest.html"
    assert perfect in files
    html = perfect.read_text()
    assert "add(1, 2) should be 3" in html  # the visible test is shown
    assert "run_here" not in html and "HIDDEN TESTS" not in html
    assert "Passed: the grader checked this cell" in html
    path = grading.export(root, root / "grades.csv")
    rows = {r["student"]: r for r in csv.DictReader(path.open())}
    assert float(rows["perfect"]["auto_score"]) == 3
    assert float(rows["partial"]["auto_score"]) == 2
    assert rows["loop"]["reasons"].startswith("selftest cell add-answer: timed out")


def test_feedback_survives_nbgrader_markers_in_an_answer(graded: dict) -> None:
    root = graded["root"]
    folder = root / "submitted" / "markers" / "selftest"
    folder.mkdir(parents=True)
    nb = nbformat.read(root / "submitted" / "perfect" / "selftest" / "selftest.ipynb", 4)
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                  == "add-answer")
    answer.source += "\n# ### BEGIN HIDDEN TESTS\n# ### BEGIN SOLUTION\n"
    explain = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                   == "explain-answer")
    explain.source = "### BEGIN HIDDEN TESTS\nmy words ### END SOLUTION"
    nbformat.write(nb, folder / "selftest.ipynb")
    (result,) = grading.grade(root, "selftest", students=["markers"], timeout=TIMEOUT)
    assert result.auto_score == 3, result.reasons
    files = grading.feedback(root, "selftest")
    page = root / "feedback" / "markers" / "selftest" / "selftest.html"
    assert page in files and "my words" in page.read_text()


def test_without_sandbox_grading_warns_loudly(graded: dict, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("AUTOGRADER_SANDBOX", "off")
    (result,) = grading.grade(graded["root"], "selftest", students=["perfect"], timeout=TIMEOUT)
    assert result.auto_score == 3
    assert "graded WITHOUT a sandbox (see the warning above)" in result.reasons
    assert "WARNING: GRADING WITHOUT A SANDBOX: AUTOGRADER_SANDBOX=off" in capsys.readouterr().err


def test_command_line_summary_export_and_root_after_the_command(graded: dict, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    from autograder.__main__ import main

    root = str(graded["root"])
    assert main(["--root", root, "summary"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["assignment", "student", "variant", "status", "auto",
                                             "manual", "reasons"]
    assert "selftest    perfect" in table
    assert main(["summary", "--root", root]) == 0
    assert capsys.readouterr().out == table
    assert main(["--root", root, "export", "--to", str(tmp_path / "g.csv")]) == 0
    assert (tmp_path / "g.csv").read_text().startswith("assignment,student,variant,status")
    assert main(["grade", "no-such-assignment", "--root", root]) == 2
    assert "no assignment 'no-such-assignment'" in capsys.readouterr().err


def test_kernels_graded_at_once_share_the_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``jobs=2`` each kernel's math libraries get half the cores (1 to 4 threads), through
    nbgrader's forked run and the sandbox; the setting itself does not reach the kernel."""
    from autograder import sandbox

    for name in sandbox.THREAD_ENV:  # the suite sets one thread; the instructor here sets none
        monkeypatch.delenv(name, raising=False)
    root = copy_fixture_course(tmp_path / "course")
    grading.release(root, ["selftest"])
    release = nbformat.read(root / "release" / "selftest" / "selftest.ipynb", 4)
    release.cells.insert(1, nbformat.v4.new_code_cell(
        "import os\nprint('threads', [os.environ.get(k) for k in "
        f"{list(sandbox.THREAD_ENV)!r}], os.environ.get({sandbox.KERNEL_THREADS_ENV!r}))"))
    for student in ("one", "two"):
        folder = root / "submitted" / student / "selftest"
        folder.mkdir(parents=True)
        nbformat.write(release, folder / "selftest.ipynb")
    results = grading.grade(root, "selftest", jobs=2)
    assert [r.status for r in results] == ["graded", "graded"], [r.reasons for r in results]
    share = str(sandbox.kernel_threads(2))
    for student in ("one", "two"):
        graded = nbformat.read(root / "autograded" / student / "selftest" / "selftest.ipynb", 4)
        printed = "".join(o.get("text", "") for o in graded.cells[1].outputs)
        assert printed.strip() == f"threads {[share] * len(sandbox.THREAD_ENV)} None", printed
