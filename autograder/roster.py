"""The class roster: who a student is in the LMS and in this course.

``python -m autograder collect`` (LMS in) and ``export --format canvas`` (LMS out) both need to
know that Canvas user 48213, or Moodle participant 1234567 "Jane Doe", is the course's student
``jdoe`` (the folder name under ``submitted/``). The roster is a CSV file, ``roster.csv`` in the
course root by default (git-ignored: it holds personal data), one row per student:

============  =========================================================================
column        meaning
============  =========================================================================
student       the course's student id (required): letters, digits, ``.``, ``_``, ``-``
name          the name as the LMS shows it ("Jane Doe" or "Doe, Jane")
canvas_id     Canvas user id: the ``ID`` column of Canvas's gradebook export, and the
              number in the file names of Canvas's "Download Submissions" zip
sis_user_id   Canvas ``SIS User ID`` column
sis_login_id  Canvas ``SIS Login ID`` column
section       Canvas ``Section`` column
moodle_id     Moodle participant id: the number in the folder names of Moodle's
              "Download all submissions" zip (``Jane Doe_1234567_assignsubmission_file_``)
email         optional, for your own reference
============  =========================================================================

Only ``student`` is required; a file may hold more columns (they are ignored). Matching uses
the LMS id first and falls back to the name, which must then be unique in the roster.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, fields
from pathlib import Path

from autograder.grading import GradingError

#: Where ``collect`` and ``export --format canvas`` look when no ``--roster`` is given.
DEFAULT_NAME = "roster.csv"
COLUMNS = ("student", "name", "canvas_id", "sis_user_id", "sis_login_id", "section",
           "moodle_id", "email")
#: A student id becomes a folder name under ``submitted/``: nothing that could leave it.
STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class RosterError(GradingError):
    """The roster file is missing or wrong; the message names the file, line and fix."""


@dataclass(frozen=True)
class Person:
    """One roster row."""

    student: str
    name: str = ""
    canvas_id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    moodle_id: str = ""
    email: str = ""
    line: int = 0


def name_key(name: str) -> str:
    """A name as the LMSs spell it in file names: Unicode-normalised, lower case, letters and
    digits only (Canvas drops everything else; Moodle turns ``_`` into spaces)."""
    text = unicodedata.normalize("NFKC", name).casefold()
    return re.sub(r"[\W_]+", "", text)


def _name_keys(name: str) -> set[str]:
    """The keys one roster name may appear under: as written, and in Canvas's sortable order
    ("Doe, Jane" -> "doejane") when the roster writes "Jane Doe"."""
    name = " ".join(name.split())
    if not name:
        return set()
    keys = {name_key(name)}
    if "," in name:
        last, first = (part.strip() for part in name.split(",", 1))
        keys.add(name_key(f"{first} {last}"))
    else:
        parts = name.split(" ")
        if len(parts) > 1:
            keys.add(name_key(parts[-1] + " ".join(parts[:-1])))
    return keys - {""}


class Roster:
    """The rows of a roster file, indexed by every id they carry."""

    def __init__(self, people: list[Person], path: Path | None = None) -> None:
        self.people = people
        self.path = path
        self._by: dict[str, dict[str, Person]] = {}
        where = f"{path}" if path else "roster"
        for column in ("student", "canvas_id", "sis_user_id", "sis_login_id", "moodle_id"):
            index: dict[str, Person] = {}
            for person in people:
                value = getattr(person, column)
                if not value:
                    continue
                if value in index:
                    raise RosterError(
                        f"{where}, lines {index[value].line} and {person.line}: {column} "
                        f"{value!r} appears twice; each must name one student")
                index[value] = person
            self._by[column] = index
        self._by_name: dict[str, list[Person]] = {}
        for person in people:
            for key in _name_keys(person.name):
                self._by_name.setdefault(key, []).append(person)

    def __len__(self) -> int:
        return len(self.people)

    def get(self, column: str, value: str) -> Person | None:
        """The person whose ``column`` (student, canvas_id, sis_user_id, ...) is ``value``."""
        return self._by[column].get(value.strip()) if value and value.strip() else None

    def by_name(self, name: str) -> tuple[Person | None, str]:
        """(person, "") for a name that fits exactly one roster row, else (None, why)."""
        key = name_key(name)
        found = list(dict.fromkeys(self._by_name.get(key, []))) if key else []
        if len(found) == 1:
            return found[0], ""
        if not found:
            return None, f"no roster row has the name {name!r}"
        students = ", ".join(p.student for p in found)
        return None, f"the name {name!r} fits several roster rows ({students}): add their LMS ids"

    def match(self, lms_column: str, lms_id: str, name: str) -> tuple[Person | None, str]:
        """The roster row for an LMS identity: by its id (``canvas_id`` or ``moodle_id``), else
        by name among the rows without that id. Returns (person, "") for a match by id,
        (person, "matched by name") for one by name, and (None, the reason) for none."""
        person = self.get(lms_column, lms_id)
        if person:
            return person, ""
        unknown = f"{lms_column} {lms_id} is not in the roster" if lms_id else f"no {lms_column}"
        if not name:
            return None, unknown
        by_name, why = self.by_name(name)
        if by_name is None:
            return None, f"{unknown}, and {why}"
        own = getattr(by_name, lms_column)
        if own and lms_id:
            # Two people may share a name: one whose roster row names another LMS id is not
            # this one.
            return None, (f"{unknown}; the name {name!r} fits {by_name.student}, whose "
                          f"{lms_column} is {own}")
        return by_name, "matched by name"


def _sniff(text: str) -> csv.Dialect | type[csv.Dialect]:
    try:
        return csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;\t")
    except csv.Error:
        return csv.excel


def load(path: str | Path) -> Roster:
    """Read a roster CSV (UTF-8 with or without BOM; comma, semicolon or tab separated)."""
    path = Path(path)
    if not path.is_file():
        raise RosterError(
            f"no roster at {path}: write a CSV with a 'student' column (the course's student "
            f"ids) and the LMS's ids ('canvas_id' or 'moodle_id') or 'name'; see "
            f"course/instructor.md, or pass --roster FILE")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RosterError(f"{path}: not UTF-8 text ({exc}); save it as 'CSV UTF-8'") from exc
    reader = csv.reader(io.StringIO(text), _sniff(text))
    rows = list(reader)
    if not rows:
        raise RosterError(f"{path}: empty; its first line must name the columns, e.g. "
                          f"'student,name,canvas_id'")
    header = [h.strip().lower().replace(" ", "_") for h in rows[0]]
    if "student" not in header:
        raise RosterError(
            f"{path}, line 1: no 'student' column (found: {', '.join(rows[0]) or 'nothing'}); "
            f"the columns are {', '.join(COLUMNS)}")
    known = {f.name for f in fields(Person)} - {"line"}
    people = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            raise RosterError(f"{path}, line {number}: {len(row)} values for {len(header)} "
                              f"columns (a comma inside a name needs quotes: \"Doe, Jane\")")
        values = {h: cell.strip() for h, cell in zip(header, row) if h in known}
        student = values.get("student", "")
        if not STUDENT_ID.fullmatch(student):
            raise RosterError(
                f"{path}, line {number}: student id {student!r} cannot be a folder name; use "
                f"letters, digits, '.', '_' and '-', starting with a letter or digit")
        people.append(Person(**values, line=number))
    return Roster(people, path)


def default_path(root: Path) -> Path:
    return root / DEFAULT_NAME
