"""LMS out: ``python -m autograder export --format canvas`` writes the grades as a CSV that
Canvas's gradebook import (*Grades -> Import*) accepts. The plain grade CSV
(``python -m autograder export``) is its input and stays as it is.

Canvas's importer (``GradebookImporter`` in canvas-lms) reads:

- a header whose first columns are ``Student, ID, SIS User ID, SIS Login ID, Section``; every
  later column is an assignment, matched to an existing one by the Canvas id in its title,
  ``Lab 1 (48213)``, else by its exact title, else created as a new assignment;
- an optional second row whose first cell is ``Points Possible``: the points of each (new)
  assignment;
- one row per student, matched by ``ID`` (the Canvas user id), then ``SIS User ID``, then
  ``SIS Login ID``, and only then by name. A blank cell leaves that grade as it is.

The roster (:mod:`autograder.roster`) supplies each student's Canvas name and ids. A
submission that was not graded (``missing``, or ``failed``: nbgrader could not grade it) is
left blank, never sent as a zero, and listed as a warning; so is a student the roster lacks.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from autograder.grading import GradingError
from autograder.roster import Roster

#: The plain grade CSV's columns this export reads (it may have more).
NEEDED = ("assignment", "student", "status", "score", "max_score")
CANVAS_STUDENT_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
#: A cell starting with one of these is a formula to a spreadsheet (CSV injection).
FORMULA = ("=", "+", "-", "@", "\t", "\r")


class ExportError(GradingError):
    """The grade CSV cannot be converted; the message names the file, line and fix."""


def read_grades(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a plain grade CSV, with their line numbers under ``"line"``."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no grade CSV at {path}: write it with `python -m autograder export`")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in NEEDED if c not in (reader.fieldnames or [])]
        if missing:
            raise ExportError(
                f"{path}, line 1: no column {', '.join(missing)} (found: "
                f"{', '.join(reader.fieldnames or []) or 'nothing'}); this needs the grade CSV "
                f"that `python -m autograder export` writes")
        return [{**row, "line": str(reader.line_num)} for row in reader]


def _number(row: dict[str, str], column: str, where: str) -> float:
    try:
        value = float(row[column])
    except (TypeError, ValueError):
        raise ExportError(f"{where}, line {row['line']}: {column} {row[column]!r} is not a "
                          f"number") from None
    if not math.isfinite(value) or value < 0:
        raise ExportError(f"{where}, line {row['line']}: {column} {row[column]!r} is not a "
                          f"points value")
    return value


def _points(value: float) -> str:
    """Points as Canvas shows them: at most two decimals, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _cell(text: str) -> str:
    """A name a spreadsheet must not read as a formula."""
    return "'" + text if text.startswith(FORMULA) else text


@dataclass
class CanvasGradebook:
    """The CSV Canvas imports, and what it could not hold."""

    header: list[str]
    rows: list[list[str]]
    warnings: list[str] = field(default_factory=list)

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.header)
            writer.writerows(self.rows)
        return path


def canvas_gradebook(grades: list[dict[str, str]], roster: Roster, *,
                     titles: dict[str, str] | None = None, points: float | None = None,
                     where: str = "grades") -> CanvasGradebook:
    """Canvas's import CSV from the plain grade rows: one column per assignment (titled by
    ``titles``, e.g. ``{"01-gpt2-imdb": "Lab 1 (48213)"}``, else the assignment id), scores
    rescaled to ``points`` when given."""
    titles = titles or {}
    unknown = sorted(set(titles) - {row["assignment"] for row in grades})
    warnings = [f"--column {a}: no such assignment in {where}" for a in unknown]
    assignments: list[str] = list(dict.fromkeys(row["assignment"] for row in grades))
    max_points: dict[str, float] = {}
    cells: dict[tuple[str, str], str] = {}
    for row in grades:
        key = (row["assignment"], row["student"])
        if key in cells:
            raise ExportError(f"{where}, line {row['line']}: a second row for {key[1]} in "
                              f"{key[0]}; the export needs one row per student and assignment")
        top = _number(row, "max_score", where)
        if row["assignment"] in max_points and max_points[row["assignment"]] != top:
            raise ExportError(
                f"{where}, line {row['line']}: {row['assignment']} is out of {_points(top)} "
                f"here but {_points(max_points[row['assignment']])} above; one assignment "
                f"column needs one maximum")
        max_points[row["assignment"]] = top
        if row["status"] != "graded":
            cells[key] = ""
            if row["status"] != "missing":
                warnings.append(f"{key[1]}, {key[0]}: {row['status']} ("
                                f"{row.get('reasons') or 'no reason given'}); left blank")
            continue
        score = _number(row, "score", where)
        if points is not None:
            score = score / top * points if top else 0.0
        cells[key] = _points(score)
    students = sorted({row["student"] for row in grades})
    header = CANVAS_STUDENT_COLUMNS + [titles.get(a, a) for a in assignments]
    possible = ["Points Possible", "", "", "", ""] + [
        _points(points if points is not None else max_points[a]) for a in assignments]
    rows = [possible]
    for student in students:
        person = roster.get("student", student)
        if person is None:
            warnings.append(f"{student}: not in the roster, so not in the Canvas file; add a "
                            f"row with their canvas_id")
            continue
        if not (person.canvas_id or person.sis_user_id or person.sis_login_id):
            warnings.append(f"{student}: no canvas_id, sis_user_id or sis_login_id in the "
                            f"roster; Canvas will match {person.name or student!r} by name only")
        rows.append([_cell(person.name or student), person.canvas_id, person.sis_user_id,
                     person.sis_login_id, person.section]
                    + [cells.get((a, student), "") for a in assignments])
    return CanvasGradebook(header, rows, warnings)


def parse_titles(pairs: list[str] | None) -> dict[str, str]:
    """``["01-gpt2-imdb=Lab 1 (48213)"]`` -> ``{"01-gpt2-imdb": "Lab 1 (48213)"}``."""
    titles = {}
    for pair in pairs or []:
        assignment, sep, title = pair.partition("=")
        if not sep or not assignment.strip() or not title.strip():
            raise ExportError(f"--column {pair!r}: write ASSIGNMENT=CANVAS TITLE, e.g. "
                              f"'01-gpt2-imdb=Lab 1 (48213)' (the number is the Canvas "
                              f"assignment id from its URL)")
        titles[assignment.strip()] = title.strip()
    return titles
