"""Language variants of the assignments: one English source, translated markdown.

The English source notebook (``source/<assignment>/``) is the single source of code, tests and
nbgrader metadata. A translation file, ``course/i18n/<assignment>/<lang>.yaml`` (or ``.json``),
holds only the text of the markdown cells, keyed by a stable cell key (the nbgrader
``grade_id``, else the cell ``id``) together with a hash of the English text it translates::

    assignment: 01-gpt2-imdb
    language: de
    notebooks:
      gpt2_imdb.ipynb:
        intro:                 # the cell key
          hash: 3f0c9a1b27de   # sha256 of the English text (first 12 hex digits)
          text: |-
            # GPT-2 auf IMDB feinabstimmen
            ...

``build`` writes ``source/<assignment>-<lang>/``: a copy of the English folder (data files
included) whose notebooks have the translated markdown and nothing else changed, so a change
to code, tests or metadata reaches every language at the next build. ``check`` fails (exit 1,
one line per problem naming assignment, language, notebook and cell) when

- a translation file is missing, or a markdown cell has no translation or a stale one (the
  English text changed since: its hash no longer matches);
- a variant folder is missing, or differs from what ``build`` makes now (stale);
- a variant's code cells, cell order, cell ids, grade ids or nbgrader metadata differ from the
  English source (checked on the files themselves, so a hand-edited variant is caught too);
- a variant folder exists without its English source.

It warns (without failing) about translations of cells that are gone, translations that lost
the English text's inline code (identifiers and commands stay as they are), and Chinese
paragraphs broken between CJK characters (Markdown shows a stray space there). A cell whose
English text is unchanged keeps its translation when a script gives it a new cell id: the
entry is found by the text's hash.

``stub`` adds entries for the cells that still need a translation (the English text, marked
``todo: true``) to a translation file, so a translator edits one file top to bottom.

Command line::

    python -m autograder.i18n build [ASSIGNMENT ...] [--lang de] [--root PATH]
    python -m autograder.i18n check [--root PATH]
    python -m autograder.i18n stub ASSIGNMENT LANG [--root PATH]

nbgrader's assignment id is the folder name, so ``01-gpt2-imdb-de`` is released, collected
and graded like any assignment (``python -m autograder release`` covers every folder in
``source/``); its grade ids equal the English ones.
"""

from __future__ import annotations

import argparse
import copy
import filecmp
import fnmatch
import hashlib
import itertools
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The languages every assignment is translated into (English is the source).
LANGUAGES: tuple[str, ...] = ("de", "zh")
LANGUAGE_NAMES = {"en": "English", "de": "Deutsch", "zh": "中文"}
#: Files and folders of an assignment folder that are run-time output, never part of it.
IGNORED = (".ipynb_checkpoints", "__pycache__", "*.pyc", "outputs", ".course-data", "mlruns",
           "mlflow.db", ".emulator", "feedback", ".DS_Store")
TRANSLATION_SUFFIXES = (".yaml", ".yml", ".json")
HASH_LENGTH = 12


class I18nError(Exception):
    """A translation file or notebook that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Problem:
    """One reason a variant is not up to date."""

    assignment: str
    lang: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.assignment} [{self.lang}] {self.where}: {self.message}"


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------- paths and names


def default_root() -> Path:
    """The course root: ``NBG_ROOT`` if set, else the repository this package lives in."""
    if os.environ.get("NBG_ROOT"):
        return Path(os.environ["NBG_ROOT"]).resolve()
    return Path(__file__).resolve().parent.parent


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
        and any(_assignment_files(d, notebooks_only=True))
    )


def _assignment_files(folder: Path, notebooks_only: bool = False) -> list[Path]:
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


# --------------------------------------------------------------------------- cells


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


# --------------------------------------------------------------------------- translation files


def load_translations(path: Path) -> dict[str, Any]:
    """Read a translation file: ``{"assignment", "language", "notebooks": {nb: {key: entry}}}``."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise I18nError(f"{path}: cannot read the translation file ({exc})") from exc
    try:
        if path.suffix == ".json":
            data = json.loads(raw)
        else:
            import yaml

            data = yaml.safe_load(raw)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError carry the line
        raise I18nError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("notebooks", {}), dict):
        raise I18nError(
            f"{path}: expected a mapping with 'assignment', 'language' and 'notebooks' "
            "(notebook file name → cell key → {hash, text})"
        )
    data.setdefault("notebooks", {})
    for nb_name, cells in data["notebooks"].items():
        if not isinstance(cells, dict):
            raise I18nError(f"{path}: notebooks.{nb_name} must map cell keys to {{hash, text}}")
        for key, entry in cells.items():
            if not isinstance(entry, dict) or "hash" not in entry or "text" not in entry:
                raise I18nError(
                    f"{path}: notebooks.{nb_name}.{key} must have 'hash' (of the English text) and "
                    "'text' (the translation)"
                )
    return data


class _LiteralDumper:  # built lazily: yaml is imported only when a file is written
    cls: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls.cls is None:
            import yaml

            class Dumper(yaml.SafeDumper):
                pass

            def str_representer(dumper: Any, value: str) -> Any:
                style = "|" if "\n" in value else None
                return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

            Dumper.add_representer(str, str_representer)
            cls.cls = Dumper
        return cls.cls


HEADER = (
    "# Translation of the markdown cells of source/{assignment}/ into {name} ({lang}).\n"
    "# Keys are the cells' nbgrader grade_id (or cell id); 'hash' is the hash of the English text\n"
    "# this translates: when the English cell changes, `python -m autograder.i18n check` reports\n"
    "# the entry as stale. `python -m autograder.i18n stub {assignment} {lang}` adds the cells that\n"
    "# need work (marked todo: true, with the English text), then `build` writes the variant.\n"
)


def dump_translations(data: dict[str, Any], path: Path) -> None:
    """Write a translation file (YAML with literal blocks, or JSON), keys in notebook order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return
    import yaml

    header = HEADER.format(assignment=data.get("assignment", "?"), lang=data.get("language", "?"),
                           name=LANGUAGE_NAMES.get(data.get("language", ""), "?"))
    body = yaml.dump(data, Dumper=_LiteralDumper.get(), allow_unicode=True, sort_keys=False,
                     width=100)
    path.write_text(header + body, encoding="utf-8")


# --------------------------------------------------------------------------- building


def _read_notebook(path: Path) -> dict[str, Any]:
    import nbformat

    try:
        return nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise I18nError(f"{path}: cannot read the notebook ({exc})") from exc


def notebook_json(nb: dict[str, Any]) -> str:
    """A notebook as Jupyter writes it (so a variant opened and saved unchanged stays unchanged)."""
    import nbformat

    return nbformat.writes(nbformat.from_dict(nb), version=4) + "\n"


def find_entry(entries: dict[str, Any], key: str, english: str,
               taken: set[str] | None = None) -> tuple[str | None, dict[str, Any] | None]:
    """The translation of a cell: the entry under its key, else the one entry (under a key no
    cell of the notebook has) that translates exactly this English text. Notebooks written by
    scripts may get new cell ids; a cell whose text did not change keeps its translation."""
    if key in entries:
        return key, entries[key]
    digest = text_hash(english)
    matches = [k for k, e in entries.items()
               if str(e.get("hash")) == digest and not e.get("todo") and k not in (taken or set())]
    if len(matches) == 1:
        return matches[0], entries[matches[0]]
    return None, None


_CODE_SPAN = re.compile(r"`[^`]+`")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _code_spans(text: str) -> set[str]:
    """Inline code spans of a markdown text (fenced blocks left out), whitespace collapsed."""
    spans = set()
    for paragraph in re.split(r"\n\s*\n", _FENCE.sub("", text)):
        spans |= {" ".join(span.split()) for span in _CODE_SPAN.findall(paragraph)}
    return spans
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def lint_translation(english: str, text: str, lang: str) -> list[str]:
    """Warnings about a translation: inline code of the English text that it lost (identifiers,
    commands and values must stay as they are), and, for Chinese, line breaks inside a paragraph
    between CJK characters (Markdown renders them as a stray space)."""
    warnings = []
    missing = sorted(_code_spans(english) - _code_spans(text))
    if missing:
        warnings.append(f"inline code of the English text missing: {', '.join(missing)}")
    if lang == "zh":
        lines = text.split("\n")
        for a, b in itertools.pairwise(lines):
            if (a.strip() and b.strip() and not a.lstrip().startswith(("|", "#", "```"))
                    and not re.match(r"\s*([-*+]\s|\d+\.\s|\||#|```|>)", b)
                    and (_CJK.search(a.rstrip()[-1:]) or _CJK.search(b.strip()[:1]))):
                warnings.append(f"line break inside a paragraph after {a.rstrip()[-12:]!r}: join the lines")
                break
    return warnings


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
    for rel in _assignment_files(folder):
        if rel.suffix == ".ipynb":
            nb = _read_notebook(folder / rel)
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
    for rel in _assignment_files(target):
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


# --------------------------------------------------------------------------- checking


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
            on_disk = set(_assignment_files(target))
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
                    english = _read_notebook(english_dir / rel)
                    variant = _read_notebook(dest)
                    report.problems += compare_structure(english, variant, assignment, lang,
                                                         rel.as_posix())
                    if _read_bytes_notebook(data) != variant:
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
        cells = markdown_cells(_read_notebook(nb_path), nb_name)
        keys = {key for _, key, _ in cells}
        for index, key, cell in cells:
            _, entry = find_entry(entries, key, cell_text(cell), taken=keys)
            if entry and not entry.get("todo") and entry.get("text"):
                for message in lint_translation(cell_text(cell), str(entry["text"]), lang):
                    warnings.append(Problem(assignment, lang, f"{nb_name} cell {index} ({key!r})", message))
    return warnings


def _read_bytes_notebook(data: bytes) -> dict[str, Any]:
    import nbformat

    return nbformat.reads(data.decode("utf-8"), as_version=4)


def _orphans(root: Path, path: Path, assignment: str, lang: str) -> list[Problem]:
    """Translation entries whose cell is gone from the English notebook (harmless, but clutter)."""
    warnings = []
    for nb_name, entries in load_translations(path)["notebooks"].items():
        nb_path = root / "source" / assignment / nb_name
        if not nb_path.is_file():
            warnings.append(Problem(assignment, lang, str(path.relative_to(root)),
                                    f"translations for {nb_name}, which is not in the assignment"))
            continue
        cells = markdown_cells(_read_notebook(nb_path), nb_name)
        keys = {key for _, key, _ in cells}
        adopted = {find_entry(entries, key, cell_text(cell), taken=keys)[0] for _, key, cell in cells}
        for key in entries:
            if key not in keys and key not in adopted:
                warnings.append(Problem(assignment, lang, f"{nb_name} {key!r}",
                                        "translated cell no longer in the English notebook"))
    return warnings


# --------------------------------------------------------------------------- stubs


def stub(root: Path, assignment: str, lang: str) -> tuple[Path, int]:
    """Add ``todo`` entries (the English text, its hash) for every cell that needs translating,
    keep every current translation, order entries as the cells; returns the file and the count."""
    folder = root / "source" / assignment
    if not folder.is_dir():
        raise I18nError(f"source/{assignment}: no such assignment folder")
    path = translation_path(root, assignment, lang)
    data = load_translations(path) if path.is_file() else {}
    old = data.get("notebooks", {})
    notebooks: dict[str, Any] = {}
    todo = 0
    for rel in _assignment_files(folder, notebooks_only=True):
        nb_name = rel.as_posix()
        entries = old.get(nb_name) or {}
        new_entries: dict[str, Any] = {}
        cells = markdown_cells(_read_notebook(folder / rel), nb_name)
        keys = {key for _, key, _ in cells}
        adopted: set[str] = set()
        for _index, key, cell in cells:
            english = normalise(cell_text(cell))
            found, entry = find_entry(entries, key, english, taken=keys | adopted)
            if found is not None and found != key:
                adopted.add(found)  # re-keyed under the cell's new key, the old key goes
            current = entry and not entry.get("todo") and str(entry["hash"]) == text_hash(english)
            if current:
                new_entries[key] = {"hash": entry["hash"], "text": normalise(str(entry["text"]))}
            elif english:
                todo += 1
                new_entries[key] = {"hash": text_hash(english), "todo": True,
                                    "text": normalise(str(entry["text"])) if entry else english}
                if entry:  # stale: keep the old translation, show the new English beside it
                    new_entries[key]["english"] = english
        for key, entry in entries.items():  # orphans stay until a person removes them
            if key not in adopted:
                new_entries.setdefault(key, entry)
        notebooks[nb_name] = new_entries
    dump_translations({"assignment": assignment, "language": lang, "notebooks": notebooks}, path)
    return path, todo


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.i18n", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="course root (default: this repository)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="write source/<assignment>-<lang>/ for every variant")
    p_build.add_argument("assignments", nargs="*", help="English assignment folders (default: all)")
    p_build.add_argument("--lang", action="append", choices=LANGUAGES, help="only these languages")
    sub.add_parser("check", help="fail when a variant is stale, untranslated or differs in code")
    p_stub = sub.add_parser("stub", help="add todo entries for untranslated cells to a translation file")
    p_stub.add_argument("assignment")
    p_stub.add_argument("lang", choices=LANGUAGES)
    args = parser.parse_args(argv)
    root = (args.root or default_root()).resolve()
    try:
        if args.command == "build":
            written, problems = build(root, args.assignments or None, tuple(args.lang or LANGUAGES))
            for folder in written:
                print(f"wrote {folder.relative_to(root)}")
            for problem in problems:
                print(f"WARNING {problem}", file=sys.stderr)
            if problems:
                print(f"{len(problems)} translation problem(s): the variants were written with the "
                      "English text (or the old translation) there; `check` fails until fixed",
                      file=sys.stderr)
            return 1 if problems else 0
        if args.command == "check":
            report = check(root)
            for warning in report.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            for problem in report.problems:
                print(f"ERROR {problem}", file=sys.stderr)
            n = len(english_assignments(root))
            if report.ok:
                print(f"i18n: {n} assignment(s) x {len(LANGUAGES)} language(s) up to date")
                return 0
            print(f"i18n: {len(report.problems)} problem(s)", file=sys.stderr)
            return 1
        path, todo = stub(root, args.assignment, args.lang)
        print(f"{path.relative_to(root)}: {todo} cell(s) marked todo")
        return 0
    except (I18nError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
