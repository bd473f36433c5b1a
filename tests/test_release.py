"""The CI check (autograder.ci_check): it passes on every assignment of the course, and it fails
when any one of its four conditions is broken.

The break tests run ONE check over a course with five copies of the self-test assignment: one
clean and four each broken in one way, so each condition is seen failing on its own copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autograder import ci_check, grading
from tests.conftest import REPO, copy_fixture_course

pytestmark = pytest.mark.requires("sandbox")


def _edit_cell(path: Path, grade_id: str, edit) -> None:
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == grade_id:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = edit(source)
    path.write_text(json.dumps(nb, indent=1))


def _clone(root: Path, name: str) -> None:
    for folder in ("source", "release"):
        shutil.copytree(root / folder / "selftest", root / folder / name)


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], ci_check.Finding]:
    root = copy_fixture_course(tmp_path_factory.mktemp("ci") / "course")
    for name in ("stale", "marker", "wrong-solution", "solved-release"):
        _clone(root, name)
    nb = "selftest.ipynb"
    # 1. stale release: the source's instructions changed after the release was generated.
    _edit_cell(root / "source/stale" / nb, "add-question", lambda s: s + "\n\nNew hint.")
    # 2. a solution marker left in the release.
    _edit_cell(root / "release/marker" / nb, "mean-answer",
               lambda s: s.replace("# YOUR CODE HERE", "### BEGIN SOLUTION\n    # YOUR CODE HERE"))
    # 3. the source's own solution is wrong: it cannot score full.
    _edit_cell(root / "source/wrong-solution" / nb, "add-answer",
               lambda s: s.replace("return a + b", "return a - b"))
    # 4. the release gives the answer away: it scores points untouched.
    _edit_cell(root / "release/solved-release" / nb, "add-answer",
               lambda s: "def add(a, b):\n    return a + b")
    results = ci_check.check(root, jobs=2)
    return {(f.assignment, f.condition): f for f in results}


def _failing(findings: dict, assignment: str) -> set[str]:
    return {c for (a, c), f in findings.items() if a == assignment and not f.ok}


def test_clean_assignment_passes_all_four(findings: dict) -> None:
    assert _failing(findings, "selftest") == set()
    assert findings[("selftest", "source-scores-full")].detail == "3/3 on 2 autograded cells"
    assert findings[("selftest", "release-scores-zero")].detail == "0/3 on 2 autograded cells"


def test_stale_release_fails(findings: dict) -> None:
    assert _failing(findings, "stale") == {"release-up-to-date"}
    assert "selftest.ipynb differs" in findings[("stale", "release-up-to-date")].detail


def test_marker_in_release_fails(findings: dict) -> None:
    assert "no-markers-in-release" in _failing(findings, "marker")
    assert "BEGIN SOLUTION" in findings[("marker", "no-markers-in-release")].detail


def test_source_not_full_fails(findings: dict) -> None:
    assert _failing(findings, "wrong-solution") == {"source-scores-full"}
    assert "selftest/add-tests scored 0 of 2" in findings[("wrong-solution", "source-scores-full")].detail


def test_release_not_zero_fails(findings: dict) -> None:
    assert "release-scores-zero" in _failing(findings, "solved-release")
    assert "selftest/add-tests scored 2" in findings[("solved-release", "release-scores-zero")].detail


def test_marker_scan_reads_every_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.md").write_text("ok\n=== BEGIN MARK SCHEME ===\n")
    assert ci_check.find_markers(tmp_path) == ["data/notes.md:2: BEGIN MARK SCHEME"]


COURSE_ASSIGNMENTS = grading.assignments(REPO)


@pytest.fixture(scope="module")
def course_findings() -> dict[str, list[ci_check.Finding]]:
    """One check over the whole course (language variants with the English code inherit its
    grading, see ci_check.same_code_as), grouped by assignment."""
    out: dict[str, list[ci_check.Finding]] = {}
    for finding in ci_check.check(REPO, jobs=2):
        out.setdefault(finding.assignment, []).append(finding)
    return out


@pytest.mark.skipif(not COURSE_ASSIGNMENTS, reason="no assignment in source/ yet")
@pytest.mark.parametrize("assignment", COURSE_ASSIGNMENTS)
def test_course_assignment_passes_ci_check(course_findings: dict, assignment: str) -> None:
    findings = course_findings[assignment]
    assert [f.condition for f in findings] == list(ci_check.CONDITIONS)
    failed = [str(f) for f in findings if not f.ok]
    assert not failed, "\n".join(failed)


def test_variant_with_the_english_code_inherits_its_grading(fixture_course: Path) -> None:
    shutil.copytree(fixture_course / "source/selftest", fixture_course / "source/selftest-de")
    assert ci_check.same_code_as(fixture_course, "selftest-de", ["selftest", "selftest-de"]) == "selftest"
    _edit_cell(fixture_course / "source/selftest-de/selftest.ipynb", "add-answer",
               lambda s: s.replace("return a + b", "return b + a"))
    assert ci_check.same_code_as(fixture_course, "selftest-de", ["selftest", "selftest-de"]) is None
