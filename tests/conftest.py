"""Shared fixtures. The grading tests use the self-test course in ``tests/fixtures/course``: a
tiny assignment (two autograded answers with visible and hidden tests, a manually graded answer,
a task) that grades in seconds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURE_COURSE = REPO / "tests" / "fixtures" / "course"


def copy_fixture_course(dest: Path) -> Path:
    """A fresh course root with the self-test assignment's source and committed release."""
    dest.mkdir(parents=True, exist_ok=True)
    for folder in ("source", "release"):
        shutil.copytree(FIXTURE_COURSE / folder, dest / folder)
    return dest


@pytest.fixture
def fixture_course(tmp_path: Path) -> Path:
    return copy_fixture_course(tmp_path / "course")
