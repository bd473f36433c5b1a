"""Grading a class: ``python -m autograder grade --jobs 1`` and ``--jobs 2`` against plain
``nbgrader autograde`` (one submission after another), with the same scores.

For each English assignment in ``source/`` (a -de/-zh variant has the same code, tests and data)
and each class size N, a temporary copy of the course is
released (``python -m autograder release``) and filled with N sample submissions built by
``autograder.samples`` from the assignment's own notebooks (perfect, partial and empty ones in
turn: every autograded cell runs, passing or failing). Each grading mode then grades a fresh copy
of that course (same gradebook state, same submissions), timed as the instructor would see it (the
whole command). The modes run one after another, in an order that alternates between sizes; the
scores each mode wrote to the gradebook must agree submission by submission.

Ratios: plain ``nbgrader autograde`` / ``--jobs 2`` and ``--jobs 1`` / ``--jobs 2`` per N (target:
``--jobs 2`` at least 1.5x faster than one after another for N >= 16), and how the time per
submission grows with N. The exit status is 1 when a submission was not graded or the modes'
scores differ (the result file says which), so the benchmark doubles as a check that parallel
grading scores as nbgrader does. This is the course's one grading measurement (it replaces
``autograder/measure.py``).

``--baseline COMMIT`` adds one more mode, side by side in the same run: the course as it was at
``COMMIT`` (its own code, notebooks and samples, unpacked with ``git archive``) graded by its own
``python -m autograder grade --jobs 2``. The ratio "this commit / COMMIT, --jobs 2" says what the
grading of this commit costs against that one (issue 12: at most 1.5x the time of the same-kernel
grading it replaced, commit 3c4e4b3). Its scores are its own (older checks, older samples) and are
not compared with this commit's.

Run: ``python -m bench.grading [--profile smoke|default|long] [--sizes 4,16] [--assignments A,B]
[--baseline COMMIT]``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common

NAME = "grading"
TITLE = "grading N submissions: --jobs 1 / --jobs 2 / plain nbgrader autograde"
#: A run with ``--baseline`` answers another question (this commit against an older one), so it
#: is its own result (``grading_baseline.<profile>.json``) and never replaces the run that
#: compares the grading modes.
NAME_BASELINE = "grading_baseline"
TITLE_BASELINE = "grading N submissions with --jobs 2: this commit against an older commit"
MODES = ("plain", "jobs1", "jobs2")
KINDS = ("perfect", "partial", "empty")
TARGET_JOBS2 = 1.5  # issue 8: --jobs 2 at least 1.5x faster than one after another, N >= 16
TARGET_BASELINE = 1.5  # issue 12: --jobs 2 at most 1.5x the time of the grading it replaced
FIXTURE = common.ROOT / "tests" / "fixtures" / "course"

#: Class sizes per profile. A fast-mode notebook takes tens of seconds to grade on 2 cores, so
#: the default profile grades 2 per assignment and mode (the 30-minute budget of `make bench`);
#: the long one the issue's 4, 16 and 64.
SIZES = {"smoke": [1], "default": [2], "long": [4, 16, 64]}


def make_class(root: Path, assignment: str, n: int, dest: Path) -> list[str]:
    """A course copy at ``dest`` with ``assignment`` released and ``n`` sample submissions."""
    from autograder import ci_check, grading, samples

    ci_check.make_copy(root, dest)
    grading.release(dest, [assignment])
    copies = math.ceil(n / len(KINDS))
    students = samples.write_samples(dest, assignment, KINDS, prefix="bench-", copies=copies)
    # round-robin over the kinds (perfect, partial, empty, perfect, ...), so any N has them all
    round_robin = [f"bench-{kind}" + (f"-{i + 1}" if copies > 1 else "")
                   for i in range(copies) for kind in KINDS]
    keep = [s for s in round_robin if s in students][:n]
    for student in set(students) - set(keep):
        shutil.rmtree(dest / "submitted" / student)
    return keep


def grade(mode: str, course: Path, assignment: str,
          baseline: Path | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """Grade every submission of ``course`` with ``mode``: the instructor's whole command.
    ``baseline`` (mode ``baseline``): the unpacked older commit whose code grades ``course``."""
    from autograder import grading

    env = grading._env(course)  # the course's PATH (alembic) and NBG_ROOT
    cwd = grading.CONFIG_DIR
    if mode == "baseline":
        assert baseline is not None
        env = _baseline_env(env, baseline)
        cmd = [sys.executable, "-m", "autograder", "--root", str(course), "grade", assignment,
               "--jobs", "2"]
        cwd = baseline
    elif mode == "plain":
        cmd = [sys.executable, "-m", "nbgrader", "autograde", assignment]
    else:
        jobs = mode.removeprefix("jobs")
        cmd = [sys.executable, "-m", "autograder", "--root", str(course), "grade", assignment,
               "--jobs", jobs]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, proc


def _baseline_env(env: dict[str, str], baseline: Path) -> dict[str, str]:
    """The older commit's packages first on the path (ahead of this checkout's editable install),
    so its ``autograder`` and ``helpers`` grade its own course."""
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join([str(baseline), *filter(None, [env.get("PYTHONPATH")])])
    return env


def unpack_baseline(commit: str, dest: Path) -> tuple[Path, str]:
    """``git archive COMMIT`` of this repository unpacked at ``dest``; its short hash."""
    short = subprocess.run(["git", "rev-parse", "--short", commit], cwd=common.ROOT, check=True,
                           capture_output=True, text=True).stdout.strip()
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=common.ROOT,
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest, short


def make_baseline_class(baseline: Path, root: Path, assignment: str, n: int,
                        dest: Path) -> list[str]:
    """The older commit's own ``make_class`` of its course at ``root``, run by its own code in a
    child process."""
    from autograder import grading

    code = ("import json, sys; from pathlib import Path; from bench.grading import make_class; "
            "print(json.dumps(make_class(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), "
            "Path(sys.argv[4]))))")
    env = _baseline_env(grading._env(baseline), baseline)
    proc = subprocess.run([sys.executable, "-c", code, str(root), assignment, str(n),
                           str(dest)], cwd=baseline, env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode:
        raise RuntimeError(f"the baseline commit could not build its class of {n}: "
                           + common_tail(proc.stdout + proc.stderr))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def scores(course: Path, assignment: str, students: list[str]) -> dict[str, float | None]:
    """Each submission's total score in the course's gradebook (``None``: not graded)."""
    from nbgrader.api import Gradebook, MissingEntry

    from autograder import grading

    out: dict[str, float | None] = {}
    with Gradebook(grading.db_url(course)) as gb:
        for student in students:
            try:
                out[student] = round(float(gb.find_submission(assignment, student).score), 4)
            except MissingEntry:
                out[student] = None
    return out


def benchmark_name(baseline: str | None) -> tuple[str, str]:
    """The result's benchmark name and title: `NAME_BASELINE` for a run with ``--baseline``."""
    return (NAME_BASELINE, TITLE_BASELINE) if baseline else (NAME, TITLE)


def main(argv: list[str] | None = None) -> int:
    p = common.parser(NAME, __doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=None, help="comma-separated class sizes N (default per "
                   "profile: " + "; ".join(f"{k}: {v}" for k, v in SIZES.items()) + ")")
    p.add_argument("--assignments", default=None,
                   help="comma-separated assignment ids (default: every English one in source/, "
                        "language variants share its code; the smoke profile grades the test "
                        "fixture's 'selftest')")
    p.add_argument("--modes", default=",".join(MODES),
                   help="comma-separated grading modes, jobs2 and at least one other, or jobs2 "
                        "alone with --baseline (default %(default)s; leaving jobs1 out saves a "
                        "third of a long run)")
    p.add_argument("--baseline", default=None, metavar="COMMIT",
                   help="also grade the course as it was at COMMIT, with its own code and "
                        "--jobs 2, side by side (issue 12's reference: 3c4e4b3)")
    args = p.parse_args(argv)
    modes = [m for m in MODES if m in args.modes.split(",")]
    others = 1 if args.baseline else 2  # jobs2 is compared with another mode or the baseline
    if "jobs2" not in modes or len(modes) < others or len(modes) != len(args.modes.split(",")):
        p.error(f"--modes: jobs2 and at least one of plain, jobs1, or --baseline "
                f"(known: {', '.join(MODES)})")
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else SIZES[args.profile]

    from autograder import grading

    root = FIXTURE if args.profile == "smoke" else common.ROOT
    if args.assignments:
        names = args.assignments.split(",")
    else:
        # Language variants (-de, -zh) share their English assignment's code, tests and data
        # (`autograder.i18n check` enforces it): grading them again measures the same thing.
        from autograder import i18n

        names = [n for n in grading.assignments(root) if i18n.split_variant(n)[1] is None]
    from autograder import sandbox

    sandboxed, why = sandbox.availability()
    workbase = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    baseline_dir, baseline_name = None, None
    if args.baseline:
        baseline_dir, short = unpack_baseline(args.baseline, workbase / "baseline-code")
        baseline_name = f"{short} --jobs 2"
    name, title = benchmark_name(args.baseline)
    result = common.start(name, title, args.profile, sizes=sizes, assignments=names,
                          course=str(root), modes=modes + (["baseline"] if baseline_dir else []),
                          kinds=list(KINDS), sandbox=sandboxed,
                          baseline=args.baseline)
    result.script = NAME  # a grading_baseline result is still `python -m bench.grading ...`
    if not sandboxed:
        result.note(f"grading ran WITHOUT the sandbox ({why}); timings exclude its cost")
    result.note("each mode grades a fresh copy of the same released course and submissions; "
                "one run per mode and size (a class takes minutes), order alternating by size")

    failures = 0
    try:
        turn = 0
        for assignment in names:
            for n in sizes:
                base = workbase / f"{assignment}-{n}" / "base"
                t0 = time.perf_counter()
                students = make_class(root, assignment, n, base)
                setup_s = time.perf_counter() - t0
                if baseline_dir is not None:
                    old_base = workbase / f"{assignment}-{n}" / "baseline-base"
                    old_root = baseline_dir / root.relative_to(common.ROOT)
                    old_students = make_baseline_class(baseline_dir, old_root, assignment, n,
                                                       old_base)
                all_modes = modes + (["baseline"] if baseline_dir is not None else [])
                order = list(all_modes) if turn % 2 == 0 else list(all_modes)[::-1]
                turn += 1
                seconds: dict[str, float] = {}
                found: dict[str, dict[str, Any]] = {}
                for mode in order:
                    course = workbase / f"{assignment}-{n}" / mode
                    old = mode == "baseline"
                    shutil.copytree(old_base if old else base, course, symlinks=True)
                    seconds[mode], proc = grade(mode, course, assignment, baseline_dir)
                    found[mode] = scores(course, assignment, old_students if old else students)
                    ungraded = [s for s, v in found[mode].items() if v is None]
                    if ungraded:
                        failures += 1
                        result.note(f"{assignment} N={n} {mode}: {len(ungraded)} submission(s) not "
                                    f"graded (exit {proc.returncode}): "
                                    + common_tail(proc.stdout + proc.stderr))
                    shutil.rmtree(course, ignore_errors=True)
                    print(f"  {assignment} N={n} {mode}: {common.fmt_seconds(seconds[mode])}",
                          flush=True)
                agree = len({tuple(sorted(v.items())) for m, v in found.items()
                             if m != "baseline"}) == 1
                if not agree:
                    failures += 1
                    result.note(f"{assignment} N={n}: the modes' scores DIFFER: {found}")
                for mode in all_modes:
                    result.measure(assignment=assignment, n=n, mode=mode, seconds=seconds[mode],
                                   per_submission_s=seconds[mode] / n, scores_agree=agree,
                                   setup_s=setup_s, scores=found[mode])
                target = TARGET_JOBS2 if n >= 16 else None
                if "plain" in seconds:
                    result.ratio(f"{assignment}, N={n}: plain nbgrader / --jobs 2", seconds["plain"],
                                 seconds["jobs2"], "nbgrader autograde", "--jobs 2", target=target)
                if "baseline" in seconds:
                    result.ratio(f"{assignment}, N={n}: this commit / {baseline_name}",
                                 seconds["jobs2"], seconds["baseline"], "--jobs 2", baseline_name,
                                 target=TARGET_BASELINE if n >= 16 else None, direction="max",
                                 note="the time grading takes now against the commit named, "
                                      "side by side; at most 1.5x")
                if "jobs1" in seconds:
                    result.ratio(f"{assignment}, N={n}: --jobs 1 / --jobs 2", seconds["jobs1"],
                                 seconds["jobs2"], "--jobs 1", "--jobs 2")
                shutil.rmtree(base, ignore_errors=True)
                if baseline_dir is not None:
                    shutil.rmtree(old_base, ignore_errors=True)
            if len(sizes) > 1:
                rows = [m for m in result.measurements
                        if m["assignment"] == assignment and m["mode"] == "jobs2"]
                small, large = rows[0], rows[-1]
                result.ratio(f"{assignment}: --jobs 2 seconds per submission, N={large['n']} vs "
                             f"N={small['n']}", large["per_submission_s"], small["per_submission_s"],
                             f"N={large['n']}", f"N={small['n']}",
                             note="1.0x = time grows linearly with N")
    finally:
        shutil.rmtree(workbase, ignore_errors=True)
    result.finish(args.out_dir, argv=argv)
    return 1 if failures else 0


def common_tail(text: str, lines: int = 4) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
