"""Run the benchmarks: ``python -m bench [--profile smoke|default|long] [NAME ...]``.

Each benchmark runs in its own process (so one's memory and threads do not colour another's
figures), writes ``bench/results/<name>.json`` and prints its ``RATIO`` lines; at the end the
runner prints the Performance section (`bench.summary`) built from the results. ``make bench``
calls this; ``make bench BENCH_LONG=1`` selects the long profile.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import common

#: In the order they run; the cheap ones first so a failure shows early.
BENCHMARKS = ("token_stats", "gpt2_recipe", "emulator", "grading", "cpu_accuracy")
#: Benchmarks this runner does not start (they need another machine): ``gpu`` runs on a CUDA
#: machine (bench/README.md says how); the summary shows their results after the others.
EXTRA = ("gpu",)


def available() -> list[str]:
    """The benchmarks whose module exists (each lands when its subject has)."""
    return [name for name in BENCHMARKS if importlib.util.find_spec(f"bench.{name}") is not None]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    default = "long" if os.environ.get("BENCH_LONG", "").strip() not in ("", "0") else "default"
    p.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {available()})")
    p.add_argument("--profile", choices=common.PROFILES, default=default,
                   help="sizes for every benchmark (default %(default)s; BENCH_LONG=1 -> long)")
    p.add_argument("--out-dir", default=str(common.RESULTS_DIR), help="where results go")
    p.add_argument("--keep-going", action="store_true", help="run the rest after a failure")
    args = p.parse_args(argv)
    names = args.names or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; available: {available()}")

    root = Path(__file__).resolve().parents[1]
    warning = common.busy_warning()
    if warning:
        print(warning, flush=True)
    started = time.time()
    failures = []
    for name in names:
        print(f"\n=== bench.{name} ({args.profile}) ===", flush=True)
        t0 = time.time()
        # The default folder is not passed on, so each result records the command a reader types.
        out = [] if Path(args.out_dir).resolve() == common.RESULTS_DIR.resolve() else ["--out-dir", args.out_dir]
        code = subprocess.call([sys.executable, "-m", f"bench.{name}", "--profile", args.profile, *out],
                               cwd=root)
        print(f"=== bench.{name}: exit {code} after {common.fmt_seconds(time.time() - t0)} ===",
              flush=True)
        if code != 0:
            failures.append(name)
            if not args.keep_going:
                break
    print(f"\nAll benchmarks: {common.fmt_seconds(time.time() - started)}"
          + (f"; FAILED: {', '.join(failures)}" if failures else ""), flush=True)

    from bench import summary

    print()
    print(summary.render(common.load_results(args.out_dir, smoke=args.profile == "smoke"),
                         names=names))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
