"""Notebooks and their markdown cells: reading and writing notebooks as Jupyter does, a cell's
text, its stable key and the hash of its English text."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .problems import I18nError

#: Hex digits of the sha256 of an English text that a translation entry records.
HASH_LENGTH = 12


def cell_text(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(source)
    return source


def normalise(text: str) -> str:
    """The form of a markdown text that its hash is taken of: LF line ends, no trailing blanks."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def text_hash(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:HASH_LENGTH]


def cell_key(cell: dict[str, Any], index: int, notebook: str) -> str:
    """The stable key of a cell: its nbgrader ``grade_id``, else its nbformat ``id``."""
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    if grade_id:
        return str(grade_id)
    if cell.get("id"):
        return str(cell["id"])
    raise I18nError(
        f"{notebook}: cell {index} has neither an nbgrader grade_id nor a cell id; save the notebook "
        "with a current Jupyter (nbformat 4.5+ gives every cell an id) so it can be translated"
    )


def markdown_cells(nb: dict[str, Any], notebook: str) -> list[tuple[int, str, dict[str, Any]]]:
    """``(index, key, cell)`` of every markdown cell; duplicate keys are an error."""
    seen: dict[str, int] = {}
    cells = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "markdown":
            continue
        key = cell_key(cell, index, notebook)
        if key in seen:
            raise I18nError(
                f"{notebook}: cells {seen[key]} and {index} share the key {key!r}; give one of them "
                "another grade_id or cell id"
            )
        seen[key] = index
        cells.append((index, key, cell))
    return cells


def read_notebook(path: Path) -> dict[str, Any]:
    import nbformat

    try:
        return nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise I18nError(f"{path}: cannot read the notebook ({exc})") from exc


def notebook_json(nb: dict[str, Any]) -> str:
    """A notebook as Jupyter writes it (so a variant opened and saved unchanged stays unchanged)."""
    import nbformat

    return nbformat.writes(nbformat.from_dict(nb), version=4) + "\n"


def read_bytes_notebook(data: bytes) -> dict[str, Any]:
    import nbformat

    return nbformat.reads(data.decode("utf-8"), as_version=4)
