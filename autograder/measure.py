"""Measure parallel grading against nbgrader's own one-after-another autograde, on the same
sample submissions, in two temporary copies of the course:

    python -m autograder.measure [ASSIGNMENT ...] [--submissions 16] [--jobs 2]

For each assignment: ``submissions`` samples (perfect, partial and empty in turn), graded once
by ``nbgrader autograde ASSIGNMENT`` (all students, one process, one after another) and once by
``python -m autograder grade --jobs N`` (each submission its own process). Both use the same
sandboxed kernels. Prints both wall times, their ratio, and whether every student got the same
score; exits 1 when any score differs. Timings vary with the machine's load: compare the two
figures of one run, not figures of different runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from autograder import ci_check, grading, samples


def _students(copy: Path, assignment: str, n: int) -> list[str]:
    kinds = [samples.HONEST[i % 3] for i in range(n)]
    students = []
    for kind in samples.HONEST:
        count = kinds.count(kind)
        if count:
            students += samples.write_samples(copy, assignment, [kind], copies=count,
                                              prefix="m-")
    return students


def _scores(root: Path, assignment: str, students: list[str]) -> dict[str, float | None]:
    from nbgrader.api import Gradebook, MissingEntry

    out: dict[str, float | None] = {}
    with Gradebook(grading.db_url(root), grading.COURSE_ID) as gb:
        for student in students:
            try:
                out[student] = gb.find_submission(assignment, student).score
            except MissingEntry:
                out[student] = None
    return out


def measure(root: Path, assignment: str, *, submissions: int = 16, jobs: int = 2) -> dict:
    base = Path(tempfile.mkdtemp(prefix="grading-measure-"))
    try:
        results = {}
        copies = {}
        for mode in ("nbgrader", "parallel"):
            copy = ci_check.make_copy(root, base / mode)
            grading.release(copy, [assignment])
            students = _students(copy, assignment, submissions)
            copies[mode] = (copy, students)
        copy, students = copies["nbgrader"]
        start = time.monotonic()
        run = grading.nbgrader(["autograde", assignment, "--force"], copy, check=False)
        results["nbgrader_seconds"] = round(time.monotonic() - start, 1)
        results["nbgrader_exit"] = run.returncode
        sequential = _scores(copy, assignment, students)
        copy, students = copies["parallel"]
        start = time.monotonic()
        graded = grading.grade(copy, assignment, jobs=jobs)
        results["parallel_seconds"] = round(time.monotonic() - start, 1)
        parallel = {r.student: None if r.status != "graded" else _scores(
            copy, assignment, [r.student])[r.student] for r in graded}
        results.update(
            assignment=assignment, submissions=len(students), jobs=jobs,
            cpus=os.cpu_count(),
            ratio=round(results["nbgrader_seconds"] / results["parallel_seconds"], 2),
            same_scores=sequential == parallel,
            scores=sequential, parallel_scores=parallel,
        )
        return results
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.measure",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("assignments", nargs="*")
    parser.add_argument("--submissions", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--root")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    root = grading.course_root(args.root)
    names = args.assignments or [a for a in grading.assignments(root)
                                 if not a.endswith(("-de", "-zh"))]
    all_results = []
    ok = True
    for name in names:
        r = measure(root, name, submissions=args.submissions, jobs=args.jobs)
        all_results.append(r)
        ok &= r["same_scores"]
        print(f"{name}: {r['submissions']} submissions; nbgrader autograde one after another "
              f"{r['nbgrader_seconds']} s; python -m autograder grade --jobs {r['jobs']} "
              f"{r['parallel_seconds']} s; ratio {r['ratio']}x; same scores: {r['same_scores']} "
              f"({r['cpus']} CPUs)", flush=True)
        if not r["same_scores"]:
            print(json.dumps({"nbgrader": r["scores"], "parallel": r["parallel_scores"]}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(all_results, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
