"""Run a source notebook's code cells in this process (fast mode) and judge answer variants with
the real checks (autograder.checker.decide with a LocalProbe): the checks' logic, in seconds.
The real grading path (sandbox, checker process) is tests/test_answers.py."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from autograder import checker
from tests.answer_variants import DEFINES

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def _chdir(path: Path):
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def run_notebook(assignment: str, notebook: str, workdir: Path) -> dict[str, Any]:
    """Execute the source notebook's code cells up to its last test cell (test cells skipped)
    in a fresh namespace, in ``workdir`` (a copy of the assignment folder); returns it."""
    import shutil

    shutil.copytree(REPO / "source" / assignment, workdir, dirs_exist_ok=True)
    cells = json.loads((workdir / f"{notebook}.ipynb").read_text())["cells"]
    last_test = max(i for i, c in enumerate(cells)
                    if (c["metadata"].get("nbgrader") or {}).get("grade") and c["cell_type"] == "code")
    ns: dict[str, Any] = {"__name__": "__main__", "display": lambda *a, **k: None}
    with _chdir(workdir):
        for cell in cells[:last_test]:
            meta = cell["metadata"].get("nbgrader") or {}
            if cell["cell_type"] != "code" or (meta.get("grade") and not meta.get("solution")):
                continue
            source = "".join(line for line in cell["source"]
                             if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line)
            exec(compile(source, f"<{notebook} {meta.get('grade_id') or cell.get('id')}>", "exec"),  # noqa: S102
                 ns)
    return ns


def judge(base: dict[str, Any], workdir: Path, notebook: str, answer_id: str, test_id: str,
          source: str) -> checker.Verdict:
    """The verdict of ``test_id`` when answer cell ``answer_id`` holds ``source`` (the rest as
    in ``base``). A variant that raises leaves its names undefined, as in a fresh kernel."""
    ns = dict(base)
    for name in DEFINES[answer_id]:
        ns.pop(name, None)
    if "tokenizer" in base and answer_id != "tokenize":
        ns["tokenizer"] = copy.deepcopy(base["tokenizer"])
    with _chdir(workdir):
        try:
            exec(compile(source, f"<variant {answer_id}>", "exec"), ns)  # noqa: S102
        except Exception:  # noqa: BLE001, S110 - the cell fails, as it would in the notebook
            pass
        with tempfile.TemporaryDirectory(prefix="chk-", dir="/tmp") as sockets:
            probe = checker.LocalProbe(ns, sockets)
            probe.answers = {answer_id: source}
            return checker.decide(notebook, test_id, probe)
