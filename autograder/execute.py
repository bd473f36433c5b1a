"""nbgrader's ``Execute``, as this course grades: the submission runs in the sandbox
(:mod:`autograder.sandbox`), and every test cell's verdict comes from the checker
(:mod:`autograder.checker`), not from the kernel.

For each cell of a submitted notebook, :class:`SandboxedExecute`:

- **answer and instruction cells** run in the sandboxed kernel, as nbgrader runs them; their
  outputs are kept up to the output limit (:mod:`autograder.limits`);
- **test cells** (``grade: true``, not ``solution``) do NOT run in the kernel. The checker process
  decides the cell (looked up by notebook name and ``grade_id``), asking the kernel questions
  through probes (:mod:`autograder.probe_agent`) that this class runs as throwaway cells; their
  outputs never reach the notebook. The cell's outputs become the verdict alone: a passed note,
  or one ``CheckFailed`` error with the checker's message. nbgrader's ``SaveAutoGrades`` then reads
  full points or zero from them, as always.

So no hook, display trick, exit or forged output in the kernel can give or change a test cell's
score: the kernel never writes to a test cell. The verdicts are written again after the last
cell, in case anything touched a test cell's outputs in between (display updates).

A kernel that dies (``os._exit``, a crash, a limit) no longer fails the whole notebook: the cell
that killed it gets an error saying which limit, if one was hit, and every later cell is marked
not run; the cells before keep their points.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autograder import limits as limits_module
from autograder import probe_agent

DEAD_KERNEL = (
    "the kernel died while running this cell (os._exit, a crash or out of memory); "
    "the cells after it were not run"
)
#: The first line of the output a passed test cell gets.
PASSED = "Passed: the grader checked this cell's visible and hidden tests outside your kernel."
#: The note that precedes the kernel changes a notebook made (grading.py reads it).
KERNEL_NOTE = "Note: your notebook changed its own kernel"
OUTPUT_NOTE = "[grader] {limit} reached: the rest of this notebook's output was dropped\n"
#: Largest answer a probe may send (the agent refuses bigger ones itself).
PROBE_BYTES = 16_000_000


def is_test_cell(cell: Any) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _error_output(ename: str, evalue: str) -> Any:
    from nbformat.v4 import new_output

    return new_output("error", ename=ename, evalue=evalue,
                      traceback=[f"{ename}: {line}" if i == 0 else line
                                 for i, line in enumerate(evalue.splitlines() or [""])])


def verdict_outputs(ok: bool, message: str, kernel_changes: list[str]) -> list[Any]:
    """The outputs of a decided test cell: nothing but the verdict (and a note of the kernel
    changes the checker saw, which do not change the score)."""
    from nbformat.v4 import new_output

    outputs = []
    note = ""
    if kernel_changes:
        note = (f"{KERNEL_NOTE} ({'; '.join(kernel_changes)}); grading does not read anything "
                "the kernel prints or displays, so this changes no score.\n")
    if ok:
        outputs.append(new_output("stream", name="stdout", text=PASSED + "\n" + note))
    else:
        if note:
            outputs.append(new_output("stream", name="stdout", text=note))
        outputs.append(_error_output("CheckFailed", message))
    return outputs


def _size(output: Any) -> int:
    try:
        return len(json.dumps(output, default=str))
    except (TypeError, ValueError):
        return 0


def _execute_class() -> type:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbformat.v4 import new_code_cell, new_output
    from nbgrader.preprocessors import Execute

    from autograder import checker as checker_module
    from autograder import sandbox

    class SandboxedExecute(Execute):
        """nbgrader's ``Execute`` with sandboxed kernels, checker verdicts for test cells, output
        limits, and a dead kernel that costs only the cells after it (see the module's doc)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("kernel_manager_class", sandbox.SandboxKernelManager)
            super().__init__(*args, **kwargs)
            # Widget state goes into the notebook's metadata: a kernel could grow it without end.
            self.store_widget_state = False
            self._reset()

        def _reset(self) -> None:
            self._kernel_dead = False
            self._unresponsive: str | None = None
            self._timeouts_in_a_row = 0
            self._checker: checker_module.CheckerProcess | None = None
            self._verdicts: dict[int, tuple[str, list[Any]]] = {}
            self._output_bytes = 0
            self._output_capped = False
            self._probing = False
            self._probe_bytes = 0
            self.limits = limits_module.current()
            self.limit_notes: list[str] = []

        # ------------------------------------------------------------------ the notebook

        def preprocess(self, nb: Any, resources: Any = None, km: Any = None) -> Any:
            self._reset()
            info = (resources or {}).get("nbgrader", {}) or {}
            name = info.get("notebook") or Path(
                (resources or {}).get("metadata", {}).get("name", "notebook")).stem
            self._notebook = str(name)
            try:
                nb, resources = super().preprocess(nb, resources, km=km)
            finally:
                if self._checker is not None:
                    self._checker.close()
                    self._checker = None
            for index, (grade_id, outputs) in self._verdicts.items():
                cell = nb.cells[index]
                if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
                    cell.outputs = outputs
            return nb, resources

        def preprocess_cell(self, cell: Any, resources: Any, index: int) -> Any:
            if cell.cell_type != "code":
                return super().preprocess_cell(cell, resources, index)
            if is_test_cell(cell):
                return self._decide(cell, index), resources
            if self._kernel_dead:
                cell.outputs = [_error_output("DeadKernelError",
                                              "not run: the kernel died in an earlier cell")]
                return cell, resources
            if self._unresponsive:
                cell.outputs = [_error_output("CellTimeoutError", f"not run: {self._unresponsive}")]
                return cell, resources
            before = self._counters()
            try:
                cell, resources = super().preprocess_cell(cell, resources, index)
            except CellTimeoutError as error:
                # nbclient gives up on a kernel that answers but never finishes its output
                # ("Timeout waiting for IOPub output"): that cell fails, grading goes on.
                self.log.error("Cell %s timed out: %s", index, str(error).splitlines()[0])
                cell.outputs.append(_error_output(
                    "CellTimeoutError", f"the cell did not finish within {self.timeout} s "
                    "(per-cell limit): it was interrupted"))
                self._count_timeout(cell)
                return cell, resources
            except DeadKernelError:
                self._kernel_dead = True
                self.log.error("Kernel died in cell %s: later cells are not run", index)
                cell.outputs.append(self._death_output())
                return cell, resources
            self._count_timeout(cell)
            after = self._counters()
            for name in sorted(k for k in after if after[k] > before.get(k, 0)):
                note = (f"[grader] {self.limits.describe(name)} reached in this cell: the "
                        "operation that crossed it was refused or stopped\n")
                cell.outputs.append(new_output("stream", name="stdout", text=note))
            return cell, resources

        def _count_timeout(self, cell: Any) -> None:
            """Two cells in a row past the per-cell limit: the kernel is too slow to grade (a
            trace function on every line, a machine-wide stall): the rest of the notebook is not
            run and the remaining checks fail at once, so the submission's grading ends in time
            and keeps what it earned."""
            timed_out = any(o.get("ename") == "CellTimeoutError" for o in cell.get("outputs", [])
                            if o.get("output_type") == "error")
            self._timeouts_in_a_row = self._timeouts_in_a_row + 1 if timed_out else 0
            if self._timeouts_in_a_row >= 2 and not self._unresponsive:
                self._unresponsive = (f"the kernel stopped responding ({self._timeouts_in_a_row} "
                                      f"cells in a row ran past the {self.timeout} s limit)")

        def _counters(self) -> dict[str, int]:
            cgroup = getattr(getattr(self, "km", None), "cgroup", None)
            return cgroup.counters() if cgroup is not None else {}

        def _death_output(self) -> Any:
            hit = None
            km = getattr(self, "km", None)
            if km is not None and hasattr(km, "limit_hit"):
                hit = km.limit_hit()
            if hit:
                text = (f"{self.limits.describe(hit)} reached: the kernel was stopped while "
                        "running this cell; the cells after it were not run")
                self.limit_notes.append(text)
                return _error_output("LimitReached", text)
            return _error_output("DeadKernelError", DEAD_KERNEL)

        # ------------------------------------------------------------------ test cells

        def _decide(self, cell: Any, index: int) -> Any:
            grade_id = cell.metadata.nbgrader.get("grade_id", "")
            if self._kernel_dead:
                verdict = checker_module.Verdict(
                    False, "not checked: the kernel died in an earlier cell (see that cell's "
                           "error), so nothing of your work is left to check")
            else:
                if self._checker is None:
                    km = getattr(self, "km", None)
                    socket_dir = getattr(km, "checker_dir", None)
                    self._checker = checker_module.CheckerProcess(
                        sandbox.checker_env(), str(socket_dir) if socket_dir else None)
                answers = {c.metadata.nbgrader["grade_id"]: c.source for c in self.nb.cells
                           if c.cell_type == "code" and c.get("metadata", {}).get(
                               "nbgrader", {}).get("solution") and c.metadata.nbgrader.get(
                               "grade_id")}
                verdict = self._checker.decide(
                    self._notebook, grade_id, lambda request: self._probe(request, index),
                    answers)
            outputs = verdict_outputs(verdict.ok, verdict.message, verdict.kernel_changes)
            cell.outputs = outputs
            cell.execution_count = None
            self._verdicts[index] = (grade_id, outputs)
            self.log.info("Checked %s/%s: %s (%.1f s)", self._notebook, grade_id,
                          "passed" if verdict.ok else "failed", verdict.seconds)
            return cell

        def _probe(self, request: dict, index: int) -> dict:
            """Run one probe in the kernel as a throwaway cell; the answer's JSON, or a
            ``transport_error`` saying why there is none."""
            if self._kernel_dead:
                return {"transport_error": "the kernel died in an earlier cell"}
            if self._unresponsive:
                return {"transport_error": self._unresponsive}
            code = probe_agent.kernel_code(str(request.get("snippet", "")),
                                           request.get("inputs"), max_bytes=PROBE_BYTES)
            probe_cell = new_code_cell(code)
            original = self.nb.cells[index]  # nbclient stores the executed cell at its index
            saved = self.timeout
            try:  # a probe gets at most the per-cell limit
                self.timeout = max(1, min(int(float(request.get("timeout") or 60)), saved or 60))
            except (TypeError, ValueError):
                self.timeout = min(60, saved or 60)
            self._probing, self._probe_bytes = True, 0
            try:
                self.execute_cell(probe_cell, index, store_history=False)
            except DeadKernelError:
                self._kernel_dead = True
                hit = self.km.limit_hit() if hasattr(self.km, "limit_hit") else None
                why = f" ({self.limits.describe(hit)} reached)" if hit else ""
                return {"transport_error": f"the kernel died while answering{why}"}
            except Exception as error:  # noqa: BLE001 - any failure is "no answer"
                if isinstance(error, CellTimeoutError):
                    self._unresponsive = "the kernel stopped answering (its output never ended)"
                return {"transport_error": f"{type(error).__name__}: {error}"[:300]}
            finally:
                self.nb.cells[index] = original
                self.timeout = saved
                self._probing = False
                self.clear_display_id_mapping(index)
            texts = [o.get("data", {}).get(probe_agent.MIME) for o in probe_cell.outputs
                     if o.get("output_type") == "display_data"]
            texts = [t for t in texts if isinstance(t, str)]
            if not texts:
                errors = [o for o in probe_cell.outputs if o.get("output_type") == "error"]
                if errors and errors[-1].get("ename") == "CellTimeoutError":
                    # An unresponsive kernel would make every later question wait as long: the
                    # rest of the checks fail at once, and the submission's grading ends in time.
                    self._unresponsive = (f"the kernel did not answer an earlier question within "
                                          f"{self.timeout or saved} s")
                    return {"transport_error": f"no answer within {self.timeout or saved} s (the "
                                               "kernel was interrupted)"}
                if errors:
                    e = errors[-1]
                    return {"transport_error": f"{e.get('ename')}: {str(e.get('evalue'))[:200]}"}
                return {"transport_error": "the kernel gave no answer"}
            if len(texts[-1]) > PROBE_BYTES:
                return {"transport_error": "the kernel's answer is too large"}
            try:
                return json.loads(texts[-1])
            except ValueError:
                return {"transport_error": "the kernel's answer is not JSON"}

        # ------------------------------------------------------------------ output limit

        def output(self, outs: list, msg: dict, display_id: str | None,
                   cell_index: int) -> Any:
            if self._probing:
                size = _size(msg.get("content"))
                self._probe_bytes += size
                if self._probe_bytes > 2 * PROBE_BYTES:
                    return None
                return super().output(outs, msg, display_id, cell_index)
            if self._output_capped:
                return None
            size = _size(msg.get("content"))
            if self._output_bytes + size > self.limits.output:
                self._output_capped = True
                note = OUTPUT_NOTE.format(limit=self.limits.describe("output"))
                self.limit_notes.append(note.strip())
                outs.append(new_output("stream", name="stdout", text=note))
                return None
            self._output_bytes += size
            return super().output(outs, msg, display_id, cell_index)

        def _update_display_id(self, display_id: str, msg: dict) -> None:
            size = _size(msg.get("content"))
            if self._output_bytes + size > self.limits.output:
                return  # an update past the limit is dropped
            self._output_bytes += size
            return super()._update_display_id(display_id, msg)

    SandboxedExecute.__module__ = __name__
    return SandboxedExecute


def __getattr__(name: str) -> Any:  # SandboxedExecute is built on first use (imports nbgrader)
    if name == "SandboxedExecute":
        cls = _execute_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def autograde_preprocessors() -> list[type]:
    """nbgrader's autograde preprocessors with ``Execute`` replaced by ``SandboxedExecute``."""
    from nbgrader.converters.autograde import Autograde
    from nbgrader.preprocessors import Execute

    default = Autograde.class_traits()["autograde_preprocessors"].default()
    sandboxed = __getattr__("SandboxedExecute")
    return [sandboxed if p is Execute else p for p in default]
