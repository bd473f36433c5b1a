"""The code of the forgery and resource samples (see :mod:`autograder.samples`): what a student who
wants the marks without the work would put in a notebook, written to work on any assignment.

Each forgery hides its own failures (``try``/``except``), as a cunning student would, so the only
thing that can stop it is the grading design: the kernel never decides a test cell.
"""

from __future__ import annotations

import json

HOOK_CLEAR = '''# forgery: make every error disappear from the grader's view
ip = get_ipython()
def _clear(result):
    try:
        result.error_in_exec = None
        result.error_before_exec = None
    except Exception:
        pass
ip.events.register("post_run_cell", _clear)
'''

HOOK_RESULT = '''# forgery: publish a big number before every cell (nbgrader reads a result as partial credit)
ip = get_ipython()
def _score(info=None):
    try:
        ip.displayhook(1000)
    except Exception:
        pass
ip.events.register("pre_run_cell", _score)
'''

NO_TRACEBACK = '''# forgery: no error is ever shown
ip = get_ipython()
ip.showtraceback = lambda *args, **kwargs: None
ip._showtraceback = lambda *args, **kwargs: None
ip.showsyntaxerror = lambda *args, **kwargs: None
'''

TRANSFORMER = '''# forgery: every later cell (tests included) becomes `pass`
ip = get_ipython()
def _rewrite(lines):
    return ["pass\\n"]
ip.input_transformers_post.append(_rewrite)
'''

FAKE_CHECKER = '''# forgery: replace the hidden checks (attribute, sys.modules, an import hook)
import importlib.abc
import importlib.machinery
import sys
import types
_fake = types.ModuleType("autograder")
_fake.__path__ = []
_checker = types.ModuleType("autograder.checker")
_checker.run_here = lambda *args, **kwargs: None
_checker.decide = lambda *args, **kwargs: None
_fake.checker = _checker
for _name in ("autograder", "autograder.checker", "autograder.gpt2", "autograder.gpt4o",
              "autograder.checks", "autograder.checks.gpt2_imdb", "autograder.checks.gpt4o_jsonl",
              "autograder.checks.selftest"):
    sys.modules[_name] = _checker if _name != "autograder" else _fake
class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "autograder":
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None
    def create_module(self, spec):
        return sys.modules.get(spec.name) or types.ModuleType(spec.name)
    def exec_module(self, module):
        module.run_here = lambda *args, **kwargs: None
sys.meta_path.insert(0, _Finder())
try:
    import builtins
    _real_import = builtins.__import__
    def _import(name, *args, **kwargs):
        if name.split(".")[0] == "autograder":
            return _fake
        return _real_import(name, *args, **kwargs)
    builtins.__import__ = _import
except Exception:
    pass
'''

PATCHED_LIBS = '''# forgery: make comparisons always succeed and the reference answers agree with anything
import math
math.isclose = lambda *args, **kwargs: True
math.isnan = lambda *args, **kwargs: False
try:
    import numpy
    numpy.isclose = lambda *args, **kwargs: True
    numpy.allclose = lambda *args, **kwargs: True
    numpy.array_equal = lambda *args, **kwargs: True
except Exception:
    pass
import operator
operator.eq = lambda a, b: True
for _module, _names in (("helpers.tokens", ("num_tokens_from_messages", "example_token_counts",
                                             "estimate_epochs_and_cost")),
                        ("helpers.metrics", ("classification_metrics", "compute_metrics")),
                        ("helpers.classifier", ("build_model", "training_arguments"))):
    try:
        _mod = __import__(_module, fromlist=["x"])
        for _name in _names:
            setattr(_mod, _name, lambda *args, **kwargs: 0)
    except Exception:
        pass
'''

ALWAYS_EQUAL_CLASS = '''# forgery: answers that equal anything
class _Always(int):
    def __new__(cls, value=0):
        return super().__new__(cls, value)
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = int.__hash__
    def __lt__(self, other):
        return True
    def __le__(self, other):
        return True
    def __gt__(self, other):
        return True
    def __ge__(self, other):
        return True
    def __getattr__(self, name):
        return _Always()
    def __getitem__(self, key):
        return _Always()
    def __len__(self):
        return 2
    def __iter__(self):
        return iter([_Always(), _Always()])
    def __call__(self, *args, **kwargs):
        return _Always()
    def keys(self):
        return ["input_ids", "attention_mask", "accuracy", "precision", "recall", "f1",
                "n_epochs", "billing_tokens", "charged_tokens"]
'''

SETTRACE = '''# forgery: a trace function that jumps over every `raise`
import linecache
import sys
def _skip_raises(frame, event, arg):
    if event == "line":
        try:
            line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
            if line.startswith("raise"):
                frame.f_lineno = frame.f_lineno + 1
        except Exception:
            pass
    return _skip_raises
sys.settrace(_skip_raises)
try:
    import threading
    threading.settrace(_skip_raises)
except Exception:
    pass
'''

EXIT_EARLY = '''# forgery: exits and interrupts the kernel survives
import os
import signal
import sys
for _attempt in (lambda: sys.exit(0), lambda: os.kill(os.getpid(), signal.SIGINT)):
    try:
        _attempt()
    except BaseException:
        pass
try:
    raise KeyboardInterrupt
except KeyboardInterrupt:
    pass
'''

EXIT_LAST = '''# forgery: end the kernel at the very end
import os
os._exit(0)
'''


def cross(root: str, assignment: str) -> str:
    return f'''# attack: write into other students' work and the course
import pathlib
root = pathlib.Path({json.dumps(root)})
written = []
targets = list(root.glob("submitted/*/{assignment}/*.ipynb")) + list(root.glob("source/{assignment}/*"))
targets += list(root.glob("autograded/*/{assignment}/*.ipynb"))
targets += [p for p in pathlib.Path.cwd().parents[1].glob("*/*/*.ipynb")]
for path in targets:
    try:
        path.write_text("{{}}")
        written.append(path)
    except OSError:
        pass
if not written:
    raise PermissionError("attack blocked: nothing of another student's work could be written")
'''


XSS_MARKDOWN = ('My answer. <img src=x onerror="document.title=\'PWNED-md\';window.__pwned=1;'
                'fetch(\'/formgrader/api/grades\')"> '
                '<script>document.title=\'PWNED-script\';window.__pwned=2</script> '
                '[click me](javascript:window.__pwned=3) '
                '<a href="&#106;avascript:window.__pwned=4">there</a>')

XSS_OUTPUT = '''# attack: a script in an output
from IPython.display import HTML, Javascript, display
display(HTML('<b>output</b><img src=x onerror="document.title=\\'PWNED-out\\';window.__pwned=5">'
             '<script>window.__pwned=6</script>'))
try:
    display(Javascript("window.__pwned = 7; document.title = 'PWNED-js'"))
except Exception:
    pass
'''


def resource(kind: str) -> str:
    """One abuse of a limit; each cell ends without an error of its own making when it can, so
    the reasons show the limit, not the attack's bookkeeping."""
    if kind == "memory":
        return '''# abuse: a child process allocates until it is refused or stopped
import os
pid = os.fork()
if pid == 0:
    try:
        import numpy as np
        blocks = [np.ones(64 * 1024 * 1024, dtype=np.uint8) for _ in range(4096)]
    finally:
        os._exit(1)
_, status = os.waitpid(pid, 0)
print("the allocating child ended with status", status)
'''
    if kind == "fork":
        return '''# abuse: start processes until refused
import os
import signal
import time
children = []
try:
    for _ in range(100_000):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
finally:
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
'''
    if kind == "threads":
        return '''# abuse: start threads until refused
import threading
stop = threading.Event()
threads = []
try:
    for _ in range(100_000):
        thread = threading.Thread(target=stop.wait, daemon=True)
        thread.start()
        threads.append(thread)
finally:
    stop.set()
'''
    if kind == "cpu":
        return '''# abuse: spin until the CPU time limit stops the kernel
while True:
    pass
'''
    if kind == "disk":
        return '''# abuse: fill the working folder
import os
with open("filler.bin", "wb") as handle:
    for _ in range(1_000_000):
        handle.write(os.urandom(1 << 20))
'''
    if kind == "tmp":
        return '''# abuse: fill /tmp
with open("/tmp/filler.bin", "wb") as handle:
    for _ in range(1_000_000):
        handle.write(b"x" * (1 << 20))
'''
    if kind == "filesize":
        return '''# abuse: one huge file
with open("huge.bin", "wb") as handle:
    handle.seek(1 << 40)
    handle.write(b"x")
'''
    if kind == "output":
        return '''# abuse: flood the notebook with output (20 MB of text, in chunks)
import sys
for i in range(200):
    sys.stdout.write(f"{i} " + "x" * 100_000 + "\\n")
from IPython.display import Image, display
import base64
display({"image/png": base64.b64encode(b"\\x89PNG" + b"0" * 2_000_000).decode()}, raw=True)
'''
    raise ValueError(kind)
