"""What every benchmark shares: timing with interleaved repeats and medians, peak memory, a
description of the machine, ratio lines, the command-line flags, and the result JSON.

A benchmark is a module ``bench/<name>.py`` with a ``main(argv=None) -> int``; it builds a
`Result`, adds measurements and ratios, and calls `Result.finish`, which prints the ratio lines
and writes its result file into ``bench/results/`` (or ``--out-dir``): one file per profile
(`result_filename`), so that ``make bench`` and the long profile never overwrite each other.
`bench/summary.py` turns those JSON files into the README's Performance section.

Ratios are always measured side by side in one process: the variants run alternately
(A B, B A, A B, ...) so that a slow minute on a shared machine hits both, and each figure is the
median of its repeats.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import platform as _platform
import re
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

#: The repository root (``bench/`` lives directly under it).
ROOT = Path(__file__).resolve().parents[1]
#: Where results go unless ``--out-dir`` says otherwise.
RESULTS_DIR = ROOT / "bench" / "results"
#: Result file format; bump when the JSON layout changes.
SCHEMA_VERSION = 1

#: The three sizes every benchmark knows: ``smoke`` (tests: seconds, numbers meaningless),
#: ``default`` (``make bench``: all benchmarks within 30 minutes on 2 cores) and ``long``
#: (``make bench BENCH_LONG=1``: the issue's full sizes).
PROFILES = ("smoke", "default", "long")


def result_filename(benchmark: str, profile: str) -> str:
    """Where a profile's result goes: ``<benchmark>.json`` for the default profile (what
    ``make bench`` writes), ``<benchmark>.<profile>.json`` for any other, so that a default run
    never overwrites the long runs that carry the targets, nor the other way round."""
    return f"{benchmark}.json" if profile == "default" else f"{benchmark}.{profile}.json"


# --------------------------------------------------------------------------- statistics

def median(values: Sequence[float]) -> float:
    """The median of ``values`` (``nan`` for none)."""
    return float(statistics.median(values)) if values else math.nan


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default method); ``nan`` for no values."""
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def summary(values: Sequence[float]) -> dict[str, float | int]:
    """``n, median, min, max, p95`` of a list of timings (seconds)."""
    return {
        "n": len(values),
        "median": median(values),
        "min": min(values) if values else math.nan,
        "max": max(values) if values else math.nan,
        "p95": quantile(values, 0.95),
    }


# --------------------------------------------------------------------------- timing

def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn()`` once: ``(seconds, its return value)`` on the monotonic clock."""
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def interleaved(
    variants: Mapping[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 0,
    on_result: Callable[[str, int, float, Any], None] | None = None,
) -> dict[str, list[float]]:
    """Time each variant ``repeats`` times, alternating the order every round (A B, B A, ...),
    after ``warmup`` untimed rounds. Returns ``{name: [seconds, ...]}``.

    ``on_result(name, repeat, seconds, value)`` sees every timed run (to keep a result or check
    that the variants agree)."""
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(warmup):
        for name in names:
            variants[name]()
    for repeat in range(repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            seconds, value = timed(variants[name])
            times[name].append(seconds)
            if on_result is not None:
                on_result(name, repeat, seconds, value)
    return times


# --------------------------------------------------------------------------- memory

def _status_kib(field_name: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def rss_bytes() -> int:
    """This process's resident memory now, in bytes."""
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import psutil

    return int(psutil.Process().memory_info().rss)


def trim_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc's ``malloc_trim``), so that
    the RSS before a measured block does not include memory an earlier block freed."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (``VmHWM``) of this process; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return _status_kib("VmHWM") is not None
    except OSError:
        return False


@dataclass
class PeakMemory:
    """Peak resident memory of this process while the ``with`` block runs.

    Freed heap memory is first handed back to the OS (`trim_memory`; ``trim=False`` skips it),
    so memory an earlier block freed but glibc kept does not hide this block's needs. Uses the
    kernel's own high-water mark (``/proc/self/clear_refs`` + ``VmHWM``) where Linux
    allows it; elsewhere samples the RSS every 5 ms in a thread. After the block:
    ``start`` (RSS when it began), ``peak`` (highest RSS during it), ``growth`` (peak - start,
    what the block itself needed on top of what was already allocated) and ``method``.
    """

    start: int = 0
    peak: int = 0
    method: str = ""
    trim: bool = True
    _stop: threading.Event | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.start)

    def __enter__(self) -> Self:
        if self.trim:
            trim_memory()
        self.start = rss_bytes()
        self.peak = self.start
        if _reset_peak():
            self.method = "VmHWM"
        else:
            self.method = "sampled-5ms"
            self._stop = threading.Event()

            def sample() -> None:
                while not self._stop.is_set():
                    self.peak = max(self.peak, rss_bytes())
                    self._stop.wait(0.005)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.method == "VmHWM":
            self.peak = max(self.peak, (_status_kib("VmHWM") or 0) * 1024)
        else:
            assert self._stop is not None and self._thread is not None
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, rss_bytes())


def mib(n_bytes: float) -> float:
    return round(n_bytes / 2**20, 1)


# --------------------------------------------------------------------------- machine

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _platform.processor() or _platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine(torch_details: bool = False) -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, memory, load, GPU, library versions and
    the git commit. ``torch_details`` imports torch for its thread count and GPU name."""
    try:
        import psutil

        memory = psutil.virtual_memory().total
    except ImportError:  # pragma: no cover - psutil ships with the course's environment
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": round(memory / 2**30, 1),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "os": f"{_platform.system()} {_platform.release()}",
        "python": _platform.python_version(),
        "versions": {
            name: _version(name)
            for name in ("torch", "transformers", "datasets", "tiktoken", "nbgrader", "openai")
        },
        "gpu": None,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }
    if info["git_commit"] is None and os.environ.get("BENCH_GIT_COMMIT"):
        # a copy of the checkout without its .git (a lent GPU machine): the commit it was
        # staged from (bench/gpu_carry.py records it)
        info["git_commit"] = os.environ["BENCH_GIT_COMMIT"]
        info["git_dirty"] = os.environ.get("BENCH_GIT_DIRTY", "0") not in ("", "0")
    if torch_details:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def code_fingerprint(paths: Sequence[str]) -> dict[str, str]:
    """``{path: first 12 hex digits of its SHA-256}`` for files of this repository (``"missing"``
    where a file is absent): what a measurement depends on, so a stored row can be checked
    against the code that would measure it now (``git_commit`` alone does not see uncommitted
    edits, and changes with every unrelated commit)."""
    import hashlib

    out = {}
    for rel in paths:
        path = ROOT / rel
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else "missing"
    return out


def process_cpu_seconds() -> float:
    """CPU time this process has used so far (user + system, all its threads). Other work on a
    shared machine stretches wall time much more than this, so a ratio of CPU times checks a
    ratio of wall times measured on a busy machine."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> float | None:
    """The 1-minute load average now (``None`` where the OS has none)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def busy_warning() -> str | None:
    """A warning when other processes keep the CPU busy: on 2 cores under a load of 10,
    torch's two threads run several times slower than one thread would (they wait for each
    other at every operation), so absolute timings mean little. ``None`` when quiet enough."""
    if not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()[0]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if load > 0.5 * (cores or 1):
        return (f"WARNING: load average {load:.1f} on {cores} cores before the benchmarks: other "
                "processes are using the CPU, so the timings will be slow and noisy (ratios "
                "suffer less). Run `make bench` on an otherwise idle machine for the README.")
    return None


def describe_machine(info: Mapping[str, Any], with_load: bool = True) -> str:
    """One line: ``"2 cores (Intel ...), 24.0 GiB, no GPU, load 1.2 at start and 2.0 at the end"``."""
    gpu = info.get("gpu") or "no GPU"
    load, end = info.get("load_average_1m"), info.get("load_average_1m_end")
    busy = ""
    if load is not None and with_load:
        busy = f", load {load} at start" + (f" and {end} at the end" if end is not None else "")
    return (f"{info.get('usable_cores')} cores ({info.get('cpu')}), {info.get('memory_gib')} GiB, "
            f"{gpu}{busy}")


# --------------------------------------------------------------------------- ratios and results

def fmt_seconds(seconds: float) -> str:
    """``0.8 ms``, ``12.3 s``, ``4.1 min``, ``2.3 h``."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


@dataclass
class Ratio:
    """``baseline / candidate`` for a quantity where smaller is better (time, tokens, memory),
    so a value above 1 means the candidate is that many times better. ``target``: the value
    to reach (``None`` when there is none); ``direction``: ``"min"`` (the ratio must be at least
    the target) or ``"max"`` (at most, e.g. "within 1.5x of the floor")."""

    name: str
    value: float
    baseline: str
    candidate: str
    target: float | None = None
    direction: str = "min"
    unit: str = "x"
    note: str = ""

    @property
    def meets(self) -> bool | None:
        if self.target is None or math.isnan(self.value):
            return None
        return self.value >= self.target if self.direction == "min" else self.value <= self.target

    def line(self, benchmark: str) -> str:
        if self.unit != "x":  # a figure (accuracy, ...), not a ratio
            target = ""
            if self.target is not None:
                sign = ">=" if self.direction == "min" else "<="
                verdict = {True: "met", False: "MISSED", None: "n/a"}[self.meets]
                target = f" (target {sign} {self.target:g}: {verdict})"
            return f"FIGURE {benchmark}: {self.name}: {self.value:.3f}{self.unit} ({self.baseline}){target}"
        target = ""
        if self.target is not None:
            sign = ">=" if self.direction == "min" else "<="
            verdict = {True: "met", False: "MISSED", None: "n/a"}[self.meets]
            target = f" (target {sign} {self.target:g}{self.unit}: {verdict})"
        note = f" [{self.note}]" if self.note else ""
        return (
            f"RATIO {benchmark}: {self.name}: {self.value:.2f}{self.unit} "
            f"({self.baseline} vs {self.candidate}){target}{note}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "value": _finite(self.value), "baseline": self.baseline,
            "candidate": self.candidate, "target": self.target, "direction": self.direction,
            "unit": self.unit, "meets": self.meets, "note": self.note,
        }


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: turn them into None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass
class Result:
    """One benchmark run: parameters, measurements (rows of plain values), ratios and notes."""

    benchmark: str
    title: str
    profile: str
    params: dict[str, Any] = field(default_factory=dict)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    #: The module that runs it (``bench.<script>``), when its name is not the benchmark's.
    script: str | None = None

    def measure(self, **row: Any) -> dict[str, Any]:
        """Add one measurement row (a flat dict of plain values) and return it."""
        self.measurements.append(row)
        return row

    def ratio(self, name: str, baseline_value: float, candidate_value: float, baseline: str,
              candidate: str, target: float | None = None, direction: str = "min",
              note: str = "") -> Ratio:
        """Add ``baseline_value / candidate_value`` as a `Ratio` and print its line now."""
        value = baseline_value / candidate_value if candidate_value else math.nan
        ratio = Ratio(name, float(value), baseline, candidate, target, direction, note=note)
        self.ratios.append(ratio)
        print(ratio.line(self.benchmark), flush=True)
        return ratio

    def figure(self, name: str, value: float, what: str, target: float | None = None,
               direction: str = "min", unit: str = "") -> Ratio:
        """Add an absolute figure (an accuracy, not a ratio) with what it is and its target,
        kept with the ratios (``unit`` is not ``"x"``) and printed as a ``FIGURE`` line now."""
        figure = Ratio(name, float(value), what, "", target, direction, unit=unit)
        self.ratios.append(figure)
        print(figure.line(self.benchmark), flush=True)
        return figure

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"NOTE {self.benchmark}: {text}", flush=True)

    def as_dict(self, command: str) -> dict[str, Any]:
        if hasattr(os, "getloadavg"):  # how busy the machine was by the end: judge noise by it
            self.machine["load_average_1m_end"] = round(os.getloadavg()[0], 2)
        return _finite({
            "schema": SCHEMA_VERSION,
            "benchmark": self.benchmark,
            "title": self.title,
            "profile": self.profile,
            "created": _dt.datetime.fromtimestamp(self.started, _dt.UTC).isoformat(timespec="seconds"),
            "wall_s": round(time.time() - self.started, 2),
            "command": command,
            "machine": self.machine,
            "params": self.params,
            "measurements": self.measurements,
            "ratios": [r.as_dict() for r in self.ratios],
            "notes": self.notes,
        })

    def finish(self, out_dir: str | Path | None = None, command: str | None = None,
               argv: Sequence[str] | None = None) -> Path:
        """Write ``<out_dir>/<benchmark>.json`` (atomically) and print where. The recorded command
        is ``command``, or ``python -m bench.<name>`` with ``argv`` (default: ``sys.argv[1:]``)."""
        folder = Path(out_dir) if out_dir is not None else RESULTS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / result_filename(self.benchmark, self.profile)
        if command is None:
            args = sys.argv[1:] if argv is None else list(argv)
            command = shlex.join(["python", "-m", f"bench.{self.script or self.benchmark}", *args])
        tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.as_dict(command), indent=2, sort_keys=False) + "\n")
        os.replace(tmp, path)
        print(f"RESULT {self.benchmark}: {path} ({fmt_seconds(time.time() - self.started)})",
              flush=True)
        return path


def load_results(folder: str | Path = RESULTS_DIR,
                 smoke: bool = False) -> dict[str, dict[str, Any]]:
    """Every result in ``folder``, keyed by file name without ``.json`` (``cpu_accuracy``,
    ``cpu_accuracy.long``, ``gpu``). Smoke results (figures that mean nothing) are left out
    unless ``smoke``. A file whose name does not match its own benchmark and profile is an
    error (a result copied or renamed by hand)."""
    results = {}
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text())
        if not (isinstance(data, dict) and "benchmark" in data):
            continue
        expected = result_filename(data["benchmark"], data.get("profile", "default"))
        if path.name != expected:
            raise ValueError(f"{path}: holds the {data.get('profile')!r} result of "
                             f"{data['benchmark']!r}, which belongs in {expected}; rename it")
        if data.get("profile") == "smoke" and not smoke:
            continue
        results[path.name.removesuffix(".json")] = data
    return results


# --------------------------------------------------------------------------- command line

def parser(name: str, description: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes: ``--profile smoke|default|long`` (``--long`` and
    ``--smoke`` are short for it; ``BENCH_LONG=1`` in the environment selects ``long``),
    ``--repeats N`` and ``--out-dir DIR``."""
    p = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description)
    default = "long" if os.environ.get("BENCH_LONG", "").strip() not in ("", "0") else "default"
    p.add_argument("--profile", choices=PROFILES, default=default,
                   help="sizes: smoke (seconds, for tests), default (make bench), long "
                        "(BENCH_LONG=1; the full sizes). Default: %(default)s")
    p.add_argument("--long", dest="profile", action="store_const", const="long",
                   help="same as --profile long")
    p.add_argument("--smoke", dest="profile", action="store_const", const="smoke",
                   help="same as --profile smoke")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per variant (medians are reported); default per profile")
    p.add_argument("--out-dir", default=None,
                   help=f"where to write {name}.json (default: bench/results/)")
    return p


def pick(profile: str, smoke: Any, default: Any, long: Any) -> Any:
    """The value for ``profile``."""
    return {"smoke": smoke, "default": default, "long": long}[profile]


def start(name: str, title: str, profile: str, torch_details: bool = False,
          **params: Any) -> Result:
    """A new `Result` with the machine described; prints a header line."""
    result = Result(name, title, profile, params=dict(params), machine=machine(torch_details))
    print(f"BENCH {name} [{profile}]: {title}", flush=True)
    print(f"MACHINE {name}: {describe_machine(result.machine)}", flush=True)
    return result


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence the progress bars and info logs of transformers/datasets inside the block."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    yield
