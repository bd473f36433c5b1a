"""The emulator's durable state: SQLite for records, plain folders for file bytes and models.

Layout of a state dir::

    state.sqlite3        every record (files, jobs, events, checkpoints, deployments) as JSON
    files/<file-id>      the bytes of an uploaded (or generated) file, named by id only
    models/<job-id>/     what a job trained: ``final/`` and ``ckpt-step-N/``

Records are JSON objects in the SDK's shapes; keys that start with ``_`` are the emulator's own
and never leave the server (:func:`public`). Every write is one SQLite transaction (WAL mode),
so a process killed at any moment loses at most the request it was answering.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import EmulatorError, bad_request, not_found

KINDS = ("file", "job", "event", "checkpoint", "deployment")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    parent TEXT,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (kind, id)
);
CREATE INDEX IF NOT EXISTS records_by_parent ON records (kind, parent, seq);
"""


def new_id(prefix: str) -> str:
    """``file-<32 hex>``, ``ftjob-<32 hex>``, ... (the formats Azure OpenAI uses)."""
    return f"{prefix}-{secrets.token_hex(16)}"


def now() -> int:
    return int(time.time())


def public(record: dict[str, Any]) -> dict[str, Any]:
    """The record without the emulator's private ``_`` keys."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def safe_filename(name: str | None) -> str:
    """The last path component of an uploaded file's name, without control characters.

    Only used as a label: bytes are stored under the file's id, so no name reaches the disk."""
    name = (name or "").replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if name in {"", ".", ".."}:
        name = "upload.jsonl"
    return name[:255]


class Store:
    """Thread-safe record store over one SQLite connection (``check_same_thread=False`` + lock)."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.root = Path(state_dir).resolve()
        self.files_dir = self.root / "files"
        self.models_dir = self.root / "models"
        for folder in (self.root, self.files_dir, self.models_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.root / "state.sqlite3", check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def sweep(self) -> list[str]:
        """Remove what a killed process can leave behind: half-written files (``*.part``) and
        bytes whose record was never committed. Returns the names removed."""
        with self._lock:
            known = {row[0] for row in self._db.execute(
                "SELECT id FROM records WHERE kind = 'file'")}
        removed = []
        for path in self.files_dir.iterdir():
            if path.name.endswith(".part") or path.name not in known:
                path.unlink(missing_ok=True)
                removed.append(path.name)
        for path in self.models_dir.glob("*/*.part"):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"{path.parent.name}/{path.name}")
        return removed

    # ------------------------------------------------------------------ records

    def insert(self, kind: str, record: dict[str, Any], parent: str | None = None) -> dict:
        with self._lock:
            self._db.execute(
                "INSERT INTO records (kind, id, parent, created_at, data) VALUES (?, ?, ?, ?, ?)",
                (kind, record["id"], parent, int(record.get("created_at") or now()),
                 json.dumps(record)),
            )
        return record

    def upsert(self, kind: str, record: dict[str, Any], parent: str | None = None) -> bool:
        """Insert or replace (keeping the original position); True when it was new."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE records SET data = ? WHERE kind = ? AND id = ?",
                (json.dumps(record), kind, record["id"]),
            )
            if cur.rowcount:
                return False
            self.insert(kind, record, parent)
            return True

    def get(self, kind: str, id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM records WHERE kind = ? AND id = ?", (kind, id)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def require(self, kind: str, id: str, what: str, param: str | None = None) -> dict[str, Any]:
        record = self.get(kind, id)
        if record is None:
            raise not_found(f"No {what} with id '{id}' exists on this emulator.", param=param)
        return record

    def update(self, kind: str, id: str, change: Callable[[dict], dict | None] | dict) -> dict:
        """Apply ``change`` (a dict to merge, or a function editing the record) atomically."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT data FROM records WHERE kind = ? AND id = ?", (kind, id)
                ).fetchone()
                if row is None:
                    raise not_found(f"No {kind} with id '{id}' exists on this emulator.")
                record = json.loads(row[0])
                if callable(change):
                    record = change(record) or record
                else:
                    record.update(change)
                self._db.execute(
                    "UPDATE records SET data = ? WHERE kind = ? AND id = ?",
                    (json.dumps(record), kind, id),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return record

    def delete(self, kind: str, id: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM records WHERE kind = ? AND id = ?", (kind, id))
        return cur.rowcount > 0

    def delete_children(self, kind: str, parent: str, where: Callable[[dict], bool]) -> int:
        """Delete the records of ``kind`` under ``parent`` for which ``where(record)`` is true."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, data FROM records WHERE kind = ? AND parent = ?", (kind, parent)
            ).fetchall()
            doomed = [(kind, rid) for rid, data in rows if where(json.loads(data))]
            self._db.executemany("DELETE FROM records WHERE kind = ? AND id = ?", doomed)
        return len(doomed)

    def all(self, kind: str, parent: str | None = None, newest_first: bool = False) -> list[dict]:
        sql = "SELECT data FROM records WHERE kind = ?"
        args: list[Any] = [kind]
        if parent is not None:
            sql += " AND parent = ?"
            args.append(parent)
        sql += " ORDER BY seq " + ("DESC" if newest_first else "ASC")
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def page(
        self,
        kind: str,
        *,
        parent: str | None = None,
        after: str | None = None,
        limit: int = 20,
        newest_first: bool = True,
        where: Callable[[dict], bool] | None = None,
    ) -> tuple[list[dict], bool]:
        """One page of a list, OpenAI's cursor style: the records after the one with id
        ``after`` in list order, at most ``limit``, and whether more follow."""
        if not 1 <= limit <= 10_000:
            raise bad_request(f"limit must be between 1 and 10000, got {limit}.", param="limit")
        order = "DESC" if newest_first else "ASC"
        sql = "SELECT data FROM records WHERE kind = ?"
        args: list[Any] = [kind]
        if parent is not None:
            sql += " AND parent = ?"
            args.append(parent)
        with self._lock:
            if after:
                row = self._db.execute(
                    "SELECT seq FROM records WHERE kind = ? AND id = ?", (kind, after)
                ).fetchone()
                if row is None:
                    raise bad_request(
                        f"The 'after' cursor '{after}' is not the id of an existing {kind}; "
                        "pass the id of the last item of the previous page.",
                        param="after",
                    )
                sql += " AND seq < ?" if newest_first else " AND seq > ?"
                args.append(row[0])
            sql += f" ORDER BY seq {order}"
            rows = self._db.execute(sql, args).fetchall()
        items = [json.loads(r[0]) for r in rows]
        if where is not None:
            items = [item for item in items if where(item)]
        return items[:limit], len(items) > limit

    # ------------------------------------------------------------------ file bytes

    def file_path(self, file_id: str) -> Path:
        if not file_id.startswith("file-") or not file_id[5:].isalnum():
            raise not_found(f"No file with id '{file_id}' exists on this emulator.")
        return self.files_dir / file_id

    def write_file_bytes(self, file_id: str, source: Callable[[Any], int]) -> int:
        """Write a file's bytes atomically: ``source(handle)`` writes them and returns the count."""
        final = self.file_path(file_id)
        tmp = final.with_name(final.name + ".part")
        try:
            with open(tmp, "wb") as handle:
                size = source(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return size

    def read_file_bytes(self, file_id: str) -> bytes:
        path = self.file_path(file_id)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise EmulatorError(
                404, f"The bytes of file '{file_id}' are missing from the state dir {self.root}.",
                code="not_found",
            ) from None

    def remove_file_bytes(self, file_id: str) -> None:
        self.file_path(file_id).unlink(missing_ok=True)

    def job_models_dir(self, job_id: str) -> Path:
        if not job_id.startswith("ftjob-") or not job_id[6:].isalnum():
            raise not_found(f"No fine-tuning job with id '{job_id}' exists on this emulator.")
        return self.models_dir / job_id
