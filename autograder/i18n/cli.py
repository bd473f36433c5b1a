"""The command line: ``python -m autograder.i18n build|check|stub`` (see the package's
docstring). It prints; the functions it calls return values."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .checking import check
from .paths import LANGUAGES, default_root, english_assignments
from .problems import I18nError
from .translations import stub
from .variants import build

DESCRIPTION = "Language variants of the assignments: one English source, translated markdown."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.i18n", description=DESCRIPTION)
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
