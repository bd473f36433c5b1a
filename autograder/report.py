"""What grading says back: the reasons behind each lost point, the grade table and the grade CSV.

Reasons are read from the graded notebooks (the checker's verdicts in the test cells, the errors
of the other cells, the grader's limit notes) and from nbgrader's log, and are ordered so that a
reader sees the cause first:

1. the **root cause**: the first answer cell that failed (or, when every answer ran, the first
   failing test), with the hint that matters (a placeholder still there, a timeout, a limit);
2. each failing **test cell** (the points lost), in one line;
3. the **cascade** collapsed: "… and 14 later cells that need it";
4. notes that change no score: cells restored from the source, a notebook that changed its own
   kernel, output dropped past the limit.

A course's language variants (``01-gpt2-imdb``, ``-de``, ``-zh``) are one assignment per
student: the table and the CSV have one row per English assignment and student, naming the
variant submitted; with two variants submitted the best score counts and the row says so.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from autograder import execute
from autograder import limits as limits_module

REPORT_NAME = "grading-report.json"

_CHANGED = re.compile(r"Attribute '(\w+)' for cell (\S+) has changed!")
_NO_FILE = re.compile(r"No submitted file: (\S+)")
_UNKNOWN_NB = re.compile(r"Skipping unknown notebook: (\S+)")
_RESTORED = re.compile(r"Missing grade cell (\S+) encountered, adding to notebook")
_DUPLICATE = re.compile(r"Cell with id '([^']+)' exists multiple times!")

#: Errors a kernel meets at a limit, and the limit they mean.
_LIMIT_ERRORS = (
    ("MemoryError", None, "memory"),
    (None, "Cannot allocate memory", "memory"),
    (None, "can't allocate memory", "memory"),
    (None, "can't start new thread", "processes"),
    (None, "Resource temporarily unavailable", "processes"),
    (None, "No space left on device", "workdir"),
    (None, "File too large", "file_size"),
    (None, "Too many open files", "open_files"),
)


def _base(name: str) -> tuple[str, str | None]:
    from autograder.i18n import split_variant

    return split_variant(name)


def _first_line(text: str, width: int = 200) -> str:
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def _limit_for(ename: str, evalue: str) -> str | None:
    for name, text, limit in _LIMIT_ERRORS:
        if (name and ename == name) or (text and text in evalue):
            return limit
    return None


# --------------------------------------------------------------------------- reasons


def log_reasons(log: str) -> list[str]:
    """Reasons found in nbgrader's log: restored cells, missing or unknown notebooks."""
    reasons = []
    # Checksum changes are found by edited_cells (nbgrader reports one for every cell whose
    # hidden tests were removed from the release, edited or not).
    for attr, cell in _CHANGED.findall(log):
        if attr == "checksum":
            continue
        what = {"locked": "had its lock changed", "points": "had its points changed",
                "cell_type": "had its type changed", "grade": "had its graded flag changed",
                "solution": "had its answer flag changed", "task": "had its task flag changed",
                "grade_id": "was given an id the source does not have"}.get(
            attr, f"had its {attr} changed")
        reasons.append(f"cell {cell} {what}: restored from the source")
    reasons += [f"notebook missing: {Path(p).name} scores zero" for p in _NO_FILE.findall(log)]
    reasons += [f"unexpected notebook {Path(p).name} ignored (renamed?)"
                for p in _UNKNOWN_NB.findall(log)]
    return list(dict.fromkeys(reasons))


def restored_cells(log: str) -> set[str]:
    """Test cells nbgrader put back because the submission had deleted them."""
    return set(_RESTORED.findall(log))


def _grade_ids(cells: list[Any]) -> list[tuple[int, str]]:
    out = []
    for index, cell in enumerate(cells):
        meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
        if meta.get("grade_id") and (meta.get("grade") or meta.get("solution") or
                                     meta.get("locked") or meta.get("task")):
            out.append((index, str(meta["grade_id"])))
    return out


def duplicate_ids(submitted: Path) -> list[str]:
    """One line per grade id that a submitted notebook holds more than once (a copied cell keeps
    its nbgrader id): nbgrader cannot tell which one to grade."""
    import nbformat

    problems = []
    for path in sorted(submitted.glob("*.ipynb")):
        try:
            cells = nbformat.read(path, as_version=4).cells
        except Exception:  # noqa: BLE001, S112 - an unreadable notebook is reported elsewhere
            continue
        seen: dict[str, list[int]] = {}
        for index, grade_id in _grade_ids(cells):
            seen.setdefault(grade_id, []).append(index + 1)
        for grade_id, where in seen.items():
            if len(where) > 1:
                problems.append(
                    f"{path.name} has {len(where)} cells with the nbgrader id {grade_id!r} (cells "
                    f"{', '.join(map(str, where))}): a copied cell keeps its id, so the grader "
                    "cannot tell which one is the answer. Delete the copies (keep one cell with "
                    "that id) and submit again")
    return problems


def edited_cells(release: Path, submitted: Path, restored: set[str] | None = None) -> list[str]:
    """Locked cells (instructions, tests) whose submitted source differs from the release (nbgrader
    puts the original back before grading) or that were deleted (put back and graded when they are
    test cells; a deleted instruction cell is not needed to grade)."""
    import nbformat

    reasons = []
    restored = restored or set()
    for path in sorted(release.glob("*.ipynb")):
        if not (submitted / path.name).is_file():
            continue
        locked, tests = {}, set()
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade_id") and (meta.get("locked") or (meta.get("grade")
                                                                and not meta.get("solution"))):
                locked[meta["grade_id"]] = cell.source.strip()
                if meta.get("grade") and not meta.get("solution"):
                    tests.add(meta["grade_id"])
        try:
            cells = nbformat.read(submitted / path.name, as_version=4).cells
        except Exception as exc:  # noqa: BLE001 - nbgrader reports unreadable notebooks
            reasons.append(f"{path.name} is not a readable notebook ({exc})")
            continue
        seen = {}
        for cell in cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in locked:
                seen[grade_id] = cell.source.strip()
        for grade_id, source in locked.items():
            if grade_id not in seen:
                if grade_id in restored or grade_id in tests:
                    reasons.append(f"{path.stem} cell {grade_id} was deleted: put back from the "
                                   "source and graded")
                else:
                    reasons.append(f"{path.stem} cell {grade_id} was deleted (an instruction "
                                   "cell: grading does not need it)")
            elif seen[grade_id] != source:
                reasons.append(f"{path.stem} cell {grade_id} was edited: restored from the source")
    return reasons


def notebook_reasons(folder: Path, limits: limits_module.Limits | None = None) -> list[str]:
    """Why points were lost in the graded notebooks of ``folder``, root cause first, the cascade
    collapsed (see the module's doc)."""
    import nbformat

    limits = limits or limits_module.current()
    reasons: list[str] = []
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        root: str | None = None
        tests: list[str] = []
        notes: list[str] = []
        cascade = not_run = 0
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            meta = cell.metadata.get("nbgrader", {}) or {}
            name = meta.get("grade_id") or f"#{index}"
            outputs = cell.get("outputs", [])
            for output in outputs:
                text = output.get("text", "") if output.get("output_type") == "stream" else ""
                for line in text.splitlines():
                    if line.startswith(execute.KERNEL_NOTE):
                        notes.append(f"{path.stem}: {_first_line(line, 400)}")
                if text.startswith("[grader]"):
                    notes.append(f"{path.stem} cell {name}: {_first_line(text)[9:]}")
            errors = [o for o in outputs if o.get("output_type") == "error"]
            if execute.is_test_cell(cell):
                if errors:
                    message = _first_line(errors[0].get("evalue", ""), 240)
                    points = meta.get("points")
                    lost = f" ({points:g} pts lost)" if isinstance(points, int | float) else ""
                    tests.append(f"{path.stem} test {name}{lost}: {message}")
                elif not any(o.get("output_type") == "stream" and
                             o.get("text", "").startswith(execute.PASSED) for o in outputs):
                    stderr = [o for o in outputs if o.get("output_type") == "stream"
                              and o.get("name") == "stderr"]
                    if stderr:
                        tests.append(f"{path.stem} test {name}: zeroed because it wrote to stderr: "
                                     f"{_first_line(stderr[0].get('text', ''))}")
                continue
            if not errors:
                continue
            first = errors[0]
            ename, evalue = str(first.get("ename", "Error")), str(first.get("evalue") or "")
            if evalue.startswith("not run: the kernel died"):
                not_run += 1
                continue
            if ename == "CellTimeoutError" or any(o.get("ename") == "CellTimeoutError"
                                                    for o in errors):
                text = "timed out (per-cell limit) and was interrupted"
            elif ename == "LimitReached":
                text = _first_line(evalue, 300)
            elif ename == "DeadKernelError":
                text = f"DeadKernelError: {_first_line(evalue, 300)}"
            elif _limit_for(ename, evalue):
                detail = f": {_first_line(evalue, 160)}" if evalue.strip() else ""
                limit = _limit_for(ename, evalue)
                what = (f"disk limit (working folder {limits_module.human_size(limits.workdir)}, "
                        f"/tmp {limits_module.human_size(limits.tmp)})") if limit == "workdir" \
                    else limits.describe(limit)
                text = f"{what} reached: {ename}{detail}"
            elif ename == "NotImplementedError" and not evalue.strip():
                text = "NotImplementedError: the answer still has the placeholder"
            else:
                text = f"{ename}: {_first_line(evalue, 160)}" if evalue.strip() else ename
            line = f"{path.stem} cell {name}: {text}"
            if ename in ("LimitReached", "DeadKernelError", "CellTimeoutError") or \
                    _limit_for(ename, evalue) or "timed out" in text:
                if root is None:
                    root = line
                else:
                    notes.append(line)
            elif root is None:
                root = line
            else:
                cascade += 1
        if root:
            reasons.append(root)
        reasons += tests
        if cascade:
            reasons.append(f"{path.stem}: … and {cascade} later cell{'s' if cascade > 1 else ''} "
                           "that need it")
        if not_run:
            reasons.append(f"{path.stem}: {not_run} later code cells not run (dead kernel)")
        reasons += list(dict.fromkeys(notes))
    return reasons


# --------------------------------------------------------------------------- the report file


def save_report(root: Path, results: Iterable[Any]) -> None:
    path = root / "autograded" / REPORT_NAME
    merged = {(r["assignment"], r["student"]): r for r in load_report(root)}
    merged.update({(r.assignment, r.student): asdict(r) for r in results})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sorted(merged.values(),
                                      key=lambda r: (r["assignment"], r["student"])), indent=1))


def load_report(root: Path | str | None = None) -> list[dict]:
    from autograder.grading import course_root

    path = course_root(root) / "autograded" / REPORT_NAME
    if not path.is_file():
        return []
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- one row per student


def group_variants(rows: Iterable[dict]) -> list[dict]:
    """One row per English assignment and student: the best-scored variant submitted, with a
    ``variant`` key and a warning reason when the student submitted more than one."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        base, _ = _base(row["assignment"])
        groups.setdefault((base, row["student"]), []).append(row)
    out = []
    for (base, student), members in sorted(groups.items()):
        graded = [m for m in members if m.get("status") == "graded"]
        best = max(graded or members, key=lambda m: (m.get("auto_score") or 0,
                                                     m["assignment"] == base))
        row = dict(best)
        row["variant"], row["assignment"] = best.get("variant") or best["assignment"], base
        others = [m for m in members if m is not best]
        if others:
            shown = ", ".join(
                f"{m.get('variant') or m['assignment']} ({m['auto_score']:g}/{m['auto_max']:g})"
                if m.get("status") == "graded" else
                f"{m.get('variant') or m['assignment']} ({m.get('status')})" for m in others)
            row["reasons"] = [(f"WARNING: several language variants submitted; the best counts "
                              f"({row['variant']}); also graded: {shown}")] + list(
                                  row.get("reasons") or [])
        out.append(row)
    return out


def summary_table(results: Iterable[Any]) -> str:
    """A plain-text table: assignment, student, variant, status, autograded score, manual part,
    reasons (language variants of one assignment are one row per student)."""
    rows = group_variants(asdict(r) if not isinstance(r, dict) else r for r in results)
    header = ["assignment", "student", "variant", "status", "auto", "manual", "reasons"]
    table = [header]
    for r in rows:
        manual = "-" if not r["manual_max"] else (
            f"{r['manual_max']:g} pts to grade" if r["needs_manual_grade"] else "graded")
        _, lang = _base(r["variant"])
        table.append([r["assignment"], r["student"], lang or "en", r["status"],
                      f"{r['auto_score']:g}/{r['auto_max']:g}" if r["status"] == "graded" else "-",
                      manual, "; ".join(r["reasons"]) or "ok"])
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = []
    for i, row in enumerate(table):
        cells = [row[j].ljust(widths[j]) for j in range(len(widths))] + [row[-1]]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return "\n".join(lines)


def export(root: Path | str | None = None, to: str | os.PathLike | None = None) -> Path:
    """Write the grade CSV: one row per (English) assignment and student, with the variant
    submitted, the autograded and total scores, and the grading status and reasons. A student
    with no submission of any variant is ``missing``."""
    from nbgrader.api import Gradebook, MissingEntry

    from autograder.grading import COURSE_ID, course_root, db_url, ensure_tools_on_path

    root = course_root(root)
    ensure_tools_on_path()
    path = Path(to) if to else root / "grades.csv"
    report = {(r["assignment"], r["student"]): r for r in load_report(root)}
    rows: list[dict] = []
    with Gradebook(db_url(root), COURSE_ID) as gb:
        students = [s.id for s in gb.students]
        assignments = list(gb.assignments)
        bases = sorted({_base(a.name)[0] for a in assignments})
        for assignment in assignments:
            for student in students:
                info = report.get((assignment.name, student))
                try:
                    sub = gb.find_submission(assignment.name, student)
                except MissingEntry:
                    if info:  # a failed grading run
                        rows.append({**info, "score": 0, "max_score": assignment.max_score})
                    continue
                row = dict(info or {"assignment": assignment.name, "student": student,
                                    "status": "graded", "auto_score": sub.code_score,
                                    "auto_max": "", "manual_max": 0,
                                    "needs_manual_grade": False, "reasons": []})
                row.update(score=sub.score, max_score=sub.max_score)
                rows.append(row)
        grouped = {(r["assignment"], r["student"]): r for r in group_variants(rows)}
        maxima = {_base(a.name)[0]: a.max_score for a in assignments if _base(a.name)[1] is None}
        for base in bases:
            for student in students:
                if (base, student) not in grouped:
                    grouped[(base, student)] = {
                        "assignment": base, "variant": "", "student": student,
                        "status": "missing", "auto_score": 0, "auto_max": "",
                        "score": 0, "max_score": maxima.get(base, ""), "reasons": []}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["assignment", "student", "variant", "status", "auto_score", "auto_max",
                         "score", "max_score", "reasons"])
        for (base, student), r in sorted(grouped.items()):
            writer.writerow([base, student, r.get("variant", ""), r.get("status", "graded"),
                             r.get("auto_score", 0), r.get("auto_max", ""), r.get("score", 0),
                             r.get("max_score", ""), "; ".join(r.get("reasons") or [])])
    return path
