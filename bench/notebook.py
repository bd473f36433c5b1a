"""Run a notebook's code cells in this process, in order, in one namespace, timing each cell and
the memory it takes (CUDA's peak allocation on a GPU, the process's peak RSS otherwise).

A benchmark that runs a course notebook needs the notebook's own code, per-phase timings and the
values the notebook computes (its metrics, its trainer) without a Jupyter kernel: a GPU machine
may have no Jupyter installed, and in-process the peak GPU memory and the namespace are at hand.
What a kernel adds and a course notebook uses is provided: ``display`` (shown as text) and a
non-interactive matplotlib backend. A cell that uses IPython magics or ``get_ipython()`` fails
here with its index and first line (the course's notebooks call them only on Databricks).

Phases are the notebook's ``##`` headings ("Step 7 — Train and evaluate"); cells before the
first heading belong to "Setup".
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import time
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import common


class NotebookError(RuntimeError):
    """A cell raised: the message names the notebook, the cell and its first line."""


@dataclass
class Cell:
    index: int
    phase: str
    source: str
    grade_id: str | None = None
    seconds: float = 0.0
    peak_mib: float | None = None
    output: str = ""

    @property
    def first_line(self) -> str:
        lines = [line for line in self.source.splitlines() if line.strip() and
                 not line.lstrip().startswith("#")]
        return lines[0].strip() if lines else ""


@dataclass
class Run:
    """What `run` returns: the notebook's cells with their timings, and its namespace."""

    path: Path
    cells: list[Cell]
    namespace: dict[str, Any] = field(repr=False)
    device: str = "cpu"
    memory_kind: str = "process peak RSS growth"

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.cells)

    def phases(self) -> list[dict[str, Any]]:
        """``[{"phase", "seconds", "cells", "peak_mib"}]`` in the notebook's order."""
        out: dict[str, dict[str, Any]] = {}
        for cell in self.cells:
            row = out.setdefault(cell.phase, {"phase": cell.phase, "seconds": 0.0, "cells": 0,
                                              "peak_mib": None})
            row["seconds"] += cell.seconds
            row["cells"] += 1
            if cell.peak_mib is not None:
                row["peak_mib"] = max(row["peak_mib"] or 0.0, cell.peak_mib)
        return list(out.values())

    def cell_with(self, pattern: str) -> Cell:
        """The first cell whose source matches ``pattern`` (a regular expression)."""
        for cell in self.cells:
            if re.search(pattern, cell.source):
                return cell
        raise KeyError(f"{self.path}: no code cell matches {pattern!r}")

    @property
    def peak_mib(self) -> float | None:
        peaks = [c.peak_mib for c in self.cells if c.peak_mib is not None]
        return max(peaks) if peaks else None


def code_cells(path: Path) -> list[Cell]:
    """The notebook's code cells with the ``##`` heading they fall under."""
    notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    phase = "Setup"
    cells = []
    for index, cell in enumerate(notebook["cells"]):
        source = "".join(cell.get("source", ""))
        if cell["cell_type"] == "markdown":
            heading = re.search(r"^##\s+(.+)$", source, re.MULTILINE)
            if heading:
                phase = heading.group(1).strip()
        elif cell["cell_type"] == "code" and source.strip():
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            cells.append(Cell(index, phase, source, grade_id))
    return cells


def _display(*objects: Any, **_: Any) -> None:
    for obj in objects:
        print(obj.to_string() if hasattr(obj, "to_string") else repr(obj))


def _get_ipython() -> None:
    raise NotebookError("this cell needs IPython (get_ipython()); bench.notebook runs plain Python")


class _Tee(io.TextIOBase):
    """Writes to the real stream and keeps a copy (the cell's output)."""

    def __init__(self, stream) -> None:
        self.stream, self.kept = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.kept.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def _measure(device: str) -> Iterator[dict[str, float]]:
    """Seconds and peak memory (MiB) of the block: CUDA's peak allocation when ``device`` is
    cuda (synchronised before and after), else the growth of the process's peak RSS."""
    out: dict[str, float] = {}
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        yield out
        torch.cuda.synchronize()
        out["seconds"] = time.perf_counter() - start
        out["peak_mib"] = common.mib(torch.cuda.max_memory_allocated())
        return
    with common.PeakMemory(trim=False) as memory:
        start = time.perf_counter()
        yield out
        out["seconds"] = time.perf_counter() - start
    out["peak_mib"] = common.mib(memory.growth)


def run(path: str | Path, device: str = "cpu", echo: bool = True) -> Run:
    """Execute the code cells of the notebook at ``path`` in order; `NotebookError` names the
    cell that failed. ``device`` is where the notebook computes (``cuda`` measures CUDA's peak
    allocation per cell). Set the notebook's environment (``COURSE_FAST``, output folders)
    before calling."""
    path = Path(path)
    cells = code_cells(path)
    # The cells run in a fresh __main__ module, as in a kernel: code that looks for the user's
    # namespace there (the hidden tests' in-process checks do) finds the notebook's names.
    module = types.ModuleType("__main__")
    # a main module with neither spec nor file passes for a doctest run (pyspark then exits)
    module.__file__ = str(path)
    namespace = vars(module)
    namespace.update({"display": _display, "get_ipython": _get_ipython})
    saved_main = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        _run_cells(path, cells, namespace, device, echo)
    finally:
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
    kind = "CUDA max_memory_allocated" if device == "cuda" else "process peak RSS growth"
    return Run(path, cells, namespace, device, kind)


def _run_cells(path: Path, cells: list[Cell], namespace: dict[str, Any], device: str,
               echo: bool) -> None:
    for cell in cells:
        if echo:
            print(f"--- cell {cell.index} ({cell.phase}): {cell.first_line[:80]}", flush=True)
        tee = _Tee(sys.stdout)
        try:
            with contextlib.redirect_stdout(tee), _measure(device) as measured:
                code = compile(cell.source, f"<{path.name} cell {cell.index}>", "exec")
                exec(code, namespace)  # noqa: S102 - running the course's own notebook is the point
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt):
                raise
            raise NotebookError(
                f"{path}: cell {cell.index} ({cell.phase}) failed: {type(error).__name__}: "
                f"{error}\nfirst line: {cell.first_line}\n{traceback.format_exc(limit=-6)}"
            ) from error
        cell.seconds, cell.peak_mib = measured["seconds"], measured.get("peak_mib")
        cell.output = tee.kept.getvalue()
