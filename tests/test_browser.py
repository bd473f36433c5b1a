"""The student's and the instructor's first steps in a real browser: Debian's headless Chromium
driven by Playwright (Playwright's own browser download does not work here) opens JupyterLab on
the course, opens each release notebook and runs its first code cell, then opens the formgrader.
Screenshots are kept under ``test-artifacts/browser/`` (git-ignored) for a human to look at."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "test-artifacts" / "browser"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} missing: apt-get install -y chromium")


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _release_notebooks(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "release").glob("*/*.ipynb"))


def _run_cell(page, cell, prompt, attempts: int = 6) -> None:
    """Run one cell with Ctrl+Enter and wait until its prompt shows an execution count. Lab
    reports the kernel idle a moment before its session is ready and drops a run sent then,
    so a run that has not even started after 20 s is sent again."""
    ran = re.compile(r"\[\d+\]")
    for _ in range(attempts):
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Control+Enter")
        try:
            playwright_api.expect(prompt).not_to_have_text(re.compile(r"\[ \]"), timeout=20_000)
        except AssertionError:
            continue
        # Started ("[*]:"): wait for the end (importing torch can take a minute on a busy CPU).
        playwright_api.expect(prompt).to_have_text(ran, timeout=300_000)
        return
    raise AssertionError(f"the cell never ran; its prompt still shows {prompt.inner_text()!r}")


def test_student_opens_each_release_notebook_and_runs_its_first_cell(lab, browser) -> None:
    notebooks = _release_notebooks(lab.root)
    assert "release/selftest/selftest.ipynb" in notebooks
    for notebook in notebooks:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(180_000)
        name = notebook.replace("/", "__").removesuffix(".ipynb")
        try:
            # `?reset`: open only this notebook, not the tabs of an earlier visit.
            page.goto(f"{lab.url}/lab/tree/{notebook}?reset&token={lab.token}")
            panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
            cell = panel.locator(".jp-CodeCell").first
            prompt = cell.locator(".jp-InputPrompt")
            _run_cell(page, cell, prompt)
            errors = cell.locator(".jp-OutputArea-output.jp-RenderedText").all_inner_texts()
            assert not any("Traceback" in e or "Error" in e for e in errors), (
                f"{notebook}: the first code cell raised:\n{errors}")
        finally:
            page.screenshot(path=str(ARTIFACTS / f"student-{name}.png"))
            page.close()


def test_instructor_opens_the_formgrader(lab, browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(120_000)
    try:
        page.goto(f"{lab.url}/formgrader?token={lab.token}")
        # The "Manage Assignments" table lists every assignment of the course.
        table = page.locator("table")
        for assignment in sorted(p.name for p in (lab.root / "source").iterdir() if p.is_dir()):
            playwright_api.expect(table.get_by_text(assignment, exact=True).first).to_be_visible(
                timeout=120_000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "instructor-formgrader.png"), full_page=True)
        page.close()
