"""Where things are: the languages, the course root, variant folder names, the English
assignments and their files, translation files."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

#: The languages every assignment is translated into (English is the source).
LANGUAGES: tuple[str, ...] = ("de", "zh")
LANGUAGE_NAMES = {"en": "English", "de": "Deutsch", "zh": "中文"}
#: Files and folders of an assignment folder that are run-time output, never part of it.
IGNORED = (".ipynb_checkpoints", "__pycache__", "*.pyc", "outputs", ".course-data", "mlruns",
           "mlflow.db", ".emulator", "feedback", ".DS_Store")
TRANSLATION_SUFFIXES = (".yaml", ".yml", ".json")


def default_root() -> Path:
    """The course root: ``NBG_ROOT`` if set, else the repository this package lives in."""
    if os.environ.get("NBG_ROOT"):
        return Path(os.environ["NBG_ROOT"]).resolve()
    return Path(__file__).resolve().parents[2]  # autograder/i18n/paths.py


def variant_name(assignment: str, lang: str) -> str:
    return f"{assignment}-{lang}"


def split_variant(name: str) -> tuple[str, str | None]:
    """``"01-gpt2-imdb-de"`` → ``("01-gpt2-imdb", "de")``; an English name → ``(name, None)``."""
    for lang in LANGUAGES:
        if name.endswith(f"-{lang}"):
            return name[: -len(lang) - 1], lang
    return name, None


def _ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in IGNORED)


def english_assignments(root: Path) -> list[str]:
    """The English assignments: folders of ``source/`` that hold a notebook and are not variants."""
    source = root / "source"
    if not source.is_dir():
        return []
    return sorted(
        d.name for d in source.iterdir()
        if d.is_dir() and not _ignored(d.name) and split_variant(d.name)[1] is None
        and any(assignment_files(d, notebooks_only=True))
    )


def assignment_files(folder: Path, notebooks_only: bool = False) -> list[Path]:
    """Files of an assignment folder (relative paths), run-time output left out."""
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _ignored(d))
        for name in sorted(filenames):
            if _ignored(name) or (notebooks_only and not name.endswith(".ipynb")):
                continue
            files.append((Path(dirpath) / name).relative_to(folder))
    return files


def translation_path(root: Path, assignment: str, lang: str) -> Path:
    """The translation file of an assignment and language (``.yaml`` unless another exists)."""
    folder = root / "course" / "i18n" / assignment
    for suffix in TRANSLATION_SUFFIXES:
        if (folder / f"{lang}{suffix}").is_file():
            return folder / f"{lang}{suffix}"
    return folder / f"{lang}.yaml"
