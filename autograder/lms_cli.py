"""The command line of the class loop's LMS steps, registered by ``python -m autograder``:

- ``collect ARCHIVE.zip ASSIGNMENT [--roster FILE] [--lms canvas|moodle] [--replace] [--dry-run]``:
  import an LMS download into ``submitted/`` (:mod:`autograder.collect`);
- ``export --format canvas [--from grades.csv] [--roster FILE] [--column A=TITLE] [--points N]``:
  the grades as Canvas's gradebook import wants them (:mod:`autograder.lms_export`);
- ``similarity ASSIGNMENT [--to FILE]``: the HTML report of similar answers
  (:mod:`autograder.similarity`).

Exit status: 0 when everything went through, 1 when the command did its work but something
needs your attention (an unmatched or rejected submission, a grade left blank), 2 on an error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def add_parsers(sub: argparse._SubParsersAction, export: argparse.ArgumentParser) -> None:
    """Register ``collect`` and ``similarity``, and ``export``'s Canvas options."""
    export.add_argument("--format", choices=("csv", "canvas"), default="csv",
                        help="csv: the plain grade CSV (default); canvas: Canvas's gradebook "
                             "import (default file grades-canvas.csv)")
    export.add_argument("--from", dest="source", metavar="GRADES_CSV",
                        help="--format canvas: convert this plain grade CSV instead of the "
                             "gradebook's grades")
    export.add_argument("--roster", help="--format canvas: the roster CSV (default: roster.csv "
                                         "in the course root)")
    export.add_argument("--column", action="append", metavar="ASSIGNMENT=TITLE",
                        help="--format canvas: the Canvas column of an assignment, e.g. "
                             "'01-gpt2-imdb=Lab 1 (48213)' (repeatable; default: its id)")
    export.add_argument("--points", type=float, metavar="N",
                        help="--format canvas: rescale every score to N points (the Canvas "
                             "assignment's points)")

    p = sub.add_parser("collect", help="import an LMS download (Canvas, Moodle) into submitted/")
    p.add_argument("archive", help="the zip of submissions the LMS let you download")
    p.add_argument("assignment", help="the course assignment, e.g. 02-gpt4o-jsonl")
    p.add_argument("--roster", help="the roster CSV (default: roster.csv in the course root)")
    p.add_argument("--lms", choices=("auto", "canvas", "moodle"), default="auto",
                   help="the archive's naming (default: recognised from its file names)")
    p.add_argument("--replace", action="store_true",
                   help="overwrite an existing, different submission (default: keep it)")
    p.add_argument("--dry-run", action="store_true", help="report, write nothing")
    p.add_argument("--report", metavar="FILE.json", help="also write the report as JSON")

    p = sub.add_parser("similarity", help="HTML report of similar answers, pairs ranked")
    p.add_argument("assignment")
    p.add_argument("--to", help="report file (default: similarity/ASSIGNMENT.html)")
    p.add_argument("--no-variants", action="store_true",
                   help="leave out the assignment's language variants")
    p.add_argument("--detail", type=int, default=20,
                   help="pairs shown side by side (default 20)")


def _roster(root: Path, path: str | None):
    from autograder import roster

    return roster.load(path or roster.default_path(root))


def run(args: argparse.Namespace, root: Path) -> int:
    """Run ``collect``, ``similarity`` or ``export --format canvas``; returns the exit status.
    Errors are :class:`autograder.grading.GradingError`, which the caller prints."""
    if args.command == "collect":
        from autograder import collect

        report = collect.collect(root, args.archive, args.assignment,
                                 roster=_roster(root, args.roster), lms=args.lms,
                                 replace=args.replace, dry_run=args.dry_run)
        print(collect.format_report(report))
        if args.report:
            Path(args.report).write_text(report.to_json(), encoding="utf-8")
        return 1 if report.needs_attention else 0
    if args.command == "similarity":
        from autograder import similarity

        result = similarity.similarity(root, args.assignment, to=args.to,
                                       variants=not args.no_variants, detail=args.detail)
        print(similarity.summary(result))
        return 0
    if args.command == "export":
        from autograder import grading, lms_export

        roster = _roster(root, args.roster)
        if args.source:
            source = Path(args.source)
            grades = lms_export.read_grades(source)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                source = grading.export(root, Path(tmp) / "grades.csv")
                grades = lms_export.read_grades(source)
        book = lms_export.canvas_gradebook(
            grades, roster, titles=lms_export.parse_titles(args.column), points=args.points,
            where=str(args.source or "the gradebook's grades"))
        path = book.write(args.to or root / "grades-canvas.csv")
        print(f"wrote {path}: {len(book.rows) - 1} students, {len(book.header) - 5} "
              f"assignment column(s), for Canvas's Grades -> Import")
        for warning in book.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return 1 if book.warnings else 0
    raise ValueError(f"not an LMS command: {args.command}")
