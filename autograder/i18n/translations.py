"""Translation files (``course/i18n/<assignment>/<lang>.yaml`` or ``.json``): read and
checked, written with literal blocks, an entry found for a cell, a translation linted, and
``stub`` adding the cells that still need a translator."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

from .cells import cell_text, markdown_cells, normalise, read_notebook, text_hash
from .paths import LANGUAGE_NAMES, assignment_files, translation_path
from .problems import I18nError


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
    for rel in assignment_files(folder, notebooks_only=True):
        nb_name = rel.as_posix()
        entries = old.get(nb_name) or {}
        new_entries: dict[str, Any] = {}
        cells = markdown_cells(read_notebook(folder / rel), nb_name)
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
