"""The instructor's command line: ``python -m autograder COMMAND``.

- ``release [ASSIGNMENT ...]``: ``nbgrader generate_assignment`` for every assignment in ``source/``;
- ``samples [ASSIGNMENT] [--kinds K,K] [--copies N]``: write sample submissions into ``submitted/``;
- ``grade [ASSIGNMENT] [--jobs N] [--timeout S]``: autograde every submission in ``submitted/``,
  N at a time, each in its own process, working copy and sandbox; prints the summary table;
- ``feedback [ASSIGNMENT]``: feedback HTML (hidden tests removed) into ``feedback/``;
- ``export [--to grades.csv]``: the grade CSV;
- ``collect ARCHIVE.zip ASSIGNMENT``, ``export --format canvas``, ``similarity ASSIGNMENT``:
  the LMS steps, LMS in and out, and the report of similar answers (``autograder/lms_cli.py``);
- ``summary``: the table of the last grading runs;
- ``check [ASSIGNMENT ...]``: the CI check (release up to date, no solution or hidden-test
  marker in ``release/``, source scores full, untouched release scores zero);
- ``student-kit DIR``: the students' repository (release notebooks, helpers, course text; no
  solution, hidden test or check), see :mod:`autograder.student_kit`;
- ``demo``: the whole loop on a temporary copy of the course (release, samples, grade,
  feedback, export, table).

``--root DIR`` (or ``NBG_ROOT``) grades a copy of the course instead of this one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="course root (default: NBG_ROOT or this repository)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("release", help="generate release/ from source/ for every assignment")
    p.add_argument("assignments", nargs="*")

    p = sub.add_parser("samples", help="write sample submissions into submitted/")
    p.add_argument("assignment", nargs="?")
    p.add_argument("--kinds", default="perfect,partial,empty",
                   help="comma-separated kinds, or 'all' (default: perfect,partial,empty)")
    p.add_argument("--copies", type=int, default=1, help="submissions per kind (default 1)")
    p.add_argument("--prefix", default="sample-", help="student id prefix (default 'sample-')")

    p = sub.add_parser("grade", help="autograde every submission, N at a time")
    p.add_argument("assignment", nargs="?")
    p.add_argument("--jobs", "-j", type=int, default=2, help="submissions at once (default 2)")
    p.add_argument("--timeout", type=int, default=None,
                   help="per-cell time limit in seconds (default: nbgrader_config.py's, 180)")
    p.add_argument("--student", action="append", help="only this student (repeatable)")

    p = sub.add_parser("feedback", help="feedback HTML for graded submissions")
    p.add_argument("assignment", nargs="?")

    p = sub.add_parser("export", help="write the grade CSV")
    p.add_argument("--to", help="output file (default: grades.csv in the course root)")
    # --- LMS in/out and similarity: collect, export --format canvas, similarity (lms_cli.py)
    from autograder import lms_cli

    lms_cli.add_parsers(sub, p)
    # --- end of the LMS block

    sub.add_parser("summary", help="print the table of the last grading runs")

    p = sub.add_parser("check", help="the CI check of every assignment")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--keep", action="store_true", help="keep the temporary course copy")
    p.add_argument("--grade-variants", action="store_true",
                   help="also grade language variants whose code equals their English assignment")

    p = sub.add_parser("student-kit", help="build the students' repository (no solutions) in DIR")
    p.add_argument("dest", metavar="DIR")
    p.add_argument("--force", action="store_true", help="replace DIR's contents")

    p = sub.add_parser("demo", help="the instructor's loop on a temporary copy of the course")
    p.add_argument("--assignments", help="comma-separated assignments (default: the English ones)")
    p.add_argument("--kinds", default="all",
                   help="sample kinds, comma-separated, or 'all' (default) or 'honest'")
    p.add_argument("--jobs", "-j", type=int, default=2)
    p.add_argument("--variants", action="store_true", help="also the language variants")
    # `--root` also after the command (python -m autograder grade --root DIR): the value given
    # there wins; the one before the command is the default.
    for command in sub.choices.values():
        if not any("--root" in action.option_strings for action in command._actions):
            command.add_argument("--root", default=argparse.SUPPRESS,
                                 help="course root (default: NBG_ROOT or this repository)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from autograder import grading

    root = grading.course_root(args.root)
    try:
        if args.command == "release":
            for folder in grading.release(root, args.assignments or None):
                print(f"released {folder}")
        elif args.command == "samples":
            from autograder import samples

            kinds = samples.KINDS if args.kinds == "all" else tuple(
                k.strip() for k in args.kinds.split(",") if k.strip())
            unknown = [k for k in kinds if k not in samples.KINDS]
            if unknown:  # checked before anything is written
                raise grading.GradingError(
                    f"unknown sample kind {unknown[0]!r}; choose from {', '.join(samples.KINDS)}")
            names = [args.assignment] if args.assignment else grading.assignments(root)
            for name in names:
                grading.check_assignment(root, name)
            for name in names:
                students = samples.write_samples(root, name, kinds, prefix=args.prefix,
                                                 copies=args.copies)
                print(f"{name}: wrote {len(students)} submissions to {root / 'submitted'}")
        elif args.command == "grade":
            results = grading.grade(root, args.assignment, jobs=args.jobs, timeout=args.timeout,
                                    students=args.student)
            if not results:
                print(f"nothing to grade: no submission under {root / 'submitted'}")
                return 0
            print(grading.summary_table(results))
            failed = [r for r in results if r.status != "graded"]
            if failed:
                print(f"\n{len(failed)} submission(s) could not be graded: see the reasons above",
                      file=sys.stderr)
                return 1
        elif args.command == "feedback":
            files = grading.feedback(root, args.assignment)
            print(f"{len(files)} feedback files under {root / 'feedback'}")
        # --- LMS block: collect, export --format canvas, similarity (lms_cli.py)
        elif args.command in ("collect", "similarity") or (
                args.command == "export" and args.format != "csv"):
            from autograder import lms_cli

            return lms_cli.run(args, root)
        # --- end of the LMS block
        elif args.command == "export":
            print(f"wrote {grading.export(root, args.to)}")
        elif args.command == "summary":
            report = grading.load_report(root)
            print(grading.summary_table(report) if report else "no grading run yet")
        elif args.command == "check":
            from autograder import ci_check

            return ci_check.main(root, args.assignments or None, keep=args.keep,
                                 grade_variants=args.grade_variants)
        elif args.command == "student-kit":
            from autograder import student_kit

            try:
                dest = student_kit.build(root, Path(args.dest), force=args.force)
            except student_kit.KitError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(f"wrote the student kit to {dest}: push it as the students' repository "
                  "(course/instructor.md)")
        elif args.command == "demo":
            from autograder import ci_check

            names = args.assignments.split(",") if args.assignments else None
            return ci_check.demo(root, jobs=args.jobs, variants=args.variants, names=names,
                                 kinds=args.kinds)
    except grading.GradingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
