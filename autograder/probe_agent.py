"""The probe agent: the small program the checker sends into the student's kernel to ask a
question, and the encoding of its answer.

A check never runs in the student's process. When it needs something from there (a function
called on a new input, a model's configuration, logits on the checker's reviews), it sends a
*probe*: a short snippet of Python, run in the kernel by this agent. The snippet reads the
student's names through ``U`` (the kernel's user namespace) and its inputs through ``INPUT``,
and leaves its answer in ``RESULT``. The agent turns that answer into **plain data** (``None``,
booleans, numbers, strings, lists, dicts; arrays as lists) in the kernel, and publishes it as
one JSON text on a display output of its own MIME type. The grader reads that text, parses it
with ``json.loads`` (which builds builtin types only) and hands it to the checker.

So nothing that comes back can run code in the checker: no pickle, no live object, no student
type whose ``__eq__``, ``__hash__``, ``__reduce__`` or ``__del__`` could be called there. What the
kernel answers may still be a lie (the student controls every line that runs there): the checks
are written so that a lie costs the work it would avoid (the right numbers for the checker's own,
unseen inputs are the answer), and a missing or malformed answer fails the check.

The agent also leaves the kernel as it found it: random number generators (``random``, numpy,
torch) are restored, warnings are silenced and recorded, stdout/stderr are captured, and the
names it defines disappear. It reports, with every answer, the changes a notebook made to its
own kernel (event hooks, ``showtraceback``, input transformers, tracing, import hooks, patched
library functions): grading does not depend on them, but the reasons name them.

The same agent runs in-process (``run_local``) when an instructor runs a source notebook: the
hidden-test cell calls the check there, and the answers take the same JSON round trip.
"""

from __future__ import annotations

import json
from typing import Any

#: The MIME type of the agent's answer in the kernel's display output.
MIME = "application/x-course-probe+text"

#: What the agent's ``run`` does, as source code sent to the kernel with every probe (the kernel
#: imports nothing of the course's instructor-only code, which is not in its sandbox).
AGENT_SOURCE = r'''
import json as _json
import sys as _sys

_MAX_ITEMS = 200_000


def _plain(value, depth=0, budget=None):
    """Plain JSON data for ``value`` (unknown objects become a description)."""
    if budget is None:
        budget = [_MAX_ITEMS]
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError("the answer is too large")
    if depth > 40:
        raise ValueError("the answer is nested too deeply")
    if value is None or type(value) in (bool, str):
        return value
    if type(value) is int:
        return value
    if type(value) is float:
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes):
        return {"__bytes__": value[:4096].hex(), "length": len(value)}
    module = type(value).__module__ or ""
    if module.startswith("numpy"):
        if hasattr(value, "tolist"):
            if getattr(value, "size", 1) > _MAX_ITEMS:
                raise ValueError("the answer is too large")
            return _plain(value.tolist(), depth + 1, budget)
    if module.startswith("torch") and hasattr(value, "detach"):
        if value.numel() > _MAX_ITEMS:
            raise ValueError("the answer is too large")
        return _plain(value.detach().cpu().tolist(), depth + 1, budget)
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1, budget) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, range)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_plain(v, depth + 1, budget) for v in items]
    try:
        text = repr(value)
    except BaseException as error:  # noqa: BLE001 - a student type's repr may do anything
        text = f"<repr failed: {type(error).__name__}>"
    return {"__type__": f"{module}.{type(value).__qualname__}", "__repr__": text[:300]}


def _type_name(value):
    kind = type(value)
    module = kind.__module__ or ""
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _error(error):
    try:
        message = str(error)
    except BaseException:  # noqa: BLE001
        message = "<str failed>"
    return {"type": type(error).__name__, "message": message[:2000]}


def _call(function, args=(), kwargs=None):
    """Call a student's function; ``{"value", "type"}`` or ``{"raised": {"type", "message"}}``."""
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = function(*args, **(kwargs or {}))
    except BaseException as error:  # noqa: BLE001 - report every failure, even SystemExit
        return {"raised": _error(error)}
    try:
        return {"value": _plain(result), "type": _type_name(result)}
    except BaseException as error:  # noqa: BLE001
        return {"raised": {"type": "UnreadableResult", "message": str(error)[:500]},
                "type": _type_name(result)}


def _kernel_changes(user):
    """Changes a notebook made to its own kernel that grading must not (and does not) trust."""
    found = []
    try:
        ip = get_ipython()  # noqa: F821 - defined in IPython kernels
    except NameError:
        ip = None

    def own(function):
        return getattr(function, "__module__", None) == "__main__" or getattr(
            getattr(function, "__func__", None), "__module__", None) == "__main__"

    if ip is not None:
        callbacks = getattr(getattr(ip, "events", None), "callbacks", {}) or {}
        for event, handlers in callbacks.items():
            for handler in handlers:
                if own(handler):
                    found.append(f"a {event} hook ({getattr(handler, '__name__', '?')})")
        for name in ("showtraceback", "showsyntaxerror", "run_cell", "run_cell_async",
                     "_showtraceback", "run_code", "run_ast_nodes", "transform_cell"):
            if own(vars(ip).get(name)) or own(getattr(type(ip), name, None)):
                found.append(f"IPython's {name} replaced")
        if getattr(ip, "custom_exceptions", ()):
            found.append("a custom exception handler (set_custom_exc)")
        hook = getattr(ip, "displayhook", None)
        if hook is not None and (own(getattr(hook, "__call__", None))
                                 or "__call__" in vars(hook)
                                 or type(hook).__module__ == "__main__"):
            found.append("the display hook replaced")
        transformers = list(getattr(ip, "input_transformers_post", []) or [])
        manager = getattr(ip, "input_transformer_manager", None)
        for attribute in ("cleanup_transforms", "line_transforms", "token_transformers"):
            transformers += list(getattr(manager, attribute, []) or [])
        if any(own(t) for t in transformers):
            found.append("an input transformer")
    if _sys.gettrace() is not None and own(_sys.gettrace()):
        found.append("a trace function (sys.settrace)")
    if _sys.getprofile() is not None and own(_sys.getprofile()):
        found.append("a profile function (sys.setprofile)")
    if own(_sys.excepthook):
        found.append("sys.excepthook replaced")
    import builtins
    for name in ("__import__", "isinstance", "type", "len", "print", "exec", "compile",
                 "getattr", "hasattr", "int", "float", "sum", "abs", "round", "repr"):
        if own(getattr(builtins, name, None)):
            found.append(f"builtins.{name} replaced")
    if any(type(finder).__module__ == "__main__" or own(finder) for finder in _sys.meta_path):
        found.append("an import hook (sys.meta_path)")
    patched = []
    for module_name, names in (("math", ("isclose", "isnan", "fsum")),
                               ("numpy", ("isclose", "allclose", "array_equal", "argmax")),
                               ("json", ("dumps", "loads")),
                               ("operator", ("eq",))):
        module = _sys.modules.get(module_name)
        for name in names:
            if module is not None and own(getattr(module, name, None)):
                patched.append(f"{module_name}.{name}")
    for module_name, module in list(_sys.modules.items()):
        if module_name.split(".")[0] in {"autograder", "helpers"} and module is not None:
            for name, value in list(vars(module).items())[:400]:
                if callable(value) and own(value):
                    patched.append(f"{module_name}.{name}")
    if patched:  # the standard library and numpy first, then the course's own modules
        patched.sort(key=lambda name: (name.split(".")[0] in {"helpers", "autograder"}, name))
        found.append("patched library functions: " + ", ".join(patched[:12])
                     + (f" and {len(patched) - 12} more" if len(patched) > 12 else ""))
    fake = [name for name in ("autograder", "autograder.checker")
            if name in _sys.modules and getattr(_sys.modules[name], "__file__", None) is None]
    if fake:
        found.append("a fake module in sys.modules: " + ", ".join(fake))
    return found


def run(request_json, user, publish=True):
    """Run one probe request in the kernel's namespace ``user``; publish (or return) the JSON."""
    import contextlib
    import io
    import random
    import warnings

    request = _json.loads(request_json)
    states = {"random": random.getstate()}
    numpy = _sys.modules.get("numpy")
    if numpy is not None:
        states["numpy"] = numpy.random.get_state()
    torch = _sys.modules.get("torch")
    if torch is not None:
        try:
            states["torch"] = torch.random.get_rng_state()
        except BaseException:  # noqa: BLE001
            pass
    scope = {"U": user, "INPUT": request.get("inputs"), "RESULT": None, "plain": _plain,
             "call": _call, "type_name": _type_name, "error": _error,
             "__name__": "__course_probe__", "__builtins__": __builtins__}
    out = io.StringIO()
    answer = {}
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(out):
            warnings.simplefilter("always")
            try:
                exec(compile(request["snippet"], "<check>", "exec"), scope)
                answer = {"ok": True, "value": _plain(scope.get("RESULT"))}
            except BaseException as error:  # noqa: BLE001 - the check decides what it means
                answer = {"ok": False, "raised": _error(error)}
        answer["warnings"] = sorted({f"{w.category.__name__}: {w.message}"[:200]
                                     for w in caught})[:10]
    finally:
        random.setstate(states["random"])
        if "numpy" in states:
            numpy.random.set_state(states["numpy"])
        if "torch" in states:
            try:
                torch.random.set_rng_state(states["torch"])
            except BaseException:  # noqa: BLE001
                pass
    answer["output"] = out.getvalue()[-2000:]
    try:
        answer["kernel_changes"] = _kernel_changes(user)
    except BaseException as error:  # noqa: BLE001
        answer["kernel_changes"] = [f"(could not inspect the kernel: {type(error).__name__})"]
    text = _json.dumps(answer, allow_nan=True)
    if len(text) > request.get("max_bytes", 16_000_000):
        text = _json.dumps({"ok": False, "raised": {
            "type": "AnswerTooLarge", "message": f"{len(text):,} bytes"}})
    if not publish:
        return text
    from IPython.display import publish_display_data
    publish_display_data({"''' + MIME + r'''": text})
    return None
'''


def kernel_code(snippet: str, inputs: Any = None, *, max_bytes: int = 16_000_000) -> str:
    """The code the grader sends to the kernel for one probe: one ``exec`` of the agent and its
    ``run`` on the request, in a throwaway namespace (nothing is left in the user's, and the
    statement's value is None, so IPython displays nothing)."""
    request = json.dumps({"snippet": snippet, "inputs": inputs, "max_bytes": max_bytes})
    program = AGENT_SOURCE + f"\nrun({request!r}, __user__)\n"
    return f"exec({program!r}, {{'__name__': '__course_probe__', '__user__': globals()}})\n"


def run_local(snippet: str, inputs: Any, user: dict, *, max_bytes: int = 16_000_000) -> str:
    """Run a probe in this process on the namespace ``user`` (an instructor's own kernel): the
    same agent and the same JSON text as in a grading kernel."""
    scope: dict[str, Any] = {"__name__": "__course_probe__"}
    exec(AGENT_SOURCE, scope)  # noqa: S102 - our own agent source
    request = json.dumps({"snippet": snippet, "inputs": inputs, "max_bytes": max_bytes})
    return scope["run"](request, user, publish=False)
