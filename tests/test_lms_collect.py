"""LMS in: ``python -m autograder collect ARCHIVE ASSIGNMENT`` on Canvas and Moodle downloads
(tests/fixtures/lms/*.zip, made by make_zips.py) and on archives built to break it."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from autograder import grading
from autograder import roster as roster_mod
from autograder.__main__ import main
from autograder.collect import CollectError, collect
from autograder.safezip import ArchiveError, Limits, copy_member, member_name

REPO = Path(__file__).resolve().parent.parent
LMS = REPO / "tests" / "fixtures" / "lms"
CANVAS = LMS / "canvas-submissions.zip"
MOODLE = LMS / "moodle-submissions.zip"
A = "02-gpt4o-jsonl"
NB = "gpt4o_jsonl.ipynb"


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A course with assignment 02 and its German variant, nothing submitted."""
    root = tmp_path / "course"
    for folder in ("source", "release"):
        for name in (A, f"{A}-de"):
            shutil.copytree(REPO / folder / name, root / folder / name)
    return root


@pytest.fixture(scope="module")
def roster() -> roster_mod.Roster:
    return roster_mod.load(LMS / "roster.csv")


def member(archive: Path, name: str) -> bytes:
    with zipfile.ZipFile(archive) as zf:
        return zf.read(name)


def submitted(root: Path) -> dict[str, bytes]:
    base = root / "submitted"
    return {p.relative_to(base).as_posix(): p.read_bytes()
            for p in sorted(base.rglob("*")) if p.is_file()} if base.is_dir() else {}


def make_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members:
            zf.writestr(name, content)
    return path


def zip_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members:
            zf.writestr(name, content)
    return buffer.getvalue()


NOTEBOOK = member(CANVAS, "okaforamara_48211_9001_gpt4o_jsonl.ipynb")


def test_a_canvas_download_lands_in_submitted(course: Path, roster) -> None:
    report = collect(course, CANVAS, A, roster=roster)
    assert report.lms == "Canvas"
    assert {s.student: (s.status, s.assignment) for s in report.students} == {
        "amara": ("collected", A), "bjorn": ("collected", A), "chen": ("collected", A),
        "dara": ("collected", A), "elif": ("collected", f"{A}-de"), "greta": ("no file", A),
        "hiro": ("collected", A), "ines": ("collected", A)}
    files = submitted(course)
    assert set(files) == {
        f"amara/{A}/{NB}", f"amara/{A}/data/training_set.jsonl", f"bjorn/{A}/{NB}",
        f"chen/{A}/{NB}", f"dara/{A}/{NB}", f"dara/{A}/data/validation_set.jsonl",
        f"elif/{A}-de/{NB}", f"hiro/{A}/{NB}", f"ines/{A}/{NB}"}
    # a flat upload of a data file goes where the release keeps it
    assert files[f"amara/{A}/data/training_set.jsonl"] == member(
        CANVAS, "okaforamara_48211_9002_training_set.jsonl")
    # a re-upload: the newest attachment (9031, named -1) wins over the older 9020
    assert files[f"chen/{A}/{NB}"] == member(CANVAS, "chenwei_48213_9031_gpt4o_jsonl-1.ipynb")
    assert any("kept gpt4o_jsonl-1.ipynb, the newest" in d for d in report.duplicates)
    # the student's own zip, unwrapped from its folder, without macOS junk
    with zipfile.ZipFile(io.BytesIO(member(CANVAS, "byrnedara_48214_9040_submission.zip"))) as z:
        assert files[f"dara/{A}/{NB}"] == z.read(f"{A}/{NB}")
    assert files[f"hiro/{A}/{NB}"] == member(CANVAS, "tanakahiro_48218_9080_my_solution.ipynb")
    hiro = next(s for s in report.students if s.student == "hiro")
    assert any("renamed to gpt4o_jsonl.ipynb" in n for n in hiro.notes)
    # the German notebook (metadata.course_i18n) goes to the German variant
    assert json.loads(files[f"elif/{A}-de/{NB}"])["metadata"]["course_i18n"]["language"] == "de"
    assert [s.student for s in report.late] == ["bjorn"]
    assert len(report.unmatched) == 1 and "48216" in report.unmatched[0]
    assert "rahimifarid_48216_9060_gpt4o_jsonl.ipynb" in report.unmatched[0]
    greta = next(s for s in report.students if s.student == "greta")
    assert any("text entry, not a file" in n for n in greta.notes)
    assert report.missing == ["jonas (Jonas Weber)"]
    assert report.needs_attention
    assert not list((course / "submitted").glob(".collect-*")), "the staging folder is left"


def test_a_moodle_download_lands_in_submitted(course: Path, roster) -> None:
    report = collect(course, MOODLE, A, roster=roster)
    assert report.lms == "Moodle"
    status = {s.student: (s.status, s.assignment) for s in report.students}
    assert status == {name: ("collected", A) for name in
                      ("amara", "bjorn", "chen", "dara", "greta", "hiro", "ines")} | {
        "elif": ("collected", f"{A}-de")}
    files = submitted(course)
    folder = "Hiro Tanaka_1234508_assignsubmission_file_"
    assert files[f"hiro/{A}/{NB}"] == member(MOODLE, f"{folder}/notebooks/{NB}")
    assert files[f"hiro/{A}/data/training_set.jsonl"] == member(
        MOODLE, f"{folder}/notebooks/data/training_set.jsonl")
    # the exact name wins over the browser's "(1)" copy
    assert files[f"chen/{A}/{NB}"] == member(MOODLE, f"Chen Wei_1234503_assignsubmission_file_/{NB}")
    greta = next(s for s in report.students if s.student == "greta")
    assert any("matched by name" in n and "moodle_id" in n for n in greta.notes)
    dara = next(s for s in report.students if s.student == "dara")
    assert any("online text, not a file" in n for n in dara.notes)
    assert len(report.unmatched) == 1 and "Farid Rahimi" in report.unmatched[0]
    assert report.late == []  # Moodle's download carries no late marker


def test_importing_the_same_download_twice_changes_nothing(course: Path, roster) -> None:
    collect(course, CANVAS, A, roster=roster)
    before = submitted(course)
    report = collect(course, CANVAS, A, roster=roster)
    assert {s.status for s in report.students} == {"unchanged", "no file"}
    assert submitted(course) == before


def test_a_different_submission_is_kept_unless_replace_is_asked(course: Path, roster) -> None:
    collect(course, CANVAS, A, roster=roster)
    mine = course / "submitted" / "amara" / A / NB
    mine.write_text('{"graded": "by hand"}')
    report = collect(course, CANVAS, A, roster=roster)
    amara = next(s for s in report.students if s.student == "amara")
    assert amara.status == "kept existing"
    assert any("--replace" in n for n in amara.notes)
    assert mine.read_text() == '{"graded": "by hand"}'
    assert report.needs_attention
    report = collect(course, CANVAS, A, roster=roster, replace=True)
    assert next(s for s in report.students if s.student == "amara").status == "replaced"
    assert mine.read_bytes() == NOTEBOOK


def test_a_dry_run_writes_nothing(course: Path, roster) -> None:
    report = collect(course, MOODLE, A, roster=roster, dry_run=True)
    assert {s.status for s in report.students} == {"would collect"}
    assert not (course / "submitted").exists()


def test_a_submission_for_another_language_variant_is_reported(course: Path, roster) -> None:
    earlier = course / "submitted" / "elif" / A
    earlier.mkdir(parents=True)
    (earlier / NB).write_bytes(NOTEBOOK)
    report = collect(course, CANVAS, A, roster=roster)
    assert any(d.startswith("elif: also has a submission for 02-gpt4o-jsonl")
               for d in report.duplicates)


# --------------------------------------------------------------------------- unsafe archives

def link(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def set_flags(raw: bytes, name: str, set_bits: int = 0, clear_bits: int = 0) -> bytes:
    """The archive with the general-purpose flags of member ``name`` changed in its local and
    central headers (Python's zipfile writes its own flags, so tests patch the bytes)."""
    out = bytearray(raw)
    for signature, length_at, name_at, flags_at in ((b"PK\x03\x04", 26, 30, 6),
                                                    (b"PK\x01\x02", 28, 46, 8)):
        start = 0
        while (start := out.find(signature, start)) >= 0:
            size = int.from_bytes(out[start + length_at:start + length_at + 2], "little")
            if out[start + name_at:start + name_at + size] == name.encode():
                flags = int.from_bytes(out[start + flags_at:start + flags_at + 2], "little")
                flags = (flags | set_bits) & ~clear_bits
                out[start + flags_at:start + flags_at + 2] = flags.to_bytes(2, "little")
            start += 4
    return bytes(out)


GOOD = ("okaforamara_48211_9001_gpt4o_jsonl.ipynb", NOTEBOOK)


@pytest.mark.parametrize(("bad", "limits", "expected"), [
    (("../../okaforamara_48211_9002_evil.ipynb", b"{}"), None, "climbs out of its folder"),
    (("okaforamara_48211_9002_/../../evil.py", b""), None, "climbs out of its folder"),
    (("..\\..\\okaforamara_48211_9002_evil.py", b""), None, "climbs out of its folder"),
    (("/tmp/okaforamara_48211_9002_evil.py", b""), None, "absolute path"),
    (("C:/Users/okaforamara_48211_9002_evil.py", b""), None, "absolute path"),
    (link("okaforamara_48211_9002_data", "/etc/passwd"), None, "symbolic link"),
    (("okaforamara_48211_9002_secret.ipynb", b"encrypted"), None, "encrypted"),
    (("okaforamara_48211_9002_bomb.jsonl", b"\x00" * (8 * 2**20)), None, "zip bomb"),
    (("okaforamara_48211_9002_big.jsonl", os.urandom(4000)), Limits(member_bytes=3000),
     "zip bomb"),
    (("okaforamara_48211_9002_more.jsonl", os.urandom(4000)), Limits(total_bytes=5000),
     "zip bomb"),
    (("okaforamara_48211_9002_x.txt", b""), Limits(members=1), "2 members"),
])
def test_an_unsafe_member_stops_the_import_before_anything_is_written(
        course: Path, roster, tmp_path: Path, bad, limits, expected: str) -> None:
    archive = make_zip(tmp_path / "download.zip", [GOOD, bad])
    if bad[1] == b"encrypted":  # mark the member as encrypted (flag bit 0)
        archive.write_bytes(set_flags(archive.read_bytes(), bad[0], set_bits=0x1))
    with pytest.raises(ArchiveError) as error:
        collect(course, archive, A, roster=roster, limits=limits)
    assert expected in str(error.value)
    assert "download.zip" in str(error.value)
    assert submitted(course) == {}
    assert not list(tmp_path.rglob("evil*")), "a member escaped its folder"


def test_an_unsafe_zip_of_one_student_rejects_that_student_only(course: Path, roster,
                                                                tmp_path: Path) -> None:
    slip = zip_bytes([(NB, NOTEBOOK), ("../../../../evil.py", b"import os")])
    bomb = zip_bytes([(NB, NOTEBOOK), ("data/training_set.jsonl", b"\n" * (16 * 2**20))])
    archive = make_zip(tmp_path / "download.zip", [
        GOOD,
        ("lindqvistbjörn_48212_9010_work.zip", slip),
        ("chenwei_48213_9020_work.zip", bomb),
        ("byrnedara_48214_9040_work.zip", b"this is not a zip"),
    ])
    report = collect(course, archive, A, roster=roster)
    status = {s.student: s for s in report.students}
    assert status["amara"].status == "collected"
    for name, why in (("bjorn", "climbs out"), ("chen", "zip bomb"), ("dara", "not a readable")):
        assert status[name].status == "rejected"
        assert any(why in n for n in status[name].notes), status[name].notes
    assert set(submitted(course)) == {f"amara/{A}/{NB}"}
    assert not list(tmp_path.rglob("evil.py"))
    assert report.needs_attention


def test_a_member_longer_than_its_header_says_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="more bytes than its header declares"):
        copy_member(io.BytesIO(b"x" * 100), tmp_path / "out", 10, 2**20, "member m")


def test_utf8_names_without_the_utf8_flag_are_read_as_utf8(tmp_path: Path) -> None:
    name = "lindqvistbjörn_48212_9010_gpt4o_jsonl.ipynb"
    raw = set_flags(zip_bytes([(name, b"{}")]), name, clear_bits=0x800)  # bit 11: UTF-8
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        info = zf.infolist()[0]
        assert info.filename != name  # what Python itself reads: cp437 mojibake
        assert member_name(info) == name


# --------------------------------------------------------------------------- other downloads

def test_a_download_rezipped_inside_its_folder_is_read(course: Path, roster,
                                                       tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "again.zip", [(f"submissions/{GOOD[0]}", GOOD[1]),
                                                ("submissions/.DS_Store", b"junk")])
    report = collect(course, archive, A, roster=roster)
    assert [(s.student, s.status) for s in report.students] == [("amara", "collected")]


def test_names_that_fit_no_lms_are_reported(course: Path, roster, tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "mixed.zip", [GOOD, ("README.txt", b"hi"),
                                                ("grades/notes.ipynb", b"{}")])
    report = collect(course, archive, A, roster=roster)
    assert report.unrecognised == ["README.txt", "grades/notes.ipynb"]
    assert report.needs_attention


def test_an_archive_of_no_lms_and_a_file_that_is_no_zip_are_refused(course: Path, roster,
                                                                   tmp_path: Path) -> None:
    with pytest.raises(CollectError, match="fits Canvas's .* or Moodle's"):
        collect(course, make_zip(tmp_path / "x.zip", [(NB, NOTEBOOK)]), A, roster=roster)
    with pytest.raises(CollectError, match="fits Moodle's .*: okaforamara_48211"):
        collect(course, CANVAS, A, roster=roster, lms="moodle")
    text = tmp_path / "grades.zip"
    text.write_text("not a zip")
    with pytest.raises(CollectError, match="not a zip archive"):
        collect(course, text, A, roster=roster)
    with pytest.raises(CollectError, match="no assignment '03-nope'.*02-gpt4o-jsonl"):
        collect(course, CANVAS, "03-nope", roster=roster)


def test_two_lms_identities_of_one_student_import_neither(course: Path, tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text("student,name\namara,Amara Okafor\n")  # no LMS ids: names decide
    names_only = roster_mod.load(path)
    archive = make_zip(tmp_path / "two.zip", [GOOD, ("okaforamara_50000_9100_gpt4o_jsonl.ipynb",
                                                      NOTEBOOK)])
    report = collect(course, archive, A, roster=names_only)
    assert [s.status for s in report.students] == ["rejected", "rejected"]
    assert "2 LMS identities map to this student" in report.duplicates[0]
    assert submitted(course) == {}


def test_moodle_blind_marking_and_flat_names(course: Path, roster, tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "blind.zip", [
        (f"Participant_1234501_assignsubmission_file_/{NB}", NOTEBOOK),
        (f"Participant_1234502_assignsubmission_file_{NB}", NOTEBOOK),  # Moodle < 3.1: flat
    ])
    report = collect(course, archive, A, roster=roster)
    assert {(s.student, s.status) for s in report.students} == {("amara", "collected"),
                                                              ("bjorn", "collected")}


# --------------------------------------------------------------------------- commands

def test_the_collect_command_prints_the_report_and_exits_1_when_something_needs_you(
        course: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    code = main(["--root", str(course), "collect", str(CANVAS), A,
                 "--roster", str(LMS / "roster.csv"), "--report", str(out)])
    printed = capsys.readouterr().out
    assert code == 1
    assert "8 matched submissions: 7 collected, 1 no file" in printed
    assert "not in the roster: not imported (1)" in printed and "rahimifarid" in printed
    assert "late (1):\n  bjorn" in printed
    assert json.loads(out.read_text())["late"] == ["bjorn"]
    ok = make_zip(tmp_path / "ok.zip", [GOOD])
    assert main(["--root", str(course), "collect", str(ok), A,
                 "--roster", str(LMS / "roster.csv"), "--replace"]) == 0


def test_the_collect_command_without_a_roster_says_how_to_write_one(course: Path,
                                                                     capsys) -> None:
    assert main(["--root", str(course), "collect", str(CANVAS), A]) == 2
    assert "no roster at" in capsys.readouterr().err


def test_nbgrader_zip_collect_reads_canvas_names_with_the_course_collector(
        course: Path, tmp_path: Path) -> None:
    """The same parser as a plugin of nbgrader's own `zip_collect`."""
    archive = course / "downloaded" / A / "archive"
    archive.mkdir(parents=True)
    make_zip(archive / "canvas.zip", [
        GOOD, ("lindqvistbjörn_late_48212_9010_gpt4o_jsonl-1.ipynb", NOTEBOOK)])
    grading.nbgrader(["zip_collect", A, "--collector=autograder.lms_names.CanvasCollector",
                      f"--CanvasCollector.roster={LMS / 'roster.csv'}"], course, timeout=300)
    assert set(submitted(course)) == {f"amara/{A}/{NB}", f"bjorn/{A}/{NB}"}


@pytest.mark.parametrize(("name", "expected"), [
    ("doejane_48213_901_gpt4o_jsonl.ipynb", ("doejane", "48213", False, 901, NB)),
    ("doejane_late_48213_901_gpt4o_jsonl-2.ipynb", ("doejane", "48213", True, 901,
                                                    "gpt4o_jsonl-2.ipynb")),
    ("doejane_LATE_48213_901_data_2024_v2.jsonl", ("doejane", "48213", True, 901,
                                                  "data_2024_v2.jsonl")),
    ("doe-jane-late_48213_901_my notebook.ipynb", ("doe-jane", "48213", True, 901,
                                                   "my notebook.ipynb")),  # Canvas before 2019
    ("müllerjörg_48213_901_gpt4o_jsonl.ipynb", ("müllerjörg", "48213", False, 901, NB)),
    ("48213_901_gpt4o_jsonl.ipynb", ("", "48213", False, 901, NB)),  # anonymous grading
    ("late_48213_901_gpt4o_jsonl.ipynb", ("", "48213", True, 901, NB)),
    ("doejane_late_48213_text.html", ("doejane", "48213", True, 0, "doejane_late_48213_text.html")),
    ("gpt4o_jsonl.ipynb", None),
    ("doejane_48213_gpt4o_jsonl.ipynb", None),
    ("folder/doejane_48213_901_gpt4o_jsonl.ipynb", None),
])
def test_canvas_file_names(name: str, expected) -> None:
    from autograder.lms_names import CanvasCollector

    parsed = CanvasCollector().parse(name)
    got = parsed and (parsed["name"], parsed["student_id"], parsed["late"], parsed["order"],
                      parsed["file_id"])
    assert got == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("Jane Doe_1234567_assignsubmission_file_/gpt4o_jsonl.ipynb", ("Jane Doe", "1234567", NB)),
    ("Jane Doe_1234567_assignsubmission_file_/data/training_set.jsonl",
     ("Jane Doe", "1234567", "data/training_set.jsonl")),
    ("Jane Doe_1234567_assignsubmission_file_gpt4o_jsonl.ipynb", ("Jane Doe", "1234567", NB)),
    ("Participant_1234567_assignsubmission_file_/gpt4o_jsonl.ipynb", ("", "1234567", NB)),
    ("Team 2-Jane Doe_1234567_assignsubmission_file_/x_1_2.ipynb",
     ("Team 2-Jane Doe", "1234567", "x_1_2.ipynb")),
    ("Jane Doe_1234567_assignsubmission_onlinetext_/onlinetext.html",
     ("Jane Doe", "1234567", "onlinetext.html")),
    ("Jane Doe_assignsubmission_file_/gpt4o_jsonl.ipynb", None),
    ("doejane_48213_901_gpt4o_jsonl.ipynb", None),
])
def test_moodle_file_names(name: str, expected) -> None:
    from autograder.lms_names import MoodleCollector

    parsed = MoodleCollector().parse(name)
    assert (parsed and (parsed["name"], parsed["student_id"], parsed["file_id"])) == expected
    if parsed and "onlinetext" in name:
        assert parsed["text"] == "online text"
