"""The roster that maps LMS identities to the course's student ids (autograder/roster.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder import roster
from autograder.roster import RosterError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "lms" / "roster.csv"


def write(tmp_path: Path, text: str, name: str = "roster.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def test_the_fixture_roster_matches_by_lms_id_then_by_name() -> None:
    people = roster.load(FIXTURE)
    assert len(people) == 9
    assert people.match("canvas_id", "48211", "whoever") == (people.get("student", "amara"), "")
    assert people.match("moodle_id", "1234502", "")[0].student == "bjorn"
    # Canvas writes the sortable name without punctuation: "Chen, Wei" -> "chenwei".
    assert people.by_name("chenwei")[0].student == "chen"
    assert people.by_name("Wei Chen")[0].student == "chen"
    assert people.by_name("okaforamara")[0].student == "amara"
    assert people.by_name("Amara Okafor")[0].student == "amara"
    assert people.by_name("lindqvistbjörn")[0].student == "bjorn"
    # greta has no moodle_id: a Moodle id plus her name finds her, and says how
    assert people.match("moodle_id", "1234507", "Greta Holm") == (people.get("student", "greta"),
                                                                  "matched by name")


def test_an_unknown_id_never_borrows_the_row_of_someone_with_another_id() -> None:
    people = roster.load(FIXTURE)
    person, why = people.match("canvas_id", "99999", "Amara Okafor")
    assert person is None
    assert "99999 is not in the roster" in why and "amara" in why and "48211" in why


def test_a_name_shared_by_two_rows_is_ambiguous(tmp_path: Path) -> None:
    path = write(tmp_path, "student,name\nkim1,Min Kim\nkim2,Min Kim\n")
    person, why = roster.load(path).match("canvas_id", "7", "kimmin")
    assert person is None
    assert "kim1" in why and "kim2" in why and "LMS ids" in why


def test_a_spreadsheets_roster_with_bom_and_semicolons_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffStudent;Name;Canvas ID\namara;Okafor, Amara;48211\n")
    people = roster.load(path)
    assert people.get("canvas_id", "48211").name == "Okafor, Amara"


@pytest.mark.parametrize(("text", "expected"), [
    ("name,canvas_id\nAmara,1\n", "line 1: no 'student' column"),
    ("student,name\n../amara,Amara\n", "line 2: student id '../amara' cannot be a folder name"),
    ("student,name\n.hidden,Amara\n", "line 2: student id '.hidden'"),
    ("student,name\n\namara,Amara\namara,Amara Okafor\n", "lines 3 and 4: student 'amara'"),
    ("student,canvas_id\na,7\nb,7\n", "lines 2 and 3: canvas_id '7' appears twice"),
    ("student,name\namara,Okafor, Amara\n", "line 2: 3 values for 2 columns"),
    ("", "empty"),
])
def test_a_broken_roster_names_the_file_line_and_fix(tmp_path: Path, text: str,
                                                     expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RosterError) as error:
        roster.load(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_a_missing_or_binary_roster_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RosterError, match="no roster at .*--roster FILE"):
        roster.load(tmp_path / "roster.csv")
    path = tmp_path / "roster.csv"
    path.write_bytes("student\nbjörn\n".encode("latin-1"))
    with pytest.raises(RosterError, match="not UTF-8 text.*CSV UTF-8"):
        roster.load(path)
