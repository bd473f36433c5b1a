"""A new gradebook without nbgrader's ``alembic heads`` subprocess.

When nbgrader opens a gradebook database that has no table yet, it creates its tables and then
runs ``alembic -c <ini> heads`` as a subprocess only to learn the revision to stamp the new
database with (``nbgrader.api.get_alembic_version``): a second Python process that imports
alembic and SQLAlchemy, about 1.5 s of CPU, once per new gradebook. Every course copy the demo,
the CI check and the tests make pays it.

:func:`create` writes that stamp first: an SQLite file holding only nbgrader's
``alembic_version`` table at the head revision of the migrations nbgrader ships, read from their
files (``revision = '...'`` / ``down_revision = '...'``) without importing nbgrader. nbgrader then
finds a database that has a table, creates the missing ones (``Base.metadata.create_all``, as
always) and skips the subprocess: the result is the database nbgrader would have made.
Whenever the head cannot be read with certainty (no migrations folder, not exactly one head),
nothing is written and nbgrader does what it always did.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3
import tempfile
from pathlib import Path

_REVISION = re.compile(r"^revision\s*=\s*['\"]([0-9a-f]+)['\"]", re.MULTILINE)
_DOWN = re.compile(r"^down_revision\s*=\s*(None|['\"]([0-9a-f]+)['\"])", re.MULTILINE)


def migrations_folder() -> Path | None:
    """nbgrader's ``alembic/versions`` folder, found without importing nbgrader."""
    spec = importlib.util.find_spec("nbgrader")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "alembic" / "versions"
    return folder if folder.is_dir() else None


def head_revision(folder: Path | None = None) -> str | None:
    """The one revision no other migration builds on; None unless there is exactly one."""
    folder = folder if folder is not None else migrations_folder()
    if folder is None:
        return None
    revisions, parents = set(), set()
    for path in folder.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text), _DOWN.search(text)
        if revision is None or down is None:
            return None  # a migration this reader does not understand: leave it to alembic
        revisions.add(revision.group(1))
        if down.group(2):
            parents.add(down.group(2))
    heads = revisions - parents
    if len(heads) != 1 or not parents <= revisions:
        return None
    return heads.pop()


def create(path: Path, folder: Path | None = None) -> bool:
    """Write a new gradebook at ``path`` stamped with nbgrader's head revision; False (and
    nothing written) when ``path`` exists already or the head is not certain."""
    path = Path(path)
    if path.exists():
        return False
    head = head_revision(folder)
    if head is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".gradebook-", suffix=".db", dir=path.parent)
    os.close(fd)
    try:
        with sqlite3.connect(tmp) as con:
            con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            con.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (head,))
        con.close()
        try:
            os.link(tmp, path)  # never replaces a gradebook that appeared meanwhile
        except OSError:  # it did, or this file system has no hard links: nbgrader's own way
            return False
        return True
    finally:
        os.unlink(tmp)
