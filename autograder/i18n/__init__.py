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

Modules: ``paths`` (languages, the course root, variant names, assignment files), ``problems``
(:class:`I18nError`, :class:`Problem`), ``cells`` (notebooks, markdown cells, keys and hashes),
``translations`` (translation files: load, dump, find an entry, lint, ``stub``), ``variants``
(``build``), ``checking`` (``check``), ``cli`` (the command line, ``main``). Everything is
re-exported here.
"""

from .cells import (
    HASH_LENGTH,
    cell_key,
    cell_text,
    markdown_cells,
    normalise,
    notebook_json,
    read_notebook,
    text_hash,
)
from .checking import Report, check, compare_structure
from .cli import main
from .paths import (
    IGNORED,
    LANGUAGE_NAMES,
    LANGUAGES,
    TRANSLATION_SUFFIXES,
    assignment_files,
    default_root,
    english_assignments,
    split_variant,
    translation_path,
    variant_name,
)
from .problems import I18nError, Problem
from .translations import (
    HEADER,
    dump_translations,
    find_entry,
    lint_translation,
    load_translations,
    stub,
)
from .variants import build, build_variant, translate_notebook, write_variant

__all__ = [
    "HASH_LENGTH",
    "HEADER",
    "IGNORED",
    "LANGUAGES",
    "LANGUAGE_NAMES",
    "TRANSLATION_SUFFIXES",
    "I18nError",
    "Problem",
    "Report",
    "assignment_files",
    "build",
    "build_variant",
    "cell_key",
    "cell_text",
    "check",
    "compare_structure",
    "default_root",
    "dump_translations",
    "english_assignments",
    "find_entry",
    "lint_translation",
    "load_translations",
    "main",
    "markdown_cells",
    "normalise",
    "notebook_json",
    "read_notebook",
    "split_variant",
    "stub",
    "text_hash",
    "translate_notebook",
    "translation_path",
    "variant_name",
    "write_variant",
]
