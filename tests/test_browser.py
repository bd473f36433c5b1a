"""A student's real session and an instructor's, in a real browser: Debian's headless Chromium
driven by Playwright (Playwright's own browser download does not work here) on the course's
JupyterLab (tests/conftest.py `lab`, fast mode).

- The student opens a release notebook with the answers filled in, runs every cell and sees the
  visible tests pass; presses nbgrader's *Validate* and reads its verdict; opens assignment 01 and
  runs its set-up cell, which imports ``helpers`` and says it runs in fast mode.
- The instructor opens a graded submission in the formgrader and sees its scores. That submission
  carries a script in a markdown answer and in an output (``samples`` kind ``xss``): nothing of it
  runs, there or in the feedback page, and no grade changes.

Screenshots are kept under ``test-artifacts/browser/`` (git-ignored) for a human to look at."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO

CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "test-artifacts" / "browser"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

EXPECT_TIMEOUT_MS = 120_000

pytestmark = pytest.mark.requires("browser")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import expect, sync_playwright

    # expect() waits 5 s by default, whatever the page's own timeout: opening a notebook on a busy
    # two-core machine (two test workers, a training run beside it) took longer (CI failure).
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _page(browser, timeout: int = 180_000):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(timeout)
    page.dialogs = []  # type: ignore[attr-defined]
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    return page


def _wait_for_kernel(page) -> None:
    """Lab reports the kernel idle a moment before its session is ready: wait for the status."""
    from playwright.sync_api import expect

    expect(page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar").first).to_be_visible(
        timeout=EXPECT_TIMEOUT_MS)
    page.wait_for_timeout(3_000)


def _run_all(page, notebook: str, attempts: int = 3) -> None:
    """Run every cell (Lab's "Run All Cells" command) and wait until no cell is pending."""
    from playwright.sync_api import expect

    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    prompts = panel.locator(".jp-CodeCell .jp-InputPrompt")
    for _ in range(attempts):
        page.keyboard.press("Escape")
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            expect(prompts.first).not_to_have_text(re.compile(r"^\[ \]"), timeout=30_000)
        except AssertionError:
            continue
        done = re.compile(r"^\[\d+\]")
        for i in range(prompts.count()):
            expect(prompts.nth(i)).to_have_text(done, timeout=300_000)
        return
    raise AssertionError(f"{notebook}: Run All never started")


def _student_copy(root: Path) -> str:
    """The self-test release notebook with the solutions pasted in, saved where a student works."""
    from autograder import samples

    release = nbformat.read(root / "release" / "selftest" / "selftest.ipynb", 4)
    source = nbformat.read(root / "source" / "selftest" / "selftest.ipynb", 4)
    folder = root / "work" / "selftest"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(samples.fill(release, source), folder / "selftest.ipynb")
    return "work/selftest/selftest.ipynb"


def test_student_runs_every_cell_sees_the_visible_tests_pass_and_validates(lab, browser) -> None:
    from playwright.sync_api import expect

    notebook = _student_copy(lab.root)
    page = _page(browser)
    try:
        page.goto(f"{lab.url}/lab/tree/{notebook}?reset&token={lab.token}")
        _wait_for_kernel(page)
        _run_all(page, notebook)
        panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        outputs = " ".join(panel.locator(".jp-OutputArea-output").all_inner_texts())
        assert "Traceback" not in outputs and "Error" not in outputs, outputs[:2000]
        page.screenshot(path=str(ARTIFACTS / "student-run-all.png"), full_page=True)
        # nbgrader's Validate button (notebook toolbar) runs the notebook as the grader would,
        # with the visible tests only, and shows its verdict in a dialog.
        panel.locator(".jp-Toolbar").get_by_text("Validate", exact=True).click()
        dialog = page.locator(".jp-Dialog")
        expect(dialog).to_be_visible(timeout=300_000)
        expect(dialog).to_contain_text("Success", timeout=300_000)
        page.screenshot(path=str(ARTIFACTS / "student-validate.png"))
    finally:
        page.close()


def test_student_imports_helpers_in_assignment_01(lab, browser) -> None:
    from playwright.sync_api import expect

    notebook = "release/01-gpt2-imdb/gpt2_imdb.ipynb"
    page = _page(browser)
    try:
        page.goto(f"{lab.url}/lab/tree/{notebook}?reset&token={lab.token}")
        _wait_for_kernel(page)
        panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        cells = panel.locator(".jp-CodeCell")
        for index in (0, 1):  # the Databricks install cell, then the set-up cell (imports helpers)
            cells.nth(index).locator(".jp-InputArea-editor").click()
            page.keyboard.press("Control+Enter")
            expect(cells.nth(index).locator(".jp-InputPrompt")).to_have_text(
                re.compile(r"^\[\d+\]"), timeout=300_000)
        output = cells.nth(1).locator(".jp-OutputArea-output").all_inner_texts()
        text = " ".join(output)
        assert "mode: fast" in text and "Fast mode: a tiny randomly initialised GPT-2" in text, text
        assert "Error" not in text
    finally:
        page.screenshot(path=str(ARTIFACTS / "student-01-setup.png"))
        page.close()


@pytest.fixture(scope="module")
def graded_xss(lab) -> dict:
    """Grade the self-test's perfect sample and its xss sample in the Lab's own course."""
    from autograder import grading, samples

    samples.write_samples(lab.root, "selftest", ["perfect", "xss"], prefix="browser-")
    results = {r.student: r for r in grading.grade(
        lab.root, "selftest", students=["browser-perfect", "browser-xss"], timeout=60)}
    grading.feedback(lab.root, "selftest")
    with sqlite3.connect(lab.root / "gradebook.db") as con:
        rows = con.execute("SELECT id, auto_score, manual_score FROM grade ORDER BY id").fetchall()
    return {"results": results, "rows": rows}


def _no_script_ran(page) -> None:
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert "PWNED" not in page.title()
    assert page.dialogs == []


def test_instructor_sees_scores_and_no_student_script_runs(lab, browser, graded_xss) -> None:
    from nbgrader.api import Gradebook
    from playwright.sync_api import expect

    assert graded_xss["results"]["browser-xss"].auto_score == 3
    with Gradebook(f"sqlite:///{lab.root / 'gradebook.db'}") as gb:
        submission = gb.find_submission_notebook("selftest", "selftest", "browser-xss").id
    page = _page(browser)
    try:
        page.goto(f"{lab.url}/formgrader?token={lab.token}")
        table = page.locator("table")
        for assignment in sorted(p.name for p in (lab.root / "source").iterdir() if p.is_dir()):
            expect(table.get_by_text(assignment, exact=True).first).to_be_visible(timeout=120_000)
        page.goto(f"{lab.url}/formgrader/submissions/{submission}?token={lab.token}")
        expect(page.get_by_text("My answer.").first).to_be_visible(timeout=120_000)
        page.wait_for_timeout(3_000)  # let any onerror/onload handler have its chance
        _no_script_ran(page)
        scores = page.locator("input.score")
        assert scores.count() >= 1
        body = page.content()
        assert "Passed: the grader checked this cell" in body
        assert "onerror" in body  # the attack is shown as text, not run
        page.screenshot(path=str(ARTIFACTS / "instructor-submission.png"), full_page=True)
        # The links of the markdown answer lead nowhere dangerous when clicked.
        for link in page.locator("a:has-text('click me'), a:has-text('there')").all():
            href = link.get_attribute("href") or ""
            assert not href.lower().startswith(("javascript:", "data:", "vbscript:")), href
    finally:
        page.close()
    with sqlite3.connect(lab.root / "gradebook.db") as con:
        rows = con.execute("SELECT id, auto_score, manual_score FROM grade ORDER BY id").fetchall()
    assert rows == graded_xss["rows"]


def test_feedback_page_runs_no_student_script(lab, browser, graded_xss) -> None:
    path = lab.root / "feedback" / "browser-xss" / "selftest" / "selftest.html"
    assert path.is_file()
    page = _page(browser, 60_000)
    try:
        page.goto(path.as_uri())
        page.wait_for_timeout(2_000)
        _no_script_ran(page)
        assert "My answer." in page.content()
        page.screenshot(path=str(ARTIFACTS / "student-feedback.png"), full_page=True)
    finally:
        page.close()
