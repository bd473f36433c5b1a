"""nbgrader configuration of the course.

The course root is the folder of this file (the repository): ``source/`` holds the instructor's
notebooks, ``release/`` what students get, ``submitted/``, ``autograded/``, ``feedback/`` and
``gradebook.db`` are the instructor's runtime state (git-ignored). ``NBG_ROOT=/some/copy`` points
nbgrader at a copy of the course instead (the CI check grades in a temporary copy).

Read by every nbgrader command and by JupyterLab's nbgrader extensions (formgrader, assignment
list); ``python -m autograder`` (course/instructor.md) drives the same commands.
"""

import os
import sys
import warnings
from pathlib import Path

c = get_config()  # noqa: F821 (traitlets injects it)

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("NBG_ROOT") or HERE).resolve()

# The grading driver and the sandbox live in this course's `autograder` package.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.course_id = "fine-tuning-course"
# `?timeout=60`: several autograde processes share the gradebook; without it SQLite answers
# "database is locked" (which nbgrader reports as a misleading "upgrade your database").
c.CourseDirectory.db_url = os.environ.get(
    "NBG_DB_URL", f"sqlite:///{ROOT / 'gradebook.db'}?timeout=60"
)
# Run-time folders a notebook may create beside itself are not part of an assignment.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback",
    "outputs", ".course-data", "mlruns", "mlflow.db", ".emulator",
]

# The exchange inside the course: the system one (/srv/nbgrader/exchange) is not writable and
# JupyterLab then logs "Unwritable directory" on every page.
c.Exchange.root = str(ROOT / "exchange")
c.Exchange.path_includes_course = True
try:  # nbgrader expects a world-writable exchange (students drop submissions there)
    if not (ROOT / "exchange").exists():
        (ROOT / "exchange").mkdir(parents=True)
        (ROOT / "exchange").chmod(0o1777)
except OSError:  # a read-only course copy: the formgrader says the exchange is unavailable
    pass

# Per-cell timeout while autograding/validating: graded notebooks run in fast mode (tiny models,
# tiny subsets), where no cell needs more than a minute or two on a laptop CPU. A cell that runs
# past it is interrupted and fails (an infinite loop costs one timeout, not the whole run).
# `python -m autograder grade --timeout S` or COURSE_CELL_TIMEOUT change it.
c.Execute.timeout = int(os.environ.get("COURSE_CELL_TIMEOUT", "180"))
c.Execute.interrupt_on_timeout = True

# A deleted test cell is put back from the source and decided like any other (without this,
# nbgrader leaves it out and the cell keeps no score).
c.OverwriteCells.add_missing_cells = True

try:
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        OverwriteCells,
        OverwriteKernelspec,
    )

    from autograder.metadata import RestoreMetadata

    # Every cell's nbgrader flags come from the gradebook before nbgrader reads them: a cell a
    # student marked as graded, solution or task is put back as the source says.
    c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, OverwriteKernelspec,
                                          RestoreMetadata, OverwriteCells, CheckCellMetadata]
except ImportError:  # nbgrader missing: the config is still read by plain Jupyter
    pass

try:
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    from autograder.safe_html import FeedbackHiddenTests, SafeHTML

    # No student HTML or JavaScript runs in an instructor's or a student's page: every notebook
    # the formgrader or the feedback renders goes through SafeHTML first (autograder/safe_html.py).
    c.HTMLExporter.sanitize_html = True
    c.HTMLExporter.preprocessors = [SafeHTML]
    # Feedback shows the student's notebook with scores, never the hidden tests' source (and a
    # student's text that merely contains nbgrader's markers does not stop it).
    c.GenerateFeedback.preprocessors = [GetGrades, FeedbackHiddenTests, SafeHTML,
                                        CSSHTMLHeaderPreprocessor]
except ImportError:  # nbgrader missing: the config is still read by plain Jupyter
    pass

try:
    # Student code runs while grading: every grading kernel starts in a bubblewrap sandbox
    # under the course's resource limits (autograder/sandbox.py, autograder/limits.py; change
    # them with AUTOGRADER_LIMITS), and every test cell is decided by the checker, a separate
    # process, from plain answers the kernel gives it (autograder/execute.py,
    # autograder/checker.py). Without bubblewrap it warns loudly and runs unsandboxed.
    from autograder.execute import autograde_preprocessors

    preprocessors = autograde_preprocessors()
    # The graded notebook (opened by instructors) is sanitised like the HTML pages.
    preprocessors.insert(preprocessors.index(next(p for p in preprocessors
                                                  if p.__name__ == "SandboxedExecute")) + 1,
                         SafeHTML)
    c.Autograde.autograde_preprocessors = preprocessors
except Exception as exc:  # noqa: BLE001 - a broken checkout must not stop nbgrader
    print(f"nbgrader_config.py: WARNING: grading sandbox not loaded ({exc})", file=sys.stderr)

# nbgrader 0.9 builds its SQLAlchemy models with relationships that overlap; SQLAlchemy 2 warns
# about them on every command. They are harmless: keep the output readable.
warnings.filterwarnings("ignore", message=r".*relationship .* will copy column .*")
warnings.filterwarnings("ignore", message=r".*conflicts with relationship.*")
