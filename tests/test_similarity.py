"""The report of similar answers: ``python -m autograder similarity ASSIGNMENT``.

The class (tests/fixtures/lms/class/*.cells) is ten students' answers to 02-gpt4o-jsonl, put
into the course's real release notebook: eight answered on their own, in their own styles;
ines copied dara's answers, renamed the variables, reordered lines and reworded comments."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape

from autograder import roster as roster_mod
from autograder.__main__ import main
from autograder.collect import collect
from autograder.similarity import _highlight, similarity

REPO = Path(__file__).resolve().parent.parent
LMS = REPO / "tests" / "fixtures" / "lms"
A = "02-gpt4o-jsonl"
NB = "gpt4o_jsonl.ipynb"
CLASS = sorted(p.stem for p in (LMS / "class").glob("*.cells"))



def _fixture_builder():
    """tests/fixtures/lms/make_zips.py: one source of truth for the class's notebooks."""
    spec = importlib.util.spec_from_file_location("make_zips", LMS / "make_zips.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_builder = _fixture_builder()
cells, notebook = _builder.cells, _builder.notebook


def course(root: Path) -> Path:
    for folder in ("source", "release"):
        for name in (A, f"{A}-de"):
            shutil.copytree(REPO / folder / name, root / folder / name)
    return root


def submit(root: Path, student: str, content: bytes, assignment: str = A) -> None:
    folder = root / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    (folder / NB).write_bytes(content)


@pytest.fixture
def klass(tmp_path: Path) -> Path:
    root = course(tmp_path / "course")
    for student in CLASS:
        submit(root, student, notebook(student, root=root))
    return root


def pair(result, rank: int = 0) -> set[str]:
    return {result.pairs[rank].a.student, result.pairs[rank].b.student}


def test_the_class_is_ten_varied_answers_in_the_release_notebook(klass: Path) -> None:
    assert len(CLASS) == 10
    ids = {c["metadata"]["nbgrader"]["grade_id"] for c in json.loads(
        (klass / "release" / A / NB).read_text())["cells"]
        if c["metadata"].get("nbgrader", {}).get("solution")}
    for student in CLASS:
        assert set(cells(student)) == ids, f"{student} answers other cells than the release has"
    code = {s: cells(s)["estimate"] for s in CLASS}
    assert len(set(code.values())) == 10


def test_the_two_copied_submissions_rank_first(klass: Path) -> None:
    result = similarity(klass, A)
    assert len(result.submissions) == 10 and len(result.pairs) == 45
    assert pair(result) == {"dara", "ines"}
    top, second = result.pairs[0], result.pairs[1]
    assert top.score > 0.6, top.score  # measured: 0.79
    assert second.score < 0.35, second.score  # measured: 0.18 (greta, jonas)
    assert top.code[0] > 0.8 and top.text[0] > 0.4  # renamed code, reworded text
    assert not top.identical
    assert result.notes == []


def test_untouched_notebooks_do_not_look_alike(klass: Path) -> None:
    untouched = (klass / "release" / A / NB).read_bytes()
    submit(klass, "blank1", untouched)
    submit(klass, "blank2", untouched)
    result = similarity(klass, A)
    assert pair(result) == {"dara", "ines"}
    blanks = next(p for p in result.pairs if {p.a.student, p.b.student} == {"blank1", "blank2"})
    assert blanks.score == 0 and not blanks.identical


def test_a_copy_in_another_language_variant_is_found(klass: Path) -> None:
    shutil.rmtree(klass / "submitted" / "ines" / A)
    submit(klass, "ines", notebook("ines", f"{A}-de", root=klass), f"{A}-de")
    result = similarity(klass, A)
    assert pair(result) == {"dara", "ines"}
    assert result.pairs[0].b.label == "ines (de)" or result.pairs[0].a.label == "ines (de)"
    assert len(similarity(klass, A, variants=False).submissions) == 9


def test_the_report_shows_the_pairs_side_by_side(klass: Path) -> None:
    result = similarity(klass, A, detail=3)
    html = result.report.read_text()
    assert result.report == klass / "similarity" / f"{A}.html"
    assert html.count('<section class="pair"') == 3
    first = html[html.index('id="pair-1"'):html.index('id="pair-2"')]
    assert "dara" in first and "ines" in first
    assert "<mark>" in first and "running = running + tokens_per_message" in first
    assert "acc = acc + tokens_per_message" in first
    assert "nothing here changes a grade" in html


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}


def test_student_text_cannot_become_html_or_script(klass: Path) -> None:
    attack = '</pre><script>alert("code")</script><img src=x onerror=alert(1)>'
    nb = json.loads(notebook("dara", root=klass))
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("grade_id") == "submit":
            cell["source"] += f"\n# {attack}\nprint('{attack}')\n"
        if meta.get("grade_id") == "seed-question":
            cell["source"] += f"\n\n{attack}"
    submit(klass, "mallory<b>", json.dumps(nb).encode())  # a copy of dara's, with the attack
    nb["metadata"]["kernelspec"]["display_name"] = attack
    submit(klass, "<script>x", json.dumps(nb).encode())
    html = similarity(klass, A, detail=50).report.read_text()
    parser = Tags()
    parser.feed(html)
    assert "script" not in parser.tags and "img" not in parser.tags and "b" in parser.tags
    assert not {a for a in parser.attributes if a.startswith("on")}
    assert parser.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3",
                           "p", "b", "code", "table", "tr", "th", "td", "a", "section", "div",
                           "pre", "mark", "ul", "li"}
    assert "&lt;script&gt;alert(" in html and "mallory&lt;b&gt;" in html
    assert "&lt;script&gt;x" in html  # the student id, a folder name, is escaped too
    # copydetect's highlighter returns a document without a match unescaped: not here
    assert str(_highlight(attack, np.array([]))) == str(escape(attack))
    assert re.search(r"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
                     r"'none'; style-src 'unsafe-inline'\">", html)
    assert not re.search(r"(src|href)=\"(?!#pair-)", html), "the report loads nothing"


def test_unreadable_and_foreign_notebooks_are_noted_not_compared(klass: Path) -> None:
    submit(klass, "broken", b"{this is not json")
    nb = json.loads(notebook("amara", root=klass))
    for cell in nb["cells"]:
        cell["metadata"].pop("nbgrader", None)
    submit(klass, "copied-by-hand", json.dumps(nb).encode())
    (klass / "submitted" / "empty" / A).mkdir(parents=True)
    result = similarity(klass, A)
    assert len(result.submissions) == 10
    assert any("broken" in n and "not a readable notebook" in n for n in result.notes)
    assert any("copied-by-hand" in n and "no answer cell" in n for n in result.notes)
    assert any("empty" in n and f"no {NB}" in n for n in result.notes)


def test_nothing_is_penalised_and_nothing_submitted_changes(klass: Path) -> None:
    def digest() -> str:
        files = sorted((klass / "submitted").rglob("*"))
        return hashlib.sha256(b"".join(p.read_bytes() for p in files if p.is_file())).hexdigest()

    before = digest()
    similarity(klass, A)
    assert digest() == before
    assert not (klass / "gradebook.db").exists() and not (klass / "autograded").exists()


def test_the_similarity_command_prints_the_ranking(klass: Path, tmp_path: Path,
                                                   capsys) -> None:
    report = tmp_path / "report.html"
    assert main(["--root", str(klass), "similarity", A, "--to", str(report)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"10 submissions of {A}, 45 pairs compared"
    assert lines[2].split()[2:] == ["dara", "ines"]
    assert lines[-1] == f"report: {report}" and report.is_file()
    assert main(["--root", str(klass), "similarity", "03-nope"]) == 2


def test_the_class_loop_from_an_lms_download_to_the_report(tmp_path: Path) -> None:
    """Collect Canvas's download of the class (tests/fixtures/lms), then compare: the copied
    pair is first, whatever the LMS did to the file names."""
    root = course(tmp_path / "course")
    report = collect(root, LMS / "canvas-submissions.zip", A,
                     roster=roster_mod.load(LMS / "roster.csv"))
    assert sum(s.status == "collected" for s in report.students) == 7
    result = similarity(root, A)
    assert pair(result) == {"dara", "ines"}
