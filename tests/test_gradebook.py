"""autograder.gradebook: a new gradebook stamped without nbgrader's `alembic heads` subprocess is
the database nbgrader makes itself."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pytest

from autograder import gradebook


@pytest.fixture(autouse=True)
def alembic_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """nbgrader's own way runs `alembic` from PATH (as grading.ensure_tools_on_path arranges)."""
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent),
                                                os.environ.get("PATH", "")]))


def _schema(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
        version = con.execute("SELECT version_num FROM alembic_version").fetchall()
    return {"version": version, **{name: " ".join(sql.split()) for name, sql in rows}}


def test_the_head_is_the_one_alembic_itself_reports() -> None:
    """Independent of the file reader: alembic's own `heads` command, as nbgrader runs it."""
    from nbgrader.api import get_alembic_version

    assert gradebook.head_revision() == get_alembic_version()


def test_nbgrader_opens_the_stamped_gradebook_without_the_subprocess_and_makes_the_same_db(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbgrader import api

    own = tmp_path / "own.db"
    with api.Gradebook(f"sqlite:///{own}", "course") as gb:  # nbgrader's way, subprocess included
        gb.add_student("alice")

    stamped = tmp_path / "stamped.db"
    assert gradebook.create(stamped)

    def forbidden() -> str:
        raise AssertionError("nbgrader ran `alembic heads` for a stamped gradebook")

    monkeypatch.setattr(api, "get_alembic_version", forbidden)
    with api.Gradebook(f"sqlite:///{stamped}", "course") as gb:
        gb.add_student("alice")
        assert [s.id for s in gb.students] == ["alice"]
    assert _schema(stamped) == _schema(own)


def test_an_existing_gradebook_is_never_touched(tmp_path: Path) -> None:
    db = tmp_path / "gradebook.db"
    db.write_bytes(b"not even a database")
    assert not gradebook.create(db)
    assert db.read_bytes() == b"not even a database"


@pytest.mark.parametrize("files, why", [
    ({"a.py": "revision = 'aa'\ndown_revision = None\n",
      "b.py": "revision = 'bb'\ndown_revision = None\n"}, "two heads"),
    ({"a.py": "revision = 'aa'\ndown_revision = 'ff'\n"}, "a parent that is not there"),
    ({"a.py": "revision = 'aa'\ndown_revision = None\n",
      "b.py": "revision: str = 'bb'\ndown_revision = ('aa',)\n"}, "a form this reader does not know"),
    ({}, "no migration at all"),
])
def test_an_uncertain_head_writes_nothing_and_leaves_it_to_nbgrader(
        tmp_path: Path, files: dict[str, str], why: str) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    for name, text in files.items():
        (versions / name).write_text(text)
    assert gradebook.head_revision(versions) is None, why
    assert not gradebook.create(tmp_path / "gradebook.db", versions)
    assert not (tmp_path / "gradebook.db").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["versions"], "no temporary file left behind"


def test_a_chain_of_migrations_has_its_last_one_as_head(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    for revision, down in (("b1", "None"), ("c2", "'b1'"), ("d3", '"c2"')):
        (versions / f"{revision}_step.py").write_text(
            f'"""a step"""\nrevision = \'{revision}\'\ndown_revision = {down}\n')
    assert gradebook.head_revision(versions) == "d3"
    assert gradebook.create(tmp_path / "gradebook.db", versions)
    assert _schema(tmp_path / "gradebook.db")["version"] == [("d3",)]
