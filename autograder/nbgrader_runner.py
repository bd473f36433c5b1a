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
started it goes away (its stdin closes). It is not :mod:`multiprocessing`'s forkserver, whose
children import the caller's ``__main__`` script again (an instructor's script without an
``if __name__ == "__main__"`` guard would run itself once per submission).

``AUTOGRADER_NBGRADER=subprocess`` runs ``python -m nbgrader`` instead (the plain command line),
and so does any failure to start the server.

Protocol, one Unix-socket connection per command (JSON lines): caller -> server
``{"args", "cwd", "env", "out", "err"}``; server -> caller ``{"pid": N}``, then, when it ends,
``{"exit": code}`` (a negative code is the signal that ended it, as in :mod:`subprocess`).
"""

from __future__ import annotations

import functools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

#: What the server imports before its first fork.
PRELOAD = ("nbgrader.apps.nbgraderapp",)
#: Seconds the server may take to import nbgrader and answer "ready".
START_TIMEOUT = 120


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


def _exit_code(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def serve(path: str) -> int:
    """Import nbgrader, listen on the Unix socket ``path``, fork one child per request."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through the pipe
    children: dict[int, socket.socket] = {}
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    stdin = sys.stdin.fileno()
    while True:
        readable, _, _ = select.select([listener, wake_r, stdin], [], [])
        if stdin in readable and not os.read(stdin, 4096):  # the caller is gone
            for pid in children:
                _kill(pid)
            return 0
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
                request = json.loads(conn.makefile("r").readline())
            except (OSError, ValueError):
                conn.close()
                continue
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
                    code = _become_nbgrader(request)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            children[pid] = conn
            _send(conn, {"pid": pid})


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

class _Server:
    """The fork server of this process, started on first use (and again if it died)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.folder: str | None = None

    def socket_path(self) -> str:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            return os.path.join(self.folder, "socket")

    def _start(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="nbgrader-server-")
        path = os.path.join(self.folder, "socket")
        package_parent = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (package_parent, os.environ.get("PYTHONPATH", "")) if p))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "autograder.nbgrader_runner", path], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, close_fds=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        if not ready or self.proc.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError("the nbgrader fork server did not start")


@functools.cache
def _server() -> _Server:
    return _Server()


def forking() -> bool:
    return os.environ.get("AUTOGRADER_NBGRADER", "fork").strip().lower() != "subprocess"


def run(args: list[str], cwd: Path, env: dict[str, str],
        timeout: float | None = None) -> subprocess.CompletedProcess:
    """``python -m nbgrader ARGS`` in ``cwd`` with ``env``: its exit code, stdout and stderr (as
    text). Past ``timeout`` seconds it is killed and the code is 124, with "timed out after N s"
    at the end of stderr."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    if forking():
        try:
            path = _server().socket_path()
        except (OSError, RuntimeError):
            path = None
        if path is not None:
            return _run_forked(cmd, path, args, cwd, env, timeout)
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(cmd, 124, _text(exc.stdout), _text(exc.stderr)
                                           + f"\ntimed out after {timeout:.0f} s")


def _run_forked(cmd: list[str], path: str, args: list[str], cwd: Path, env: dict[str, str],
                timeout: float | None) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="nbgrader-run-") as tmp:
        out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
        out.touch()
        err.touch()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(path)
            conn.sendall((json.dumps({"args": list(args), "cwd": str(cwd), "env": dict(env),
                                      "out": str(out), "err": str(err)}) + "\n").encode())
            lines = _Lines(conn)
            pid = lines.next(None)["pid"]
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
    sys.exit(serve(sys.argv[1]))
