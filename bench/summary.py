"""Print the README's "Performance" section as markdown from ``bench/results/*.json``.

``python -m bench.summary [--results DIR] [--heading-level 2]``; ``make bench`` prints it at the
end. Every figure comes from a result file; nothing here is typed in by hand.
"""

from __future__ import annotations

import argparse
import math
import shlex
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from bench import common

#: Per benchmark: (column key, header, formatter) for its measurement table.
_S = "seconds"
COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "token_stats": [
        ("examples", "examples", "int"), ("tokens", "tokens", "int"),
        ("lab_s", "lab loop", _S), ("course_s", "helpers.tokens", _S),
        ("floor_s", "raw encode (floor)", _S), ("floor_batch_s", "threaded batch encode", _S),
        ("counts_agree", "counts agree", "bool"),
    ],
    "gpt2_recipe": [
        ("variant", "variant", "str"), ("description", "recipe", "str"),
        ("tokens_per_epoch", "tokens / epoch", "int"), ("padding_share", "padding", "pct"),
        ("step_s_median", "s / step (median)", _S), ("step_cpu_s_median", "CPU s / step", _S),
        ("epoch_s_extrapolated", "epoch (extrap.)", _S),
        ("epoch_s_real", "epoch (real)", _S), ("peak_memory_growth_mib", "peak mem. growth MiB", "num"),
    ],
    "emulator": [
        ("case", "case", "str"), ("backend", "backend", "str"), ("examples", "examples", "int"),
        ("median_s", "median", _S), ("p95_s", "p95", _S), ("completion_tokens", "tokens out", "num"),
        ("per_token_s", "per token", _S), ("throughput_mib_s", "MiB/s", "num"), ("n", "runs", "int"),
    ],
    "grading": [
        ("assignment", "assignment", "str"), ("n", "N", "int"), ("mode", "mode", "str"),
        ("seconds", "wall", _S), ("per_submission_s", "per submission", _S),
        ("scores_agree", "same scores", "bool"),
    ],
}
COLUMNS["grading_baseline"] = COLUMNS["grading"]

#: Results written by a script of another name (``bench/grading.py --baseline``).
SCRIPTS = {"grading_baseline": "grading"}


Table = tuple[list[str], list[list[str]]]


def _cpu_accuracy_tables(measurements: list[dict[str, Any]]) -> list[Table]:
    from bench import cpu_accuracy

    return [cpu_accuracy.table(measurements)]


def _emulator_tables(measurements: list[dict[str, Any]]) -> list[Table]:
    from bench import emulator

    return emulator.tables(measurements)


def _gpu_tables(measurements: list[dict[str, Any]]) -> list[Table]:
    from bench import gpu

    return gpu.tables(measurements)


#: Benchmarks whose rows are summarised rather than listed: tables ``(headers, rows)`` built
#: from the measurement rows by the benchmark's own module.
TABLES: dict[str, Callable[[list[dict[str, Any]]], list[Table]]] = {
    "cpu_accuracy": _cpu_accuracy_tables,
    "emulator": _emulator_tables,
    "gpu": _gpu_tables,
}

WHAT = {
    "token_stats": "Token statistics of chat data (issue 8): the lab's counting loop vs "
                   "`helpers.tokens`, with tiktoken's raw encode as the floor.",
    "gpt2_recipe": "GPT-2 on IMDB: the lab's pad-to-max recipe vs the course's (dynamic padding, "
                   "truncation, length grouping, CPU defaults) on the same model and batch size.",
    "emulator": "The local Azure OpenAI emulator: job time, chat latency, upload throughput.",
    "grading": "Grading N submissions: `--jobs 1`, `--jobs 2` and plain `nbgrader autograde`.",
    "grading_baseline": "Grading N submissions with `--jobs 2`: this commit against the commit "
                        "named (`bench/grading.py --baseline`, issue 12: every verdict in a "
                        "checker process outside the sandboxed kernel costs at most 1.5× the "
                        "same-kernel grading it replaced).",
    "gpu": "The GPU path (issue 16): assignment 01's source notebook in full mode with the GPU "
           "recipe (the lab's sizes, every layer trains), then an emulator job with the SmolLM2 "
           "backend on the course's 02 data and a chat; run on a lent GPU machine as "
           "bench/README.md describes (`python -m bench.gpu_carry` stages it).",
    "cpu_accuracy": "The course's CPU recipe, offline, packaged backbone: configurations chosen "
                    "for a time budget on validation reviews carved from the training reviews, "
                    "then reported once on the 500 test reviews (mean ± sd over the seeds).",
}


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "seconds":
        return common.fmt_seconds(float(value))
    if kind == "int":
        return f"{int(value):,}"
    if kind == "pct":
        return f"{100 * float(value):.0f}%"
    if kind == "num":
        return f"{float(value):,.1f}"
    if kind == "num3":
        return f"{float(value):.3f}"
    if kind == "bool":
        return "yes" if value else "NO"
    return str(value).replace("|", "\\|")


def _table(headers: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def ratio_rows(result: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for r in result.get("ratios", []):
        is_ratio = r.get("unit", "x") == "x"
        unit = "×" if is_ratio else r.get("unit", "")
        target = ""
        if r.get("target") is not None:
            sign = "≥" if r.get("direction", "min") == "min" else "≤"
            verdict = {True: "met", False: "**missed**", None: "–"}[r.get("meets")]
            target = f"{sign} {r['target']:g}{unit} ({verdict})"
        value = r.get("value")
        shown = "–" if value is None else f"**{value:.2f}{unit}**" if is_ratio else f"**{value:.3f}{unit}**"
        rows.append([
            r["name"], f"{r['baseline']} / {r['candidate']}" if is_ratio else r["baseline"],
            shown, target,
        ])
    return rows


def target_rows(results: Mapping[str, Mapping[str, Any]], order: list[str]) -> list[list[str]]:
    """Every ratio or figure that has a target, across the results: the headline table."""
    rows = []
    for key in order:
        for row, r in zip(ratio_rows(results[key]), results[key].get("ratios", []), strict=True):
            if r.get("target") is not None:
                rows.append([label(key, results[key]), row[0], row[2], row[3]])
    return rows


def label(key: str, result: Mapping[str, Any]) -> str:
    """``"`gpt2_recipe`"``, or ``"`cpu_accuracy` (long)"`` for a profile other than the default."""
    profile = result.get("profile", "default")
    return f"`{result.get('benchmark', key)}`" + ("" if profile == "default" else f" ({profile})")


def _commits(results: Mapping[str, Mapping[str, Any]], order: list[str]) -> str:
    seen: dict[str, bool] = {}
    for name in order:
        m = results[name].get("machine", {})
        commit = m.get("git_commit") or "unknown"
        seen[commit] = seen.get(commit, False) or bool(m.get("git_dirty"))
    shown = [f"`{c}`{' (with local changes)' if dirty else ''}" for c, dirty in seen.items()]
    return ("commit " if len(shown) == 1 else "commits ") + ", ".join(shown)


def _date_range(dates: list[str]) -> str:
    days = sorted({d[:10] for d in dates if d})
    if not days:
        return "date unknown"
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"


def _machine_line(machine: Mapping[str, Any]) -> str:
    versions = machine.get("versions", {})
    return (f"{common.describe_machine(machine, with_load=False)}, {machine.get('os', '')}, "
            f"Python {machine.get('python', '')}, torch {versions.get('torch')}, "
            f"transformers {versions.get('transformers')}")


#: How a benchmark that has no result yet is run, where that is not just ``python -m bench.<name>``.
HOW_TO_RUN = {"gpu": "needs a CUDA GPU: `make bench-gpu`, or bench/README.md's steps for a GPU "
                     "machine without network",
              "cpu_accuracy": "`python -m bench.cpu_accuracy --profile long`, hours on 2 cores"}


#: Said under a benchmark whose machine was busier than its cores (`contended`).
CONTENDED = ("**Measured on a contended machine**: the 1-minute load was above its {cores} cores "
             "while this ran, so other work slowed it. Absolute times are inflated; small steps "
             "suffer more than large ones (each operation waits for its threads), so a ratio of "
             "wall times comes out lower than on an idle machine.")


def contended(machine: Mapping[str, Any]) -> bool:
    """True when the load at the start or the end of the run exceeded the usable cores."""
    cores = machine.get("usable_cores") or 0
    loads = [machine.get("load_average_1m"), machine.get("load_average_1m_end")]
    return bool(cores) and any(load is not None and load > cores for load in loads)


def _known() -> list[str]:
    from bench.__main__ import BENCHMARKS, EXTRA

    return [*BENCHMARKS, *EXTRA]


def ordered(results: Mapping[str, Mapping[str, Any]], names: Iterable[str] | None = None) -> list[str]:
    """The result keys in the order the section shows them: the benchmarks in the order they
    run (``names`` limits them), each with its default profile first, then the long one."""
    known = _known()

    def script(key: str) -> str:  # the script that wrote a result (grading_baseline: grading)
        benchmark = results[key].get("benchmark", key)
        return SCRIPTS.get(benchmark, benchmark)

    wanted = list(names) if names else [*known, *sorted({script(k) for k in results} - set(known))]
    order = []
    rank = {"default": 0, "long": 1, "smoke": 2}
    for name in wanted:
        keys = [k for k in results if script(k) == name]
        order += sorted(keys, key=lambda k: (results[k].get("benchmark", k) != name,
                                             rank.get(results[k].get("profile"), 3), k))
    return order


#: The generated part of a README's Performance section lies between these (`--write`).
BEGIN = "<!-- bench.summary: generated by `python -m bench.summary --write README.md`; edit bench/ instead -->"
END = "<!-- bench.summary: end -->"


def write_into(path: Path, text: str) -> None:
    """Replace what lies between `BEGIN` and `END` in ``path`` with ``text``; the rest of the
    file (the section's hand-written lead, other sections) stays as it is."""
    content = path.read_text()
    if BEGIN not in content or END not in content:
        raise SystemExit(f"{path}: no generated block to replace; put the two lines\n{BEGIN}\n{END}\n"
                         "where the Performance figures belong (usually under '## Performance')")
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{text.rstrip()}\n{END}{tail}")


def generated_block(path: Path) -> str | None:
    """The text between `BEGIN` and `END` in ``path`` (None where there is no such block)."""
    content = path.read_text()
    if BEGIN not in content or END not in content:
        return None
    return content.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def display_command(command: str) -> str:
    """The recorded command as a reader re-runs it from the repository root: the default
    ``--out-dir`` (this checkout's ``bench/results``) dropped, other paths in the checkout made
    relative."""
    root = common.RESULTS_DIR.resolve().parents[1]
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    out: list[str] = []
    skip = False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word == "--out-dir" and i + 1 < len(words):
            target = Path(words[i + 1])
            if target.is_absolute() and target.name == "results" and target.parent.name == "bench":
                skip = True  # the default: any checkout's bench/results
                continue
        if word.startswith("--out-dir=") and word.endswith("/bench/results"):
            continue
        if word.startswith(str(root) + "/"):
            word = str(Path(word).relative_to(root))
        out.append(word)
    return shlex.join(out)

def render(results: Mapping[str, Mapping[str, Any]], names: Iterable[str] | None = None,
           level: int = 2, heading: bool = True) -> str:
    """The Performance section for ``results`` (``common.load_results()``), markdown: a
    ``level`` heading (left out with ``heading=False``), one sub-heading per result."""
    h = "#" * level
    order = ordered(results, names)
    lines = [f"{h} Performance", ""] if heading else []
    if not order:
        lines += ["No benchmark results yet: run `make bench`.", ""]
        return "\n".join(lines)
    machine = results[order[0]].get("machine", {})
    main_machine = _machine_line(machine)
    profiles = sorted({results[n].get("profile", "?") for n in order})
    dates = sorted(results[n].get("created", "") for n in order)
    lines += [
        (f"Measured by `bench/` (profile {', '.join(profiles)}; each benchmark's command below) "
         f"on {main_machine} unless a benchmark names another machine; "
         f"{_commits(results, order)}, {_date_range(dates)}."),
        "",
        ("A ratio is *baseline / course* for seconds, tokens or memory, measured side by side "
         "in one run (variants interleaved, medians of the repeats): above 1× the course needs "
         "that many times less. Against a floor (raw encode, disk copy) it is *course / floor*, "
         "and lower is better (target ≤). `bench/README.md` says what each benchmark measures; "
         "re-run one with `python -m bench.<name>`, regenerate these figures with "
         "`python -m bench.summary --write README.md`. `make bench` writes "
         "`bench/results/<name>.json`, the long profile `<name>.long.json`."),
        "",
    ]
    missing = [name for name in _known() if name not in {results[k].get("benchmark", k)
                                                          for k in order}]
    if missing and not names:
        lines += ["Not measured yet: " + "; ".join(
            f"`bench/{name}.py` ({HOW_TO_RUN.get(name, f'`python -m bench.{name}`')})"
            for name in missing) + ".", ""]
    targets = target_rows(results, order)
    if targets:
        lines += ["The issue's targets:", ""]
        lines += _table(["benchmark", "figure", "reached", "target"], targets) + [""]
    for key in order:
        result = results[key]
        name = result.get("benchmark", key)
        profile = result.get("profile", "default")
        suffix = "" if profile == "default" else f" ({profile} profile)"
        lines += [f"{h}# `bench/{SCRIPTS.get(name, name)}.py`{suffix}", "",
                  WHAT.get(name, result.get("title", "")), ""]
        m = result.get("machine", {})
        load = ""
        if m.get("load_average_1m") is not None:
            load = f", load {m['load_average_1m']}" + (
                f" → {m['load_average_1m_end']}" if m.get("load_average_1m_end") is not None else "")
        wall = common.fmt_seconds(result.get("wall_s") or math.nan)
        lines += [f"Command: `{display_command(result.get('command', ''))}` ({wall}{load}).", ""]
        if contended(m):
            lines += [CONTENDED.format(cores=m.get("usable_cores")), ""]
        if _machine_line(m) != main_machine:
            lines += [(f"Machine: {_machine_line(m)}; commit `{m.get('git_commit')}`"
                       f"{' (with local changes)' if m.get('git_dirty') else ''}."), ""]
        rows = ratio_rows(result)
        if rows:
            lines += _table(["ratio or figure", "compared", "value", "target"], rows) + [""]
        measurements = result.get("measurements", [])
        if measurements and name in TABLES:
            for headers, table_rows in TABLES[name](measurements):
                lines += _table(headers, [[c.replace("|", "\\|") for c in row]
                                          for row in table_rows]) + [""]
        elif measurements:
            columns = COLUMNS.get(name)
            if columns is None:
                keys = [k for k, v in measurements[0].items() if not isinstance(v, list | dict)]
                columns = [(k, k, "str") for k in keys]
            present = [c for c in columns if any(c[0] in m for m in measurements)]
            lines += _table([c[1] for c in present],
                            ([_fmt(m.get(key), kind) for key, _, kind in present]
                             for m in measurements)) + [""]
        for note in result.get("notes", []):
            lines.append(f"- {note}")
        if result.get("notes"):
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.summary", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(common.RESULTS_DIR), help="folder of result JSON files")
    p.add_argument("--heading-level", type=int, default=2, help="markdown level of the heading")
    p.add_argument("--write", metavar="FILE", default=None,
                   help="put the figures into FILE (the README) between its bench.summary "
                        "markers instead of printing them")
    args = p.parse_args(argv)
    results = common.load_results(args.results)
    if args.write:
        text = render(results, level=args.heading_level, heading=False)
        write_into(Path(args.write), text)
        print(f"wrote the Performance figures into {args.write}")
        return 0
    print(render(results, level=args.heading_level), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
