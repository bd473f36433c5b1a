"""The checker: every autograded test is decided here, outside the student's kernel.

Grading runs each submission's notebook in a sandboxed kernel (:mod:`autograder.sandbox`). When
the grader (:mod:`autograder.execute`) reaches a test cell, it does **not** run that cell in the
kernel. It asks the checker, a separate process (``python -m autograder.checker``) started from
the course's own code, for the verdict of that cell's check (looked up by notebook name and
``grade_id`` in :data:`CHECK_MODULES`). A check asks the kernel questions through a
:class:`Probe` (snippets run by :mod:`autograder.probe_agent`, answered as plain JSON), computes
what the answers should be with the instructor-only reference code, and raises
:class:`CheckFailed` with a message for the student, or returns. The grader then writes the
verdict as the test cell's only output: nothing the kernel prints, publishes, hooks or forges
reaches that cell.

The checker and the kernel share nothing: no memory, no Python object, no file the student can
write. The checker receives JSON text only (parsed by the grader with ``json.loads``).

The same checks run in-process when an instructor runs a source notebook: its hidden-test cell
calls :func:`run_here`, which probes the instructor's own kernel with the same agent.

Protocol between the grader and the checker process (JSON lines; the checker's stdout is the
channel, its prints go to stderr):

- grader -> checker ``{"op": "check", "notebook", "grade_id"}``; checker -> grader
  ``{"op": "probe", "snippet", "inputs", "timeout"}`` any number of times, each answered by
  grader -> checker ``{"op": "answer", "answer": {...}}``; then checker -> grader
  ``{"op": "verdict", "ok", "message", "kernel_changes", "seconds"}``.
- grader -> checker ``{"op": "quit"}`` ends it.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Which module holds the checks of which notebook (by the notebook's file name, so the
#: language variants, which share notebook names and grade ids, share their checks).
CHECK_MODULES = {
    "selftest": "autograder.checks.selftest",
    "gpt2_imdb": "autograder.checks.gpt2_imdb",
    "gpt4o_jsonl": "autograder.checks.gpt4o_jsonl",
}

#: Seconds one probe may run in the kernel, and one check altogether.
PROBE_TIMEOUT = float(os.environ.get("AUTOGRADER_PROBE_TIMEOUT", "120"))
CHECK_TIMEOUT = float(os.environ.get("AUTOGRADER_CHECK_TIMEOUT", "600"))


class CheckFailed(AssertionError):
    """A check failed; the message is written for the student (what was expected, what was
    found, where to look)."""


@dataclass
class Answer:
    """What the kernel answered to one probe (plain data only)."""

    ok: bool
    value: Any = None
    raised: dict | None = None  # {"type", "message"} when the snippet raised in the kernel
    warnings: list[str] = field(default_factory=list)
    output: str = ""
    kernel_changes: list[str] = field(default_factory=list)
    transport_error: str | None = None  # no answer at all: timeout, dead kernel, garbage

    @classmethod
    def from_json(cls, data: Any) -> Answer:
        """An answer from untrusted JSON: anything malformed is a transport error."""
        if not isinstance(data, dict):
            return cls(False, transport_error="the kernel's answer is not a JSON object")
        if data.get("transport_error"):
            return cls(False, transport_error=str(data["transport_error"])[:500])
        raised = data.get("raised")
        if raised is not None and not (isinstance(raised, dict)
                                       and isinstance(raised.get("type"), str)):
            return cls(False, transport_error="the kernel's answer is malformed")
        changes = data.get("kernel_changes") or []
        warns = data.get("warnings") or []
        return cls(
            ok=data.get("ok") is True and raised is None,
            value=data.get("value"),
            raised=raised,
            warnings=[str(w)[:200] for w in warns][:10] if isinstance(warns, list) else [],
            output=str(data.get("output") or "")[:2000],
            kernel_changes=[str(c)[:200] for c in changes][:20] if isinstance(changes, list) else [],
        )


class Probe:
    """Asks the student's kernel. Subclasses provide :meth:`ask`; checks use the rest."""

    def __init__(self, socket_dir: str | None = None,
                 answers: dict[str, str] | None = None) -> None:
        self.socket_dir = socket_dir
        #: The student's answer cells' sources by grade id (plain text from the notebook), so a
        #: check can run one again with an earlier answer replaced (:meth:`rerun_snippet`).
        self.answers = dict(answers or {})
        self.kernel_changes: list[str] = []
        self._cleanups: list[Callable[[], None]] = []

    # -- transport
    def ask(self, snippet: str, inputs: Any = None, *, timeout: float | None = None) -> Answer:
        raise NotImplementedError

    # -- what checks use
    def run(self, snippet: str, inputs: Any = None, *, what: str = "the check's question",
            timeout: float | None = None) -> Any:
        """The kernel's ``RESULT`` for ``snippet``; :class:`CheckFailed` when it did not answer
        or the snippet itself raised (checks that expect a raise use :meth:`ask`)."""
        answer = self.ask(snippet, inputs, timeout=timeout)
        if answer.transport_error:
            raise CheckFailed(
                f"The grader could not get an answer from your notebook's kernel for {what}: "
                f"{answer.transport_error}. Run the notebook top to bottom (Restart & Run All) "
                "and make sure every cell finishes without leaving the kernel busy or broken."
            )
        if not answer.ok:
            error = answer.raised or {}
            raise CheckFailed(
                f"Asking your kernel for {what} raised {error.get('type')}: "
                f"{error.get('message', '')[:400]}"
            )
        return answer.value

    def call(self, name: str, calls: Iterable[tuple[list, dict]], *,
             what: str | None = None, wrap: str = "") -> list[dict]:
        """Call the student's function ``name`` once per ``(args, kwargs)``; each outcome is
        ``{"value", "type"}`` or ``{"raised": {"type", "message"}}``. ``wrap`` is Python run in the
        kernel before the calls to turn ``args`` into what the function receives (it may redefine
        ``convert(args, kwargs) -> (args, kwargs)``)."""
        snippet = (
            "def convert(args, kwargs):\n    return args, kwargs\n"
            + wrap + "\n"
            f"_f = U.get({name!r})\n"
            "if _f is None or not callable(_f):\n"
            f"    RESULT = {{'missing': type_name(_f) if {name!r} in U else None}}\n"
            "else:\n"
            "    RESULT = {'outcomes': [call(_f, *convert(a, k)) for a, k in INPUT]}\n"
        )
        result = self.run(snippet, [[list(a), dict(k)] for a, k in calls],
                          what=what or f"the results of {name}")
        if not isinstance(result, dict):
            raise CheckFailed(f"The grader got no usable answer for {name}.")
        if "outcomes" not in result:
            found = result.get("missing")
            if found is None:
                raise CheckFailed(f"`{name}` is not defined: did its cell run without an error?")
            raise CheckFailed(f"`{name}` should be a function; it is a {found}.")
        outcomes = result["outcomes"]
        if not isinstance(outcomes, list):
            raise CheckFailed(f"The grader got no usable answer for {name}.")
        return [o if isinstance(o, dict) else {"raised": {"type": "?", "message": ""}}
                for o in outcomes]

    def rerun_snippet(self, answer_id: str, substitutes: dict[str, str]) -> str | None:
        """Python (for :meth:`run`) that builds ``NS``, a copy of the kernel's namespace in which
        each name of ``substitutes`` is set by its code (run with ``NS`` as globals, leaving the
        value in ``VALUE``), and then runs the student's answer cell ``answer_id`` in ``NS``.
        Nothing of the kernel's own namespace changes. None when the answer's source is unknown
        (an instructor's own kernel). This is how a check judges one answer with the reference
        in place of an earlier answer it depends on: one mistake costs one cell's points."""
        source = self.answers.get(answer_id)
        if source is None:
            return None
        lines = ["NS = dict(U)", "RERUN_ERROR = None"]
        for name, code in substitutes.items():
            lines.append(f"exec(compile({code!r}, '<substitute {name}>', 'exec'), NS)")
            lines.append(f"NS[{name!r}] = NS.pop('VALUE')")
        lines += [
            "try:",
            f"    exec(compile({source!r}, '<your {answer_id} cell>', 'exec'), NS)",
            "except BaseException as _error:  # noqa: BLE001",
            "    RERUN_ERROR = error(_error)",
        ]
        return "\n".join(lines) + "\n"

    def note(self, answer: Answer) -> None:
        for change in answer.kernel_changes:
            if change not in self.kernel_changes:
                self.kernel_changes.append(change)

    def on_close(self, cleanup: Callable[[], None]) -> None:
        self._cleanups.append(cleanup)

    def close(self) -> None:
        while self._cleanups:
            try:
                self._cleanups.pop()()
            except Exception:  # noqa: BLE001 - cleanup must not hide the verdict
                traceback.print_exc(file=sys.stderr)


class LocalProbe(Probe):
    """Probes this process's own namespace (an instructor running a source notebook)."""

    def __init__(self, user: dict, socket_dir: str | None = None) -> None:
        super().__init__(socket_dir)
        self.user = user

    def ask(self, snippet: str, inputs: Any = None, *, timeout: float | None = None) -> Answer:
        from autograder import probe_agent

        text = probe_agent.run_local(snippet, inputs, self.user)
        answer = Answer.from_json(json.loads(text))
        self.note(answer)
        return answer


class RemoteProbe(Probe):
    """Probes the grading kernel through the grader (this process is the checker)."""

    def __init__(self, read: Callable[[], dict], write: Callable[[dict], None],
                 socket_dir: str | None = None, answers: dict[str, str] | None = None) -> None:
        super().__init__(socket_dir, answers)
        self._read, self._write = read, write

    def ask(self, snippet: str, inputs: Any = None, *, timeout: float | None = None) -> Answer:
        self._write({"op": "probe", "snippet": snippet, "inputs": inputs,
                     "timeout": timeout or PROBE_TIMEOUT})
        message = self._read()
        if message.get("op") != "answer":
            raise CheckFailed("the grader stopped answering the checker")
        answer = Answer.from_json(message.get("answer"))
        self.note(answer)
        return answer


def raised(outcome: dict) -> str | None:
    """``"raised TypeError: ..."`` for an outcome that raised, else None; a bare
    ``NotImplementedError`` is the release's placeholder and is named as such."""
    error = outcome.get("raised") if isinstance(outcome, dict) else None
    if not error:
        return None
    kind, message = str(error.get("type")), str(error.get("message") or "").strip().rstrip(".")
    if kind == "NotImplementedError" and not message:
        return ("raised NotImplementedError: the answer still has the placeholder "
                "`raise NotImplementedError()`; replace it with your code")
    return f"raised {kind}: {message[:600]}" if message else f"raised {kind}"


# --------------------------------------------------------------------------- the checks

Check = Callable[[Probe], None]


def check(grade_id: str, registry: dict[str, Check]) -> Callable[[Check], Check]:
    """Register a check under the grade id of the test cell it decides."""

    def register(function: Check) -> Check:
        if grade_id in registry:
            raise ValueError(f"two checks for grade id {grade_id!r}")
        registry[grade_id] = function
        return function

    return register


def checks_for(notebook: str) -> dict[str, Check]:
    """The checks of ``notebook`` (its file name without ``.ipynb``); empty when unknown."""
    module = CHECK_MODULES.get(notebook)
    if module is None:
        return {}
    return importlib.import_module(module).CHECKS


@dataclass
class Verdict:
    ok: bool
    message: str
    kernel_changes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def decide(notebook: str, grade_id: str, probe: Probe) -> Verdict:
    """Run one check; every failure (an unknown cell, a crash in the check) is a verdict."""
    start = time.monotonic()
    checks = checks_for(notebook)
    function = checks.get(grade_id)
    try:
        if function is None:
            raise CheckFailed(
                f"the course has no check for test cell {grade_id!r} of notebook {notebook!r} "
                "(autograder.checker.CHECK_MODULES): the instructor must add one; this cell "
                "scores zero until then"
            )
        function(probe)
        verdict = Verdict(True, "passed")
    except CheckFailed as failure:
        verdict = Verdict(False, str(failure) or "the check failed")
    except Exception as error:  # noqa: BLE001 - a bug in a check must not crash grading
        traceback.print_exc(file=sys.stderr)
        verdict = Verdict(False, f"the check itself failed ({type(error).__name__}: {error}); "
                                 "tell your instructor")
    finally:
        probe.close()
    verdict.kernel_changes = list(probe.kernel_changes)
    verdict.seconds = round(time.monotonic() - start, 3)
    return verdict


def run_here(notebook: str, grade_id: str) -> None:
    """Run the check of one test cell against this kernel (an instructor running a source
    notebook): raises :class:`CheckFailed` with the student's message when it fails."""
    try:
        user = get_ipython().user_ns  # type: ignore[name-defined]
    except NameError:
        import __main__

        user = vars(__main__)
    with tempfile.TemporaryDirectory(prefix="check-") as socket_dir:
        verdict = decide(notebook, grade_id, LocalProbe(user, socket_dir))
    if not verdict.ok:
        raise CheckFailed(verdict.message)


# --------------------------------------------------------------------------- the process


def _serve() -> int:
    """The checker process: answer check requests from the grader on stdin/stdout."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # prints must not corrupt the channel
    socket_dir = os.environ.get("AUTOGRADER_CHECKER_SOCKET_DIR") or None

    def read() -> dict:
        line = sys.stdin.readline()
        if not line:
            raise SystemExit(0)
        return json.loads(line)

    def write(message: dict) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    import warnings

    warnings.simplefilter("ignore")
    write({"op": "ready"})
    while True:
        message = read()
        if message.get("op") == "quit":
            return 0
        if message.get("op") != "check":
            continue
        answers = message.get("answers")
        answers = {str(k): str(v) for k, v in answers.items()} if isinstance(answers, dict) else {}
        probe = RemoteProbe(read, write, socket_dir, answers)
        verdict = decide(str(message.get("notebook")), str(message.get("grade_id")), probe)
        write({"op": "verdict", "ok": verdict.ok, "message": verdict.message,
               "kernel_changes": verdict.kernel_changes, "seconds": verdict.seconds})


class CheckerProcess:
    """The grader's handle on one checker process (started on first use)."""

    def __init__(self, env: dict[str, str], socket_dir: str | None = None) -> None:
        self.env = dict(env)
        if socket_dir:
            self.env["AUTOGRADER_CHECKER_SOCKET_DIR"] = socket_dir
        self.proc: subprocess.Popen | None = None

    def _start(self, notebook: str = "") -> subprocess.Popen:
        """A fresh checker process: forked from the grading's checker server, which imported
        what ``notebook``'s checks use already (:func:`autograder.nbgrader_runner.start_checker`),
        else ``python -m autograder.checker``."""
        from autograder import nbgrader_runner

        root = str(Path(__file__).resolve().parent.parent)
        env = dict(self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        quiet = not env.get("AUTOGRADER_CHECKER_DEBUG")
        proc = nbgrader_runner.start_checker(notebook, env, root, quiet) if notebook else None
        if proc is None:
            proc = subprocess.Popen(
                [sys.executable, "-m", "autograder.checker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL if quiet else None,
                text=True, env=env, cwd=root, bufsize=1,
            )
        ready = self._receive(proc, 120)
        if ready.get("op") != "ready":
            proc.kill()
            raise RuntimeError("the checker process did not start")
        return proc

    @staticmethod
    def _receive(proc: subprocess.Popen, timeout: float) -> dict:
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError(f"the checker did not answer within {timeout:.0f} s")
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the checker process ended (exit {proc.poll()})")
        return json.loads(line)

    def decide(self, notebook: str, grade_id: str, answer_probe: Callable[[dict], dict],
               answers: dict[str, str] | None = None) -> Verdict:
        """The verdict of one test cell; ``answer_probe(request) -> answer dict`` runs a probe in
        the kernel. A checker that crashes or hangs gives a failing verdict and is restarted."""
        deadline = time.monotonic() + CHECK_TIMEOUT
        try:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = self._start(notebook)
            proc = self.proc
            proc.stdin.write(json.dumps({"op": "check", "notebook": notebook,
                                         "grade_id": grade_id, "answers": answers or {}}) + "\n")
            proc.stdin.flush()
            while True:
                message = self._receive(proc, max(1.0, deadline - time.monotonic()))
                if message.get("op") == "verdict":
                    return Verdict(bool(message.get("ok")), str(message.get("message", "")),
                                   list(message.get("kernel_changes") or []),
                                   float(message.get("seconds") or 0))
                if message.get("op") == "probe":
                    answer = answer_probe(message)
                    proc.stdin.write(json.dumps({"op": "answer", "answer": answer}) + "\n")
                    proc.stdin.flush()
        except (OSError, RuntimeError, TimeoutError, ValueError) as error:
            self.close()
            return Verdict(False, f"the grader's checker failed on this cell ({error}); "
                                  "tell your instructor")

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


if __name__ == "__main__":
    # Run as ``python -m autograder.checker``: serve from the imported module, so the checks and
    # this loop share one CheckFailed class.
    from autograder.checker import _serve as serve

    sys.exit(serve())
