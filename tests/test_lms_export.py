"""LMS out: ``python -m autograder export --format canvas`` (autograder/lms_export.py).

``canvas_import`` below reads a CSV the way Canvas's ``GradebookImporter`` (canvas-lms,
app/models/gradebook_importer.rb) does: the header test (``row_has_student_headers?``,
``update_column_count``, ``last_student_info_column`` includes "Section"), the non-assignment
columns it strips, the "Points Possible" row, the student lookup by ID, then SIS User ID, then
SIS Login ID, then name, and an assignment's Canvas id from "Title (id)"."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from autograder import grading
from autograder import roster as roster_mod
from autograder.__main__ import main
from autograder.lms_export import ExportError, canvas_gradebook, parse_titles, read_grades

LMS = Path(__file__).resolve().parent / "fixtures" / "lms"
HEADER = "assignment,student,status,auto_score,auto_max,score,max_score,reasons"
GRADES = f"""{HEADER}
01-gpt2-imdb,amara,graded,6,6,8.5,10,
01-gpt2-imdb,bjorn,graded,3,6,3.3333333,10,cell trainer: NameError: name 'model' is not defined
01-gpt2-imdb,chen,missing,0,10,0,10,
01-gpt2-imdb,dara,failed,0,10,0,10,autograde failed (timed out)
02-gpt4o-jsonl,amara,graded,12,12,15,15,
02-gpt4o-jsonl,bjorn,graded,0.1,12,0.30000000000000004,15,
02-gpt4o-jsonl,chen,graded,12,12,14,15,
02-gpt4o-jsonl,dara,graded,9,12,9,15,
"""
NON_ASSIGNMENT = ("Current Score", "Current Points", "Current Grade", "Final Score",
                  "Final Points", "Final Grade", "Override Score", "Override Grade",
                  "Override Status")


def canvas_import(path: Path, students: list[dict]) -> dict:
    """What Canvas's importer reads from ``path`` for a course of ``students`` (dicts with id,
    sis_user_id, login, name, sortable_name); raises AssertionError where Canvas fails."""
    rows = list(csv.reader(path.open(newline="", encoding="utf-8")))
    header = rows[0]
    assert len(header) > 3 and "Student" in header[0] and "ID" in header[1], "Invalid header row"
    columns, sis_user, sis_login = 3, None, None
    if re.search(r"SIS\s+Login\s+ID", header[2]):
        sis_login, columns = 2, 4
    elif re.search(r"SIS\s+User\s+ID", header[2]) and re.search(r"SIS\s+Login\s+ID", header[3]):
        sis_user, sis_login, columns = 2, 3, 5
    assert "Section" in header[columns - 1], "Invalid header row"
    assignments = [(i, h) for i, h in enumerate(header) if i >= columns
                   and not any(n in h for n in NON_ASSIGNMENT)]
    titles = {}
    for i, name in assignments:
        match = re.match(r"^(.*) \((\d+)\)$", name)
        titles[i] = {"title": match[1] if match else name, "id": match[2] if match else None}
    points, grades = {}, {}
    for row in rows[1:]:
        if row[0] and "Points Possible" in row[0]:
            points = {titles[i]["title"]: row[i] for i, _ in assignments if row[i]}
            continue
        student = next((s for s in students if row[1] and str(s["id"]) == row[1]), None)
        student = student or next((s for s in students if sis_user is not None and row[sis_user]
                                   and s["sis_user_id"] == row[sis_user]), None)
        student = student or next((s for s in students if sis_login is not None
                                   and row[sis_login] and s["login"] == row[sis_login]), None)
        student = student or next((s for s in students if row[0] in (s["name"],
                                                                      s["sortable_name"])), None)
        key = student["id"] if student else f"new user {row[0]}"
        grades[key] = {titles[i]["title"]: row[i].strip() for i, _ in assignments}
    return {"assignments": [t for t in titles.values()], "points": points, "grades": grades}


CANVAS_COURSE = [
    {"id": 48211, "sis_user_id": "S1001", "login": "aokafor", "name": "Amara Okafor",
     "sortable_name": "Okafor, Amara"},
    {"id": 48212, "sis_user_id": "S1002", "login": "blindqvist", "name": "Björn Lindqvist",
     "sortable_name": "Lindqvist, Björn"},
    {"id": 48213, "sis_user_id": "S1003", "login": "wchen", "name": "Wei Chen",
     "sortable_name": "Chen, Wei"},
    {"id": 48214, "sis_user_id": "S1004", "login": "dbyrne", "name": "Dara Byrne",
     "sortable_name": "Byrne, Dara"},
]


@pytest.fixture
def grades_csv(tmp_path: Path) -> Path:
    path = tmp_path / "grades.csv"
    path.write_text(GRADES, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def roster() -> roster_mod.Roster:
    return roster_mod.load(LMS / "roster.csv")


def test_canvas_reads_the_export_as_grades_for_its_students(grades_csv: Path, roster,
                                                            tmp_path: Path) -> None:
    book = canvas_gradebook(read_grades(grades_csv), roster, where=str(grades_csv))
    out = book.write(tmp_path / "canvas.csv")
    seen = canvas_import(out, CANVAS_COURSE)
    assert [a["title"] for a in seen["assignments"]] == ["01-gpt2-imdb", "02-gpt4o-jsonl"]
    assert seen["points"] == {"01-gpt2-imdb": "10", "02-gpt4o-jsonl": "15"}
    assert seen["grades"] == {
        48211: {"01-gpt2-imdb": "8.5", "02-gpt4o-jsonl": "15"},
        48212: {"01-gpt2-imdb": "3.33", "02-gpt4o-jsonl": "0.3"},
        48213: {"01-gpt2-imdb": "", "02-gpt4o-jsonl": "14"},  # missing: blank, not zero
        48214: {"01-gpt2-imdb": "", "02-gpt4o-jsonl": "9"},  # grading failed: blank
    }
    # a failed grading run is a warning with its reason; a missing submission is not
    assert book.warnings == [
        "dara, 01-gpt2-imdb: failed (autograde failed (timed out)); left blank"]
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert rows[1][0] == "Points Possible"
    assert rows[2][:5] == ["Amara Okafor", "48211", "S1001", "aokafor", "Section A"]


def test_columns_named_for_existing_canvas_assignments_and_rescaled_points(
        grades_csv: Path, roster, tmp_path: Path) -> None:
    titles = parse_titles(["01-gpt2-imdb=Lab 1: GPT-2 on IMDB (770011)",
                           "02-gpt4o-jsonl = Lab 2 (770012)"])
    book = canvas_gradebook(read_grades(grades_csv), roster, titles=titles, points=100)
    seen = canvas_import(book.write(tmp_path / "canvas.csv"), CANVAS_COURSE)
    assert seen["assignments"] == [{"title": "Lab 1: GPT-2 on IMDB", "id": "770011"},
                                   {"title": "Lab 2", "id": "770012"}]
    assert seen["points"] == {"Lab 1: GPT-2 on IMDB": "100", "Lab 2": "100"}
    assert seen["grades"][48211] == {"Lab 1: GPT-2 on IMDB": "85", "Lab 2": "100"}
    assert seen["grades"][48212] == {"Lab 1: GPT-2 on IMDB": "33.33", "Lab 2": "2"}


def test_students_the_roster_cannot_place_are_warnings_not_guesses(tmp_path: Path) -> None:
    grades = tmp_path / "grades.csv"
    grades.write_text(f"{HEADER},variant\n02-gpt4o-jsonl,amara,graded,1,1,1,1,,de\n"
                      f"02-gpt4o-jsonl,zoe,graded,1,1,1,1,,\n02-gpt4o-jsonl,eve,graded,1,1,1,1,,\n")
    people = tmp_path / "roster.csv"
    people.write_text("student,name,canvas_id\namara,Amara Okafor,48211\n"
                      "eve,=HYPERLINK(\"http://evil\"),\n")
    book = canvas_gradebook(read_grades(grades), roster_mod.load(people))
    assert [row[0] for row in book.rows[1:]] == ["Amara Okafor", "'=HYPERLINK(\"http://evil\")"]
    assert any(w.startswith("zoe: not in the roster") for w in book.warnings)
    assert any(w.startswith("eve: no canvas_id") and "by name only" in w for w in book.warnings)


@pytest.mark.parametrize(("text", "expected"), [
    ("assignment,student,score\n", "line 1: no column status, max_score"),
    (f"{HEADER}\n02,amara,graded,1,1,lots,15,\n", "line 2: score 'lots' is not a number"),
    (f"{HEADER}\n02,amara,graded,1,1,nan,15,\n", "line 2: score 'nan' is not a points value"),
    (f"{HEADER}\n02,amara,graded,1,1,1,15,\n02,amara,graded,1,1,1,15,\n",
     "line 3: a second row for amara in 02"),
    (f"{HEADER}\n02,amara,graded,1,1,1,15,\n02,bjorn,graded,1,1,1,12,\n",
     "line 3: 02 is out of 12 here but 15 above"),
])
def test_a_broken_grade_csv_names_its_line(tmp_path: Path, roster, text: str,
                                           expected: str) -> None:
    path = tmp_path / "grades.csv"
    path.write_text(text)
    with pytest.raises(ExportError, match=re.escape(expected)):
        canvas_gradebook(read_grades(path), roster, where=str(path))


def test_a_column_option_without_a_title_says_how_to_write_it() -> None:
    with pytest.raises(ExportError, match="ASSIGNMENT=CANVAS TITLE"):
        parse_titles(["01-gpt2-imdb"])


def test_the_export_command_writes_canvas_and_keeps_the_plain_csv(
        grades_csv: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    course = tmp_path / "course"
    (course / "source").mkdir(parents=True)
    out = tmp_path / "canvas.csv"
    code = main(["--root", str(course), "export", "--format", "canvas", "--from",
                 str(grades_csv), "--roster", str(LMS / "roster.csv"), "--to", str(out),
                 "--column", "02-gpt4o-jsonl=Lab 2 (770012)"])
    captured = capsys.readouterr()
    assert code == 1  # dara's failed grading run was left blank
    assert f"wrote {out}: 4 students, 2 assignment column(s)" in captured.out
    assert "warning: dara, 01-gpt2-imdb: failed" in captured.err
    assert canvas_import(out, CANVAS_COURSE)["grades"][48213]["Lab 2"] == "14"

    # Without --from, the grades are the plain export's, from the gradebook (here the plain
    # export is replaced by one that writes GRADES: a new gradebook takes many seconds).
    calls = []

    def plain_export(root, to=None):
        calls.append(to)
        path = Path(to or Path(root) / "grades.csv")
        path.write_text(GRADES)
        return path

    monkeypatch.setattr(grading, "export", plain_export)
    assert main(["--root", str(course), "export", "--format", "canvas",
                 "--roster", str(LMS / "roster.csv")]) == 1
    rows = list(csv.reader((course / "grades-canvas.csv").open()))
    assert rows[2] == ["Amara Okafor", "48211", "S1001", "aokafor", "Section A", "8.5", "15"]
    assert calls[0].parent != course, "the plain grades.csv must not be overwritten"
    assert not (course / "grades.csv").exists()
    # the plain export is still the plain export
    assert main(["--root", str(course), "export", "--to", str(tmp_path / "g.csv")]) == 0
    assert calls[-1] == str(tmp_path / "g.csv")
