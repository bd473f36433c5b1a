"""The instructor's grading loop over every assignment in ``source/``: release, autograde in
parallel (each submission in its own process and working copy), feedback, CSV export, and a
summary table with the reason behind each lost point.

nbgrader grades submissions one after another (jupyter/nbgrader#174). Here each submission is
graded by its own ``nbgrader autograde --student X`` process (forked from a server that imported
nbgrader once: :mod:`autograder.nbgrader_runner`), in a private working copy of the
course (``source/<assignment>`` and that one submission), writing into the shared gradebook
(SQLite with ``?timeout=60``, so parallel writers wait instead of failing). Student code runs in
the sandbox of :mod:`autograder.sandbox`.

A submission whose autograde fails (a missing notebook folder, a broken notebook, a grading run
past its time limit) is reported as ``failed`` with nbgrader's reason, and its scores are
removed from the gradebook: a stale score from an earlier run never survives a failed regrade.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from autograder import gradebook, report
from autograder.report import export, load_report, summary_table  # noqa: F401 - the public API

#: The folder holding the course's ``nbgrader_config.py`` (this package's parent).
CONFIG_DIR = Path(__file__).resolve().parent.parent
#: nbgrader_config.py's CourseDirectory.course_id.
COURSE_ID = "fine-tuning-course"


class GradingError(RuntimeError):
    """A grading step could not run (no such assignment, nbgrader failed, ...)."""


@dataclass
class SubmissionResult:
    """What happened to one submission: scores from the gradebook and the reasons for losses."""

    assignment: str
    student: str
    status: str  # "graded" or "failed"
    auto_score: float = 0.0
    auto_max: float = 0.0
    manual_max: float = 0.0
    needs_manual_grade: bool = False
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cells: dict[str, float] = field(default_factory=dict)  # autograded cell -> score
    cell_max: dict[str, float] = field(default_factory=dict)  # autograded cell -> points


# --------------------------------------------------------------------------- course layout

def course_root(root: str | os.PathLike | None = None) -> Path:
    """The course root: ``root``, else ``NBG_ROOT``, else the folder of nbgrader_config.py."""
    return Path(root or os.environ.get("NBG_ROOT") or CONFIG_DIR).resolve()


def db_url(root: Path) -> str:
    return f"sqlite:///{root / 'gradebook.db'}?timeout=60"


def assignments(root: Path) -> list[str]:
    """Every assignment of the course: the folders of ``source/`` that hold a notebook."""
    source = root / "source"
    if not source.is_dir():
        return []
    return sorted(
        p.name for p in source.iterdir()
        if p.is_dir() and not p.name.startswith(".") and any(p.glob("*.ipynb"))
    )


def check_assignment(root: Path, assignment: str) -> None:
    known = assignments(root)
    if assignment not in known:
        raise GradingError(
            f"no assignment {assignment!r} in {root / 'source'}; the course has: "
            f"{', '.join(known) or 'none'}"
        )


def submissions(root: Path, assignment: str) -> list[str]:
    """The students with a folder ``submitted/<student>/<assignment>``."""
    submitted = root / "submitted"
    if not submitted.is_dir():
        return []
    return sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir())


# --------------------------------------------------------------------------- nbgrader calls

def ensure_tools_on_path() -> None:
    """nbgrader runs ``alembic`` from ``PATH`` when it creates a gradebook: make this
    environment's ``bin/`` come first (a bare ``.venv/bin/python -m autograder ...`` has it not)."""
    bin_dir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[:1] != [bin_dir]:
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # nbgrader runs `alembic` from PATH (DESIGN.md, "Facts found the hard way").
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["NBG_ROOT"] = str(root)
    env.update(extra)
    return env


def nbgrader(args: list[str], root: Path, *, timeout: float | None = None,
             check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """``python -m nbgrader ARGS`` on the course at ``root`` with the course's config (in a
    process forked from one that imported nbgrader already: :mod:`autograder.nbgrader_runner`)."""
    from autograder import nbgrader_runner

    result = nbgrader_runner.run(args, CONFIG_DIR, _env(root, **env), timeout=timeout)
    if check and result.returncode != 0:
        raise GradingError(
            f"`nbgrader {' '.join(args)}` failed (exit {result.returncode}):\n"
            + _tail(result.stdout + result.stderr)
        )
    return result


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------- release

def release(root: Path | None = None, names: Iterable[str] | None = None) -> list[Path]:
    """``nbgrader generate_assignment --force`` for each assignment (all by default); returns
    the ``release/<assignment>`` folders. Also records the assignment in the gradebook."""
    root = course_root(root)
    names = list(names) if names else assignments(root)
    if not names:
        raise GradingError(f"no assignment found under {root / 'source'}")
    gradebook.create(root / "gradebook.db")  # without nbgrader's `alembic heads` subprocess
    out = []
    for name in names:
        check_assignment(root, name)
        nbgrader(["generate_assignment", name, "--force"], root)
        out.append(root / "release" / name)
    return out


def _in_gradebook(root: Path, assignment: str) -> bool:
    from nbgrader.api import Gradebook, MissingEntry

    if not (root / "gradebook.db").exists():
        return False
    with Gradebook(db_url(root), COURSE_ID) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            return False
    return True


# --------------------------------------------------------------------------- grading

def _safe_copy(src: Path, dest: Path, notes: list[str]) -> None:
    """Copy a submitted folder without following symlinks: a submitted link to the gradebook or
    another student's work would otherwise be copied by the (trusted) grader."""
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        rel = Path(dirpath).relative_to(src)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in list(dirnames) + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                notes.append(f"ignored symbolic link {rel / name} -> {os.readlink(path)}")
                if name in dirnames:
                    dirnames.remove(name)
            elif name in filenames:
                if path.is_file():
                    shutil.copy2(path, dest / rel / name)
                else:
                    notes.append(f"ignored special file {rel / name}")


def _scores(root: Path, assignment: str, student: str, result: SubmissionResult) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(db_url(root), COURSE_ID) as gb:
        submission = gb.find_submission(assignment, student)
        for notebook in submission.notebooks:
            nb = gb.find_notebook(notebook.name, assignment)
            solutions = {c.name for c in nb.solution_cells}
            auto = {c.name for c in nb.grade_cells if c.cell_type == "code"} - solutions
            for grade in notebook.grades:
                if grade.name not in auto:  # manually graded answers and tasks
                    result.manual_max += grade.max_score
                    result.needs_manual_grade |= bool(grade.needs_manual_grade)
                    continue
                result.auto_max += grade.max_score
                score = grade.score
                result.auto_score += score
                result.cells[f"{notebook.name}/{grade.name}"] = score
                result.cell_max[f"{notebook.name}/{grade.name}"] = grade.max_score


def _zero(root: Path, assignment: str, student: str) -> None:
    """Record a submission whose notebooks are all missing: every cell scores zero."""
    import warnings

    from nbgrader.api import Gradebook

    with warnings.catch_warnings(), Gradebook(db_url(root), COURSE_ID) as gb:
        warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy autoflush warnings
        gb.update_or_create_student(student)
        submission = gb.update_or_create_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.manual_score = None
                grade.needs_manual_grade = False
        gb.db.commit()


def _forget(root: Path, assignment: str, student: str) -> None:
    """Remove a submission's scores (a failed regrade must not leave the old ones)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url(root), COURSE_ID) as gb:
        try:
            gb.remove_submission(assignment, student)
        except MissingEntry:
            pass


def grade_one(root: Path, assignment: str, student: str, *, timeout: int | None = None,
              limit: float | None = None, workbase: Path | None = None,
              assets: tuple[Path, ...] = (), threads: int | None = None) -> SubmissionResult:
    """Autograde one submission in its own process and working copy; see the module's doc.
    ``assets``: the grading sandbox's asset folders, when the caller built them already;
    ``threads``: math-library threads for its kernel (default: all the cores, up to 4)."""
    start = time.monotonic()
    result = SubmissionResult(assignment, student, "failed")
    work = Path(tempfile.mkdtemp(prefix=f"grade-{assignment}-{student}-", dir=workbase))
    try:
        shutil.copytree(root / "source" / assignment, work / "source" / assignment,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "outputs"))
        _safe_copy(root / "submitted" / student / assignment,
                   work / "submitted" / student / assignment, result.reasons)
        expected = sorted(p.name for p in (root / "source" / assignment).glob("*.ipynb"))
        folder = work / "submitted" / student / assignment
        if not any((folder / name).is_file() for name in expected):
            # nbgrader fails the whole run here ("No notebooks found"); a missing notebook is
            # a zero with a reason, as nbgrader itself does for one missing notebook of several.
            found = sorted(p.name for p in folder.glob("*.ipynb"))
            result.reasons.append(
                f"notebook {', '.join(expected)} missing"
                + (f" (submitted {', '.join(found)}: renamed?)" if found else "") + ": scores zero")
            _zero(root, assignment, student)
            dest = root / "autograded" / student / assignment
            if dest.exists():
                shutil.rmtree(dest)
            result.status = "graded"
            _scores(root, assignment, student, result)
            return result
        duplicates = report.duplicate_ids(folder)
        if duplicates:
            # nbgrader would quietly grade one of the copies: refuse this one submission, clearly.
            _forget(root, assignment, student)
            dest = root / "autograded" / student / assignment
            if dest.exists():
                shutil.rmtree(dest)
            result.reasons += duplicates
            return result
        extra = {"NBG_DB_URL": db_url(root)}
        if assets:
            from autograder import sandbox

            extra[sandbox.ASSETS_ENV] = os.pathsep.join(str(p) for p in assets)
        if timeout:
            extra["COURSE_CELL_TIMEOUT"] = str(int(timeout))
        if threads:
            from autograder import sandbox

            extra[sandbox.KERNEL_THREADS_ENV] = str(int(threads))
        run = nbgrader(["autograde", assignment, "--student", student, "--force"], work,
                       timeout=limit, check=False, **extra)
        log = run.stdout + run.stderr
        notes = report.edited_cells(root / "release" / assignment, folder,
                                    report.restored_cells(log)) + report.log_reasons(log)
        if "GRADING WITHOUT A SANDBOX" in log:
            result.reasons.append("graded WITHOUT a sandbox (see the warning above)")
        graded = work / "autograded" / student / assignment
        dest = root / "autograded" / student / assignment
        if dest.exists():
            shutil.rmtree(dest)
        if run.returncode != 0 or not graded.is_dir():
            _forget(root, assignment, student)
            why = "timed out" if run.returncode == 124 else f"nbgrader exit {run.returncode}"
            errors = [line.split("] ", 1)[-1] for line in log.splitlines()
                      if "| ERROR]" in line and "traceback" not in line.lower()]
            detail = next((e for e in errors if "There was an error" not in e), errors[0] if errors else "")
            result.reasons.append(f"autograde failed ({why}){': ' + detail if detail else ''}")
            result.reasons.append(f"log tail: {_tail(log, 3)}")
            result.reasons += notes
        else:
            result.reasons += report.notebook_reasons(graded) + notes
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(graded, dest, symlinks=True)
            result.status = "graded"
            _scores(root, assignment, student, result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        result.seconds = round(time.monotonic() - start, 2)
    return result


def grade(root: Path | None = None, assignment: str | None = None, *, jobs: int = 2,
          timeout: int | None = None, students: Iterable[str] | None = None,
          limit: float | None = None) -> list[SubmissionResult]:
    """Autograde every submission in ``submitted/`` (of one assignment, or all), ``jobs`` at a
    time. ``timeout`` is the per-cell limit in seconds; ``limit`` caps one submission's whole
    grading run (default: 20 per-cell timeouts). Each kernel gets its share of the cores as
    math-library threads (:func:`autograder.sandbox.kernel_threads`). Writes
    ``grading-report.json``."""
    root = course_root(root)
    names = [assignment] if assignment else assignments(root)
    students = list(students) if students else None
    tasks = []
    for name in names:
        check_assignment(root, name)
        who = [s for s in students if (root / "submitted" / s / name).is_dir()] if students \
            else submissions(root, name)
        if who and not _in_gradebook(root, name):
            release(root, [name])
        tasks += [(name, s) for s in who]
    assets: tuple[Path, ...] = ()
    if tasks:
        from autograder import sandbox

        ok, why = sandbox.availability()
        if not ok:
            print(sandbox.WARNING.format(reason=why), file=sys.stderr, flush=True)
        assets = sandbox.grading_assets()  # once here, not once per submission
    cell_timeout = timeout or int(os.environ.get("COURSE_CELL_TIMEOUT", "180"))
    limit = limit or 20 * cell_timeout
    ensure_tools_on_path()
    jobs = max(1, jobs)
    # Each kernel's share of the cores: kernels graded at once must not out-thread the machine.
    threads = sandbox.kernel_threads(min(jobs, len(tasks))) if tasks else None
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(
            lambda t: grade_one(root, t[0], t[1], timeout=timeout, limit=limit, assets=assets,
                                threads=threads),
            tasks))
    report.save_report(root, results)
    return results


# --------------------------------------------------------------------------- after grading

def feedback(root: Path | None = None, assignment: str | None = None) -> list[Path]:
    """``nbgrader generate_feedback`` (hidden tests cleared) for graded submissions; returns the
    HTML files."""
    root = course_root(root)
    names = [assignment] if assignment else assignments(root)
    if assignment:
        check_assignment(root, assignment)
    files = []
    for name in names:
        if not any((root / "autograded").glob(f"*/{name}")):
            continue
        nbgrader(["generate_feedback", name, "--force"], root)
        files += sorted((root / "feedback").glob(f"*/{name}/*.html"))
    return files
