"""Building the variants: every markdown cell of the English notebooks replaced by its
translation, the rest of the assignment folder copied, ``source/<assignment>-<lang>/`` written."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from .cells import cell_text, markdown_cells, normalise, notebook_json, read_notebook, text_hash
from .paths import LANGUAGES, assignment_files, english_assignments, translation_path, variant_name
from .problems import I18nError, Problem
from .translations import find_entry, load_translations


def translate_notebook(
    nb: dict[str, Any], nb_name: str, entries: dict[str, Any], assignment: str, lang: str,
) -> tuple[dict[str, Any], list[Problem]]:
    """The variant of one notebook: every markdown cell's text replaced by its translation.

    A missing translation leaves the English text, a stale one is used as it is; both are
    returned as problems (``check`` fails on them, ``build`` reports them)."""
    where = f"{nb_name}"
    variant = copy.deepcopy(nb)
    problems: list[Problem] = []
    cells = markdown_cells(nb, f"source/{assignment}/{nb_name}")
    keys = {key for _, key, _ in cells}
    for index, key, cell in cells:
        english = cell_text(cell)
        _, entry = find_entry(entries, key, english, taken=keys)
        cell_where = f"{where} cell {index} ({key!r})"
        if entry is None or entry.get("todo") or not str(entry.get("text") or "").strip():
            if normalise(english):
                problems.append(Problem(assignment, lang, cell_where, "no translation"))
            continue
        if str(entry["hash"]) != text_hash(english):
            problems.append(Problem(
                assignment, lang, cell_where,
                f"stale translation: the English text changed (hash {text_hash(english)}, the "
                f"translation is of {entry['hash']}); update the text, then its hash",
            ))
        variant["cells"][index]["source"] = normalise(str(entry["text"]))
    meta = variant.setdefault("metadata", {})
    meta["course_i18n"] = {"language": lang, "english": f"{assignment}/{nb_name}"}
    return variant, problems


def build_variant(root: Path, assignment: str, lang: str) -> tuple[dict[Path, bytes], list[Problem]]:
    """What ``source/<assignment>-<lang>/`` must hold: ``{relative path: bytes}``, and problems."""
    folder = root / "source" / assignment
    path = translation_path(root, assignment, lang)
    problems: list[Problem] = []
    if path.is_file():
        notebooks_entries = load_translations(path)["notebooks"]
    else:
        notebooks_entries = {}
        problems.append(Problem(
            assignment, lang, str(path.relative_to(root)),
            f"no translation file; create it with `python -m autograder.i18n stub {assignment} {lang}`",
        ))
    files: dict[Path, bytes] = {}
    for rel in assignment_files(folder):
        if rel.suffix == ".ipynb":
            nb = read_notebook(folder / rel)
            variant, nb_problems = translate_notebook(
                nb, rel.as_posix(), notebooks_entries.get(rel.as_posix()) or {}, assignment, lang)
            if path.is_file():
                problems += nb_problems
            files[rel] = notebook_json(variant).encode("utf-8")
        else:
            files[rel] = (folder / rel).read_bytes()
    return files, problems


def write_variant(root: Path, assignment: str, lang: str, files: dict[Path, bytes]) -> Path:
    """Make ``source/<assignment>-<lang>/`` hold exactly ``files`` (others are removed)."""
    target = root / "source" / variant_name(assignment, lang)
    target.mkdir(parents=True, exist_ok=True)
    for rel in assignment_files(target):
        if rel not in files:
            (target / rel).unlink()
    for rel, data in files.items():
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.is_file() or dest.read_bytes() != data:
            dest.write_bytes(data)
    for dirpath, _dirnames, _files in sorted(os.walk(target), reverse=True):
        if Path(dirpath) != target and not any(Path(dirpath).iterdir()):
            Path(dirpath).rmdir()
    return target


def build(root: Path, assignments: list[str] | None = None,
          langs: tuple[str, ...] = LANGUAGES) -> tuple[list[Path], list[Problem]]:
    """Write every variant; returns the folders written and the translation problems found."""
    written, problems = [], []
    for assignment in assignments or english_assignments(root):
        if not (root / "source" / assignment).is_dir():
            raise I18nError(f"source/{assignment}: no such assignment folder")
        for lang in langs:
            files, found = build_variant(root, assignment, lang)
            written.append(write_variant(root, assignment, lang, files))
            problems += found
    return written, problems
