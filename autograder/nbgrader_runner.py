"""nbgrader commands in processes forked from one that has imported nbgrader already.

``python -m nbgrader autograde ...`` spends about 1.5 s of CPU importing nbgrader (its Jupyter
server extensions, nbconvert, SQLAlchemy) before it grades anything, once per submission: on a
small assignment that is half of the grading process's CPU time. Here a small fork server
(``python -m autograder.nbgrader_runner``, started once per grading process) imports nbgrader
once, and every command runs in a fresh process forked from it: the same nbgrader application
with the same arguments, working folder and environment as ``python -m nbgrader``, in its own
process (one submission's grading still shares nothing with another's), stdout and stderr
captured at the file-descriptor level (the kernels it starts write there too), and a time limit
that kills it.

The server is single-threaded (it only imports modules, forks, and reports exits), so every
fork starts from the same clean state; it ends, killing what it started, when the process that
started it goes away (its stdin closes), and removes its socket folder. It is not :mod:`multiprocessing`'s forkserver, whose
children import the caller's ``__main__`` script again (an instructor's script without an
``if __name__ == "__main__"`` guard would run itself once per submission).

``AUTOGRADER_NBGRADER=subprocess`` runs ``python -m nbgrader`` instead (the plain command line),
and so does any failure to start the server.

The checker process of each graded submission (:mod:`autograder.checker`) is forked the same way,
from a second server started in the checker's environment (:func:`autograder.sandbox.
checker_env`): before its first fork for a notebook it imports what that notebook's checks use
(their module's ``PRELOAD``: torch, transformers, scikit-learn, the emulator, ...), which a fresh
checker would import again for every submission (5 to 10 s of CPU for the course's two
assignments). The checker's pipes travel to the server with the request (``SCM_RIGHTS``).

Modules read some variables when they are imported (offline flags, cache folders), so a server
is started in the environment of the requests it serves: a request whose environment differs
in anything but :data:`PER_RUN_ENV` gets a new server started in it, and the old one finishes
what it runs, then ends (``retire`` on its stdin). A request that still reaches a server of
another environment is refused, and runs as the plain command (``python -m nbgrader``, or
``python -m autograder.checker`` started by the grader), as it does when no server is there.

Protocol, one Unix-socket connection per command (JSON lines): caller -> server
``{"args", "cwd", "env", "out", "err"}`` (an nbgrader command) or ``{"kind": "checker",
"notebook", "cwd", "env", "quiet"}`` with the checker's stdin and stdout attached; server ->
caller ``{"pid": N}`` (or ``{"refused": why}``), then, when it ends, ``{"exit": code}`` (a
negative code is the signal that ended it, as in :mod:`subprocess`).
"""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

#: What the server imports before its first fork (the checker server: only the checker; each
#: notebook's checks add their own ``PRELOAD`` when the first checker for it is asked for).
PRELOAD = ("nbgrader.apps.nbgraderapp",)
CHECKER_PRELOAD = ("autograder.checker",)
#: Seconds the server may take to import nbgrader and answer "ready".
START_TIMEOUT = 120
#: Seconds a checker request waits for the checker server's socket to appear.
SOCKET_WAIT = 20
#: Where a grading's nbgrader command finds the checker server (set by :func:`run`).
CHECKER_SERVER_ENV = "AUTOGRADER_CHECKER_SERVER"
#: Variables a request may set differently from its server's start environment: they differ per
#: grading run or per submission and no module the server imports reads them when imported.
PER_RUN_ENV = frozenset({
    "NBG_ROOT", "NBG_DB_URL", "PATH", "PYTHONPATH", "COURSE_CELL_TIMEOUT", "AUTOGRADER_ASSET_DIRS",
    "AUTOGRADER_CHECKER_SOCKET_DIR", CHECKER_SERVER_ENV, "AUTOGRADER_LIMITS", "AUTOGRADER_SANDBOX",
    "AUTOGRADER_NBGRADER", "AUTOGRADER_KERNEL_THREADS",
    "JPY_PARENT_PID", "NBGRADER_EXECUTION", "OLDPWD", "PWD", "PYTEST_CURRENT_TEST", "_",
})


# --------------------------------------------------------------------------- the server

def _become_nbgrader(request: dict) -> int:
    """In a forked child: ``python -m nbgrader ARGS`` in ``cwd`` with ``env``; its exit code."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # as `python -m nbgrader` would start: the working folder first, then PYTHONPATH
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:0] = [request["cwd"], *extra]
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, request["out"]), (2, request["err"])):
        target = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.argv = ["nbgrader", *request["args"]]
    code = 0
    try:
        from nbgrader.apps.nbgraderapp import NbGraderApp

        NbGraderApp.launch_instance(argv=list(request["args"]))
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # noqa: BLE001 - what python -m nbgrader prints, then exit 1
        import traceback

        traceback.print_exc()
        code = 1
    return code


def _become_checker(request: dict, fds: list[int]) -> int:
    """In a forked child: ``python -m autograder.checker`` on the pipes ``fds`` (stdin, stdout)."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:0] = [request["cwd"], *extra]  # as `python -m autograder.checker` would start
    os.dup2(fds[0], 0)
    os.dup2(fds[1], 1)
    if request.get("quiet", True):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
    for fd in fds:
        os.close(fd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own stdin, for its life
    from autograder.checker import _serve

    return _serve()


def _preload_checks(notebook: str, done: set[str]) -> None:
    """Import what ``notebook``'s checks use, once, in the server (``module`` or
    ``module:name`` for a name a package resolves lazily). A failure is left to the checker."""
    import importlib

    if notebook in done:
        return
    done.add(notebook)
    try:
        from autograder import checker

        module = importlib.import_module(checker.CHECK_MODULES[notebook])
        for spec in getattr(module, "PRELOAD", ()):
            name, _, attribute = spec.partition(":")
            loaded = importlib.import_module(name)
            if attribute:
                getattr(loaded, attribute)
    except Exception:  # noqa: BLE001, S110 - the checker imports it again and reports the error
        pass


def _refusal(request: dict, started_with: dict[str, str]) -> str | None:
    """Why a request cannot be forked here (its environment differs from the one the server
    started with, before any import could add to it, outside :data:`PER_RUN_ENV`), or None."""
    env = request.get("env", {})
    differ = sorted(k for k in set(env) | set(started_with)
                    if k not in PER_RUN_ENV and env.get(k) != started_with.get(k))
    return f"environment differs in {differ[:5]}" if differ else None


def _exit_code(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def serve(path: str, role: str = "nbgrader") -> int:
    """Import nbgrader (or, as the checker server, the checker), listen on the Unix socket
    ``path``, fork one child per request."""
    import importlib

    started_with = dict(os.environ)  # imports may add to it (torch: KMP_* variables)
    for name in CHECKER_PRELOAD if role == "checker" else PRELOAD:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through the pipe
    children: dict[int, socket.socket] = {}
    preloaded: set[str] = set()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    stdin = sys.stdin.fileno()
    retiring = False
    while True:
        if retiring and not children:
            listener.close()
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
            return 0
        waiting = [wake_r, stdin] if retiring else [listener, wake_r, stdin]
        readable, _, _ = select.select(waiting, [], [])
        if stdin in readable:
            said = os.read(stdin, 4096)
            if not said:  # the caller is gone: so is everything it started
                for pid in children:
                    _kill(pid)
                listener.close()
                shutil.rmtree(os.path.dirname(path), ignore_errors=True)
                return 0
            if b"retire" in said:  # replaced: finish what runs, start nothing more
                retiring = True
                listener.close()
                readable = [r for r in readable if r is not listener]
        if wake_r in readable:
            os.read(wake_r, 4096)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is not None:
                _send(conn, {"exit": _exit_code(status)})
                conn.close()
        if listener in readable:
            conn, _ = listener.accept()
            try:
                request, fds = _receive_request(conn)
            except (OSError, ValueError):
                conn.close()
                continue
            why = _refusal(request, started_with)
            if why is not None:
                _send(conn, {"refused": why})
                conn.close()
                for fd in fds:
                    os.close(fd)
                continue
            if request.get("kind") == "checker":
                _preload_checks(str(request.get("notebook")), preloaded)
            pid = os.fork()
            if pid == 0:  # the child: nothing of the server's is kept
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for fd in (listener, conn, *children.values()):
                    fd.close()
                for fd in (wake_r, wake_w):
                    os.close(fd)
                code = 1
                try:
                    if request.get("kind") == "checker":
                        code = _become_checker(request, fds)
                    else:
                        code = _become_nbgrader(request)
                except SystemExit as stop:
                    code = stop.code if isinstance(stop.code, int) else 0
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            for fd in fds:
                os.close(fd)
            children[pid] = conn
            _send(conn, {"pid": pid})


def _receive_request(conn: socket.socket) -> tuple[dict, list[int]]:
    """One JSON request line, and the file descriptors sent with it."""
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 2)
    while not data.endswith(b"\n"):
        chunk = conn.recv(1 << 16)
        if not chunk:
            for fd in fds:
                os.close(fd)
            raise ValueError("the request ended before its end of line")
        data += chunk
    return json.loads(data), list(fds)


def _send(conn: socket.socket, message: dict) -> None:
    try:
        conn.sendall((json.dumps(message) + "\n").encode())
    except OSError:
        pass  # the caller stopped waiting (it timed out and killed the child)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --------------------------------------------------------------------------- the caller's side

def _env_key(env: dict[str, str]) -> frozenset:
    """What of an environment a server's imports may have read: all but :data:`PER_RUN_ENV`."""
    return frozenset((k, v) for k, v in env.items() if k not in PER_RUN_ENV)


class _Server:
    """This process's fork server of one role, started on first use in the environment of the
    request at hand, and replaced by a new one when a request comes with another environment
    (outside :data:`PER_RUN_ENV`) or the server died. A replaced server finishes what it runs,
    then ends."""

    def __init__(self, role: str = "nbgrader") -> None:
        self.lock = threading.Lock()
        self.role = role
        self.proc: subprocess.Popen | None = None
        self.folder: str | None = None
        self.key: frozenset | None = None
        # replaced servers still finishing: kept, since closing their stdin (which dropping the
        # handle does) would tell them their caller is gone and kill what they run
        self.retired: list[subprocess.Popen] = []

    def socket_path(self, env: dict[str, str], wait: bool = True) -> str:
        """The socket of a server started with ``env``; ``wait=False`` does not wait for it to
        be ready (a caller then finds the socket once it is, see :func:`start_checker`)."""
        key = _env_key(env)
        with self.lock:
            if self.proc is None or self.proc.poll() is not None or self.key != key:
                self._retire()
                self._start(env, wait)
                self.key = key
            return os.path.join(self.folder, "socket")

    def _retire(self) -> None:
        self.retired = [proc for proc in self.retired if proc.poll() is None]
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write("retire\n")
                self.proc.stdin.flush()
                self.retired.append(self.proc)
            except OSError:
                pass
        elif self.folder is not None:  # a server that died: its folder goes with it
            shutil.rmtree(self.folder, ignore_errors=True)

    def _start(self, base: dict[str, str], wait: bool = True) -> None:
        self.folder = tempfile.mkdtemp(prefix="nbgrader-server-")
        path = os.path.join(self.folder, "socket")
        package_parent = str(Path(__file__).resolve().parent.parent)
        env = dict(base, PYTHONPATH=os.pathsep.join(
            p for p in (package_parent, base.get("PYTHONPATH", "")) if p))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "autograder.nbgrader_runner", path, self.role], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, close_fds=True)
        if not wait:
            return
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        if not ready or self.proc.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError("the nbgrader fork server did not start")


@functools.cache
def _server() -> _Server:
    return _Server()


def _checker_env(env: dict[str, str]) -> dict[str, str]:
    """The checker's environment for an nbgrader command run with ``env`` (what the grader in
    that command gives its checker, :func:`autograder.sandbox.checker_env`)."""
    from autograder import sandbox

    return sandbox.checker_env(env)


@functools.cache
def _checker_server() -> _Server:
    return _Server(role="checker")


def forking() -> bool:
    return os.environ.get("AUTOGRADER_NBGRADER", "fork").strip().lower() != "subprocess"


def run(args: list[str], cwd: Path, env: dict[str, str],
        timeout: float | None = None) -> subprocess.CompletedProcess:
    """``python -m nbgrader ARGS`` in ``cwd`` with ``env``: its exit code, stdout and stderr (as
    text). Past ``timeout`` seconds it is killed and the code is 124, with "timed out after N s"
    at the end of stderr."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    # Twice: a server replaced (another environment) between finding it and reaching it
    # refuses or drops the request before starting anything; the second try finds the new one.
    for _ in range(2 if forking() else 0):
        env = dict(env)
        env.pop(CHECKER_SERVER_ENV, None)
        try:
            path = _server().socket_path(env)
        except (OSError, RuntimeError):
            break
        if args[:1] == ["autograde"]:
            try:
                env[CHECKER_SERVER_ENV] = _checker_server().socket_path(
                    _checker_env(env), wait=False)
            except (OSError, RuntimeError):
                pass
        try:
            return _run_forked(cmd, path, args, cwd, env, timeout)
        except _NotStarted:
            continue
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(cmd, 124, _text(exc.stdout), _text(exc.stderr)
                                           + f"\ntimed out after {timeout:.0f} s")


class _NotStarted(Exception):
    """The server did not start the command (it refused it, or went away first)."""


def _run_forked(cmd: list[str], path: str, args: list[str], cwd: Path, env: dict[str, str],
                timeout: float | None) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="nbgrader-run-") as tmp:
        out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
        out.touch()
        err.touch()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            lines = _Lines(conn)
            try:
                conn.connect(path)
                conn.sendall((json.dumps({"args": list(args), "cwd": str(cwd), "env": dict(env),
                                          "out": str(out), "err": str(err)}) + "\n").encode())
                started = lines.next(None)
            except OSError as error:  # nothing was started: the server went away first
                raise _NotStarted(str(error)) from None
            if not started or "pid" not in started:
                raise _NotStarted(str((started or {}).get("refused", "no answer")))
            pid = started["pid"]
            timed_out = False
            try:
                answer = lines.next(timeout)
            except TimeoutError:
                timed_out = True
                _kill(pid)
                answer = lines.next(None)
            code = answer["exit"] if answer else 1
        stdout = out.read_text(errors="replace")
        stderr = err.read_text(errors="replace")
    if timed_out:
        return subprocess.CompletedProcess(cmd, 124, stdout,
                                           stderr + f"\ntimed out after {timeout:.0f} s")
    return subprocess.CompletedProcess(cmd, code, stdout, stderr)


class ForkedProcess:
    """A process forked by a server, as much of :class:`subprocess.Popen` as the checker's
    handle uses: ``stdin``, ``stdout`` (text, line-buffered), ``poll``, ``wait``, ``kill``."""

    def __init__(self, pid: int, conn: socket.socket, lines: _Lines, stdin, stdout) -> None:
        self.pid, self.conn, self.lines = pid, conn, lines
        self.stdin, self.stdout = stdin, stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                answer = self.lines.next(0.0)
            except (TimeoutError, BlockingIOError):
                return None
            self._ended(answer)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                answer = self.lines.next(timeout)
            except TimeoutError:
                raise subprocess.TimeoutExpired(["autograder.checker"], timeout) from None
            self._ended(answer)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            _kill(self.pid)

    def _ended(self, answer: dict | None) -> None:
        self.returncode = int(answer["exit"]) if answer and "exit" in answer else 1
        for stream in (self.stdin, self.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.conn.close()


def start_checker(notebook: str, env: dict[str, str], cwd: str,
                  quiet: bool = True) -> ForkedProcess | None:
    """A checker process for ``notebook`` forked from this grading's checker server (its socket
    in ``CHECKER_SERVER_ENV``); None when there is none, or it refused or failed: the caller
    then starts ``python -m autograder.checker`` itself."""
    path = os.environ.get(CHECKER_SERVER_ENV)
    if not path:
        return None
    deadline = time.monotonic() + SOCKET_WAIT
    while not os.path.exists(path):  # the server may still be starting
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)
    child_in, parent_in = os.pipe()
    parent_out, child_out = os.pipe()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        request = {"kind": "checker", "notebook": notebook, "cwd": cwd, "env": dict(env),
                   "quiet": quiet}
        socket.send_fds(conn, [(json.dumps(request) + "\n").encode()], [child_in, child_out])
        lines = _Lines(conn)
        answer = lines.next(START_TIMEOUT)
    except (OSError, ValueError):
        answer = None
    finally:
        os.close(child_in)
        os.close(child_out)
    if not answer or "pid" not in answer:
        conn.close()
        os.close(parent_in)
        os.close(parent_out)
        return None
    return ForkedProcess(int(answer["pid"]), conn, lines,
                         open(parent_in, "w", buffering=1),
                         open(parent_out))


class _Lines:
    """JSON lines from a socket, each read with its own time limit (``TimeoutError`` past it;
    the next read goes on where it stopped). None when the server closed the connection."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn, self.buffer = conn, b""

    def next(self, timeout: float | None) -> dict | None:
        self.conn.settimeout(timeout)
        while b"\n" not in self.buffer:
            chunk = self.conn.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1], *sys.argv[2:3]))
