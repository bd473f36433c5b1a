"""Checking the variants: present, translated, current, and with the English code, cells and
grading metadata; warnings for orphaned translations and lint."""

from __future__ import annotations

import filecmp
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cells import cell_text, markdown_cells, read_bytes_notebook, read_notebook
from .paths import (
    LANGUAGES,
    assignment_files,
    english_assignments,
    split_variant,
    translation_path,
    variant_name,
)
from .problems import I18nError, Problem
from .translations import find_entry, lint_translation, load_translations
from .variants import build_variant


@dataclass
class Report:
    """What :func:`check` found: ``problems`` fail it, ``warnings`` do not."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _nbgrader(cell: dict[str, Any]) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {})


def compare_structure(english: dict[str, Any], variant: dict[str, Any], assignment: str, lang: str,
                      nb_name: str) -> list[Problem]:
    """Problems where a variant notebook's code, cells or grading metadata differ from English."""
    problems = []
    e_cells, v_cells = english.get("cells", []), variant.get("cells", [])

    def problem(where: str, message: str) -> None:
        problems.append(Problem(assignment, lang, f"{nb_name} {where}", message))

    e_ids = [_nbgrader(c).get("grade_id") for c in e_cells if _nbgrader(c).get("grade_id")]
    v_ids = [_nbgrader(c).get("grade_id") for c in v_cells if _nbgrader(c).get("grade_id")]
    if e_ids != v_ids:
        missing = [g for g in e_ids if g not in v_ids]
        extra = [g for g in v_ids if g not in e_ids]
        detail = (f"missing {missing}" if missing else "") + (f" extra {extra}" if extra else "")
        problem("grade ids", f"differ from the English notebook ({detail.strip() or 'order differs'})")
    if len(e_cells) != len(v_cells):
        problem("cells", f"{len(v_cells)} cells where the English notebook has {len(e_cells)}")
        return problems
    for index, (e, v) in enumerate(zip(e_cells, v_cells)):
        label = f"cell {index} ({_nbgrader(e).get('grade_id') or e.get('id')!r})"
        if e.get("cell_type") != v.get("cell_type"):
            problem(label, f"is a {v.get('cell_type')} cell, English has a {e.get('cell_type')} cell")
            continue
        if e.get("id") != v.get("id"):
            problem(label, f"cell id {v.get('id')!r} differs from the English {e.get('id')!r}")
        if _nbgrader(e) != _nbgrader(v):
            problem(label, "nbgrader metadata differs from the English cell")
        if e.get("cell_type") != "markdown" and cell_text(e) != cell_text(v):
            problem(label, "code differs from the English cell; code changes belong in the English "
                           "source, then `python -m autograder.i18n build`")
    return problems


def check(root: Path) -> Report:
    """Every variant of every English assignment: present, translated, current, same code."""
    report = Report()
    source = root / "source"
    assignments = english_assignments(root)
    if source.is_dir():
        for d in sorted(source.iterdir()):
            base, lang = split_variant(d.name)
            if d.is_dir() and lang and base not in assignments:
                report.problems.append(Problem(base, lang, f"source/{d.name}",
                                               "variant without an English source folder; remove it"))
    for assignment in assignments:
        english_dir = source / assignment
        for lang in LANGUAGES:
            target = source / variant_name(assignment, lang)
            try:
                files, problems = build_variant(root, assignment, lang)
            except I18nError as exc:
                report.problems.append(Problem(assignment, lang, "translation", str(exc)))
                continue
            report.problems += problems
            path = translation_path(root, assignment, lang)
            if path.is_file():
                report.warnings += _orphans(root, path, assignment, lang)
                report.warnings += _lints(root, path, assignment, lang)
            if not target.is_dir():
                report.problems.append(Problem(
                    assignment, lang, f"source/{target.name}",
                    "variant folder missing; run `python -m autograder.i18n build`"))
                continue
            on_disk = set(assignment_files(target))
            for rel in sorted(on_disk - set(files)):
                report.problems.append(Problem(assignment, lang, f"source/{target.name}/{rel}",
                                               "not in the English folder; run build"))
            for rel, data in files.items():
                dest = target / rel
                where = f"source/{target.name}/{rel.as_posix()}"
                if rel not in on_disk:
                    report.problems.append(Problem(assignment, lang, where,
                                                   "missing; run `python -m autograder.i18n build`"))
                    continue
                if rel.suffix == ".ipynb":
                    english = read_notebook(english_dir / rel)
                    variant = read_notebook(dest)
                    report.problems += compare_structure(english, variant, assignment, lang,
                                                         rel.as_posix())
                    if read_bytes_notebook(data) != variant:
                        report.problems.append(Problem(
                            assignment, lang, where,
                            "stale: not what `python -m autograder.i18n build` makes of the English "
                            "notebook and the translation now; run build"))
                elif not filecmp.cmp(english_dir / rel, dest, shallow=False):
                    report.problems.append(Problem(assignment, lang, where,
                                                   "differs from the English copy; run build"))
    return report


def _lints(root: Path, path: Path, assignment: str, lang: str) -> list[Problem]:
    """`lint_translation` warnings for every translated cell of an assignment."""
    warnings = []
    for nb_name, entries in load_translations(path)["notebooks"].items():
        nb_path = root / "source" / assignment / nb_name
        if not nb_path.is_file():
            continue
        cells = markdown_cells(read_notebook(nb_path), nb_name)
        keys = {key for _, key, _ in cells}
        for index, key, cell in cells:
            _, entry = find_entry(entries, key, cell_text(cell), taken=keys)
            if entry and not entry.get("todo") and entry.get("text"):
                for message in lint_translation(cell_text(cell), str(entry["text"]), lang):
                    warnings.append(Problem(assignment, lang, f"{nb_name} cell {index} ({key!r})", message))
    return warnings


def _orphans(root: Path, path: Path, assignment: str, lang: str) -> list[Problem]:
    """Translation entries whose cell is gone from the English notebook (harmless, but clutter)."""
    warnings = []
    for nb_name, entries in load_translations(path)["notebooks"].items():
        nb_path = root / "source" / assignment / nb_name
        if not nb_path.is_file():
            warnings.append(Problem(assignment, lang, str(path.relative_to(root)),
                                    f"translations for {nb_name}, which is not in the assignment"))
            continue
        cells = markdown_cells(read_notebook(nb_path), nb_name)
        keys = {key for _, key, _ in cells}
        adopted = {find_entry(entries, key, cell_text(cell), taken=keys)[0] for _, key, cell in cells}
        for key in entries:
            if key not in keys and key not in adopted:
                warnings.append(Problem(assignment, lang, f"{nb_name} {key!r}",
                                        "translated cell no longer in the English notebook"))
    return warnings
