"""autograder.i18n: language variants built from the English source and translated markdown.

Developed against the self-test assignment (tests/fixtures/course), copied into a temporary
course; the last tests check the real course's variants.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import i18n

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "course" / "source" / "selftest"
TAG = {"de": "[DE]", "zh": "[中文]"}


def _english_markdown(nb_path: Path) -> dict[str, str]:
    nb = nbformat.read(nb_path, as_version=4)
    return {key: i18n.cell_text(cell) for _, key, cell in i18n.markdown_cells(nb, nb_path.name)}


def _translate_all(root: Path, assignment: str = "selftest") -> None:
    """Write complete translation files (a tag in front of the English text, as a stand-in)."""
    for lang in i18n.LANGUAGES:
        path, _ = i18n.stub(root, assignment, lang)
        data = i18n.load_translations(path)
        for entries in data["notebooks"].values():
            for entry in entries.values():
                entry.pop("todo", None)
                entry.pop("english", None)
                entry["text"] = f"{TAG[lang]} {entry['text']}"
        i18n.dump_translations(data, path)


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A course with the self-test assignment (and a data file), translated and built."""
    shutil.copytree(FIXTURE, tmp_path / "source" / "selftest")
    (tmp_path / "source" / "selftest" / "data").mkdir()
    (tmp_path / "source" / "selftest" / "data" / "train.jsonl").write_bytes(b'{"a": 1}\r\n{"a": 2}')
    _translate_all(tmp_path)
    written, problems = i18n.build(tmp_path)
    assert problems == [] and len(written) == 2
    return tmp_path


def _messages(root: Path) -> list[str]:
    return [str(p) for p in i18n.check(root).problems]


def _edit_cell(nb_path: Path, grade_id: str, new_source: str) -> None:
    nb = nbformat.read(nb_path, as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    cell.source = new_source
    nbformat.write(nb, nb_path)


def test_variants_hold_translated_markdown_and_the_english_code(course: Path) -> None:
    english = nbformat.read(course / "source/selftest/selftest.ipynb", as_version=4)
    for lang in i18n.LANGUAGES:
        folder = course / "source" / f"selftest-{lang}"
        variant = nbformat.read(folder / "selftest.ipynb", as_version=4)
        assert len(variant.cells) == len(english.cells)
        for e, v in zip(english.cells, variant.cells):
            assert e.metadata == v.metadata and e.id == v.id and e.cell_type == v.cell_type
            if e.cell_type == "markdown":
                assert v.source == f"{TAG[lang]} {i18n.normalise(e.source)}"
            else:
                assert v.source == e.source
        assert variant.metadata["course_i18n"] == {"language": lang,
                                                   "english": "selftest/selftest.ipynb"}
        assert (folder / "data/train.jsonl").read_bytes() == b'{"a": 1}\r\n{"a": 2}'
    assert i18n.check(course).ok, _messages(course)
    assert i18n.main(["--root", str(course), "check"]) == 0


def test_a_code_change_in_english_reaches_every_variant(course: Path) -> None:
    nb_path = course / "source/selftest/selftest.ipynb"
    _edit_cell(nb_path, "add-answer", "def add(a, b):\n    ### BEGIN SOLUTION\n    return b + a\n"
                                      "    ### END SOLUTION")
    messages = _messages(course)
    for lang in i18n.LANGUAGES:
        assert any(m.startswith(f"selftest [{lang}] source/selftest-{lang}/selftest.ipynb: stale")
                   for m in messages), messages
    assert i18n.main(["--root", str(course), "check"]) == 1

    assert i18n.main(["--root", str(course), "build"]) == 0
    assert i18n.check(course).ok, _messages(course)
    for lang in i18n.LANGUAGES:
        variant = nbformat.read(course / f"source/selftest-{lang}/selftest.ipynb", as_version=4)
        (cell,) = [c for c in variant.cells
                   if c.metadata.get("nbgrader", {}).get("grade_id") == "add-answer"]
        assert "return b + a" in cell.source


def test_a_changed_english_cell_makes_its_translation_stale(course: Path) -> None:
    nb_path = course / "source/selftest/selftest.ipynb"
    _edit_cell(nb_path, "add-question", "## 1. Add two numbers\n\nWrite `add(a, b)`: the sum.")
    messages = _messages(course)
    for lang in i18n.LANGUAGES:
        assert any(m.startswith(f"selftest [{lang}] selftest.ipynb cell 2 ('add-question'): stale "
                                "translation") for m in messages), messages
    # build still writes the variants (old translation kept) but reports the problem
    assert i18n.main(["--root", str(course), "build"]) == 1
    # stub marks the entry todo, keeps the old translation and shows the new English beside it
    path, todo = i18n.stub(course, "selftest", "de")
    assert todo == 1
    entry = i18n.load_translations(path)["notebooks"]["selftest.ipynb"]["add-question"]
    assert entry["todo"] is True and entry["text"].startswith("[DE] ")
    assert entry["english"].endswith("the sum.")
    assert "no translation" in " ".join(str(p) for p in i18n.check(course).problems)


def test_a_renamed_cell_keeps_its_translation(course: Path) -> None:
    """A notebook rewritten by a script may give cells new ids: a cell whose English text did not
    change keeps its translation (found by the text's hash), and stub re-keys it."""
    nb_path = course / "source/selftest/selftest.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[0].metadata["nbgrader"]["grade_id"] = "intro-renamed"
    nbformat.write(nb, nb_path)
    i18n.build(course)
    assert i18n.check(course).ok, _messages(course)
    variant = nbformat.read(course / "source/selftest-de/selftest.ipynb", as_version=4)
    assert variant.cells[0].source.startswith("[DE] # Self-test assignment")
    path, todo = i18n.stub(course, "selftest", "de")
    entries = i18n.load_translations(path)["notebooks"]["selftest.ipynb"]
    assert todo == 0 and "intro-renamed" in entries and "intro" not in entries


def test_lint_warns_about_lost_code_and_chinese_line_breaks() -> None:
    english = "Write `add(a, b)` that returns\nthe sum of `a` and `b`.\n\n```python\nx = `y`\n```"
    assert i18n.lint_translation(english, "Schreiben Sie `add(a, b)`, die die Summe von `a` und `b` "
                                          "zurückgibt.", "de") == []
    (warning,) = i18n.lint_translation(english, "Schreiben Sie add(a, b) für `a` und `b`.", "de")
    assert warning == "inline code of the English text missing: `add(a, b)`"
    assert i18n.lint_translation(english, "编写 `add(a, b)`，返回 `a` 与 `b`\n(the sum)。", "zh") == []
    (warning,) = i18n.lint_translation(english, "编写 `add(a, b)`，返回\n`a` 与 `b` 之和。", "zh")
    assert warning.startswith("line break inside a paragraph after")
    assert i18n.lint_translation(english, "编写 `add(a, b)`：\n\n- `a` 与 `b` 之和。", "zh") == []


def test_missing_translations_fail_the_check(course: Path) -> None:
    path = i18n.translation_path(course, "selftest", "zh")
    data = i18n.load_translations(path)
    del data["notebooks"]["selftest.ipynb"]["intro"]
    i18n.dump_translations(data, path)
    assert "selftest [zh] selftest.ipynb cell 0 ('intro'): no translation" in _messages(course)
    path.unlink()
    messages = _messages(course)
    assert any(m.startswith("selftest [zh] course/i18n/selftest/zh.yaml: no translation file")
               for m in messages), messages


def test_a_hand_edited_variant_fails_the_check(course: Path) -> None:
    variant = course / "source/selftest-de/selftest.ipynb"
    _edit_cell(variant, "mean-answer", "def mean(values):\n    return 0")
    messages = _messages(course)
    assert any("cell 6 ('mean-answer'): code differs from the English cell" in m
               for m in messages), messages
    assert any(m.startswith("selftest [de] source/selftest-de/selftest.ipynb: stale")
               for m in messages)
    assert not any("[zh]" in m for m in messages)


def test_different_grade_ids_fail_the_check(course: Path) -> None:
    variant = course / "source/selftest-zh/selftest.ipynb"
    nb = nbformat.read(variant, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "add-tests":
            cell.metadata["nbgrader"]["grade_id"] = "add-tests-zh"
    nbformat.write(nb, variant)
    messages = _messages(course)
    assert any("selftest [zh] selftest.ipynb grade ids: differ from the English notebook "
               "(missing ['add-tests'] extra ['add-tests-zh'])" in m for m in messages), messages


def test_missing_or_extra_files_and_orphan_variants_fail(course: Path) -> None:
    (course / "source/selftest-de/data/train.jsonl").write_bytes(b"changed")
    (course / "source/selftest-zh/notes.txt").write_text("x")
    shutil.copytree(course / "source/selftest-de", course / "source/gone-de")
    shutil.rmtree(course / "source/selftest-zh/data")
    messages = _messages(course)
    assert "selftest [de] source/selftest-de/data/train.jsonl: differs from the English copy; " \
           "run build" in messages
    assert "selftest [zh] source/selftest-zh/notes.txt: not in the English folder; run build" in messages
    assert any(m.startswith("selftest [zh] source/selftest-zh/data/train.jsonl: missing")
               for m in messages)
    assert "gone [de] source/gone-de: variant without an English source folder; remove it" in messages
    shutil.rmtree(course / "source/gone-de")
    i18n.build(course)
    assert i18n.check(course).ok, _messages(course)
    assert not (course / "source/selftest-zh/notes.txt").exists()


def test_broken_translation_files_say_where(course: Path) -> None:
    path = i18n.translation_path(course, "selftest", "de")
    path.write_text("notebooks:\n  selftest.ipynb:\n    intro: [unclosed\n", encoding="utf-8")
    with pytest.raises(i18n.I18nError, match=r"de\.yaml: not valid YAML"):
        i18n.load_translations(path)
    path.write_text("notebooks:\n  selftest.ipynb:\n    intro: {text: hallo}\n", encoding="utf-8")
    with pytest.raises(i18n.I18nError, match=r"notebooks\.selftest\.ipynb\.intro must have 'hash'"):
        i18n.load_translations(path)
    assert i18n.main(["--root", str(course), "build"]) == 2


def test_json_translation_files_work_too(course: Path) -> None:
    yaml_path = i18n.translation_path(course, "selftest", "de")
    data = i18n.load_translations(yaml_path)
    yaml_path.unlink()
    i18n.dump_translations(data, yaml_path.with_suffix(".json"))
    assert json.loads(yaml_path.with_suffix(".json").read_text(encoding="utf-8"))["language"] == "de"
    assert i18n.check(course).ok, _messages(course)


def test_nbgrader_releases_a_variant(course: Path) -> None:
    """generate_assignment on a variant keeps the translation and the English grade ids."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", "selftest-zh", "--force",
         f"--CourseDirectory.root={course}",
         f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"],
        check=False, cwd=course, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    released = nbformat.read(course / "release/selftest-zh/selftest.ipynb", as_version=4)
    english = nbformat.read(FIXTURE / "selftest.ipynb", as_version=4)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in released.cells]
    assert ids == [c.metadata.get("nbgrader", {}).get("grade_id") for c in english.cells]
    assert released.cells[0].source.startswith("[中文] # Self-test assignment")
    assert "BEGIN SOLUTION" not in json.dumps(released)


# --------------------------------------------------------------------------- the real course


@pytest.mark.skipif(not i18n.english_assignments(REPO), reason="no English assignment in source/ yet")
def test_the_course_variants_are_current() -> None:
    """CI: every assignment in source/ has current de and zh variants with the English code."""
    report = i18n.check(REPO)
    assert report.ok, "\n".join(str(p) for p in report.problems) + (
        "\nFix: `python -m autograder.i18n build` after a code change; after a markdown change "
        "also update the translation (`python -m autograder.i18n stub <assignment> <lang>` marks "
        "what changed in course/i18n/)")


@pytest.mark.skipif(not i18n.english_assignments(REPO), reason="no English assignment in source/ yet")
def test_a_code_change_in_a_course_notebook_reaches_every_variant(tmp_path: Path) -> None:
    """On a copy of the real course: edit a code cell of each English notebook, build, and find
    the edit in every language's variant, with the translations untouched and still current."""
    shutil.copytree(REPO / "source", tmp_path / "source",
                    ignore=shutil.ignore_patterns("outputs", ".*", "executed-*", "mlruns"))
    shutil.copytree(REPO / "course" / "i18n", tmp_path / "course" / "i18n")
    marker = "# edited in English only"
    for assignment in i18n.english_assignments(tmp_path):
        for nb_path in (tmp_path / "source" / assignment).glob("*.ipynb"):
            nb = nbformat.read(nb_path, as_version=4)
            cell = next(c for c in nb.cells if c.cell_type == "code")
            cell.source = f"{marker}\n{cell.source}"
            nbformat.write(nb, nb_path)
    before = i18n.check(tmp_path)
    assert any("stale" in str(p) for p in before.problems)
    written, problems = i18n.build(tmp_path)
    assert problems == [], problems
    assert len(written) == 2 * len(i18n.english_assignments(tmp_path))
    assert i18n.check(tmp_path).ok, _messages(tmp_path)
    for folder in written:
        for nb_path in folder.glob("*.ipynb"):
            nb = nbformat.read(nb_path, as_version=4)
            assert next(c for c in nb.cells if c.cell_type == "code").source.startswith(marker)
            assert nb.metadata["course_i18n"]["language"] == folder.name.rsplit("-", 1)[1]
