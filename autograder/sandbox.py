"""The grading sandbox: every kernel that runs student code while autograding starts inside
bubblewrap (``bwrap``, Debian package ``bubblewrap``).

What the kernel gets:

- **no network**: its own network namespace (not even the host's loopback); the grader talks to
  it over ZeroMQ ``ipc`` sockets (Unix sockets in a private folder), which need no network;
- **a private copy of its working folder**: the data files of the submission's folder (no
  notebooks: the notebook being graded holds the hidden tests), writable, thrown away afterwards;
- **read-only course code**: the system (``/usr``, ``/etc``), the Python environment, and the
  ``helpers`` and ``autograder`` packages, each bound alone; nothing else of the course: no
  ``source/``, no ``submitted/``, no gradebook, no other student's folder;
- **an unprivileged uid** (``nobody``, with every capability dropped) when the grader is root;
  a normal user's grader runs bwrap in a user namespace as that user;
- a filtered environment: ``NBGRADER_EXECUTION``, ``COURSE_FAST=1`` (fast mode), offline flags,
  ``COURSE_*``; never the grader's secrets (``AZURE_OPENAI_API_KEY`` and the like).

The kernel gets ``JPY_PARENT_PID=1``: in its pid namespace its parent is bwrap's pid 1,
and ipykernel would take that for "parent exited"; ``--die-with-parent`` ends it instead.
Interrupts (the per-cell timeout) go as a Jupyter ``interrupt_request`` message, since a signal
to the bwrap process would not reach the kernel inside it.

Where bubblewrap is missing or cannot make namespaces, the kernel runs without a sandbox and a
loud warning says so (stderr and nbgrader's log); ``AUTOGRADER_SANDBOX=require`` turns that into
an error, ``AUTOGRADER_SANDBOX=off`` skips the sandbox on purpose (it still warns).

nbgrader_config.py installs :class:`SandboxedExecute` in place of nbgrader's ``Execute`` through
:func:`autograde_preprocessors`, so ``nbgrader autograde``, ``python -m autograder grade`` and
the formgrader's "autograde" button all grade in the sandbox.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

#: Unprivileged identity for the kernel when the grader runs as root.
NOBODY_UID = 65534
NOBODY_GID = 65534

#: Environment variables passed into the kernel (besides ``COURSE_*``).
PASSED_ENV = (
    "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM",
    "NBGRADER_EXECUTION", "NBGRADER_VALIDATING",
    "JPY_SESSION_NAME",
    "TIKTOKEN_CACHE_DIR", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONHASHSEED",
)
#: Set inside the sandbox whatever the grader has.
FORCED_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "COURSE_OFFLINE": "1",
    "COURSE_NETWORK": "blocked",
    "MPLBACKEND": "Agg",
    "PYTHONDONTWRITEBYTECODE": "1",
}

WARNING = (
    "WARNING: GRADING WITHOUT A SANDBOX: {reason}. Student code runs with the grader's rights: "
    "it can read other submissions and the source notebooks, change the gradebook and reach "
    "the network. Install bubblewrap (apt-get install -y bubblewrap) to grade safely."
)


class SandboxUnavailable(RuntimeError):
    """The sandbox was required (``AUTOGRADER_SANDBOX=require``) but cannot run here."""


def sandbox_setting() -> str:
    """``auto`` (default), ``require`` or ``off``, from ``AUTOGRADER_SANDBOX``."""
    value = os.environ.get("AUTOGRADER_SANDBOX", "auto").strip().lower() or "auto"
    if value not in {"auto", "require", "off"}:
        raise ValueError(
            f"AUTOGRADER_SANDBOX={value!r}: use 'auto' (default), 'require' or 'off'"
        )
    return value


def _namespace_flags() -> list[str]:
    flags = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
             "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if os.geteuid() != 0:
        flags.insert(0, "--unshare-user")
    return flags


@functools.cache
def _probe(bwrap: str) -> str | None:
    """None when ``bwrap`` can build our sandbox here, else the reason it cannot."""
    cmd = [bwrap, *_namespace_flags(), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
           "true"]
    try:
        result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{bwrap} does not run ({exc})"
    if result.returncode != 0:
        return f"{bwrap} cannot create namespaces here ({result.stderr.strip() or result.returncode})"
    return None


def availability() -> tuple[bool, str]:
    """``(True, "bubblewrap <path>")`` when kernels will be sandboxed, else ``(False, reason)``."""
    setting = sandbox_setting()
    if setting == "off":
        return False, "AUTOGRADER_SANDBOX=off"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bubblewrap (bwrap) is not installed"
    problem = _probe(bwrap)
    if problem:
        return False, problem
    return True, f"bubblewrap {bwrap}"


def _package_dirs() -> list[Path]:
    """The folders of the course's own packages, bound read-only into the sandbox."""
    dirs = []
    for name in ("helpers", "autograder"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs.extend(Path(p).resolve() for p in spec.submodule_search_locations)
    return dirs


def _extra_ro_paths() -> list[Path]:
    """Read-only extras: ``AUTOGRADER_SANDBOX_RO`` (os.pathsep-separated folders) and the
    grader's ``TIKTOKEN_CACHE_DIR``/``COURSE_CACHE_DIR`` when set. Without them, ``helpers.assets``
    inside the sandbox builds what it needs under the kernel's private ``/tmp``."""
    paths = [Path(p) for p in os.environ.get("AUTOGRADER_SANDBOX_RO", "").split(os.pathsep) if p]
    for var in ("TIKTOKEN_CACHE_DIR", "COURSE_CACHE_DIR"):
        if os.environ.get(var):
            paths.append(Path(os.environ[var]))
    return [p.resolve() for p in paths if p.exists()]


def _parents_755(path: Path, made: set[Path]) -> list[str]:
    """bwrap makes missing mount points 0700 when run as root: create them 0755 first, so the
    unprivileged kernel can walk to its bound folders."""
    args = []
    for parent in reversed(path.parents):
        if parent == Path("/") or parent in made:
            continue
        made.add(parent)
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def bwrap_command(
    kernel_cmd: list[str],
    *,
    workdir: Path,
    private_dir: Path,
    ipc_dir: Path,
    bwrap: str = "bwrap",
) -> list[str]:
    """The bwrap command line that runs ``kernel_cmd`` with ``private_dir`` mounted at
    ``workdir`` (the kernel's working folder) and ``ipc_dir`` (sockets, connection file)."""
    args = [bwrap, *_namespace_flags()]
    # The base system, read-only. Merged-/usr systems have /bin, /lib... as symlinks.
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            args += ["--ro-bind", top, top]
    args += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--tmpfs", "/tmp"]
    made: set[Path] = {Path("/tmp")}
    ro = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(),
          Path(sys.executable).resolve().parent, *_package_dirs(), *_extra_ro_paths()]
    seen: set[Path] = set()
    for path in ro:
        if path in seen or any(parent in seen for parent in path.parents) or not path.exists():
            continue
        seen.add(path)
        args += _parents_755(path, made) + ["--ro-bind", str(path), str(path)]
    # The sockets folder and the private working copy, writable (bound last: a bind inside a
    # read-only one still works).
    for src, dest in ((ipc_dir, ipc_dir), (private_dir, workdir)):
        args += _parents_755(dest, made) + ["--bind", str(src), str(dest)]
    # jupyter_client always sets JPY_PARENT_PID; ipykernel never polls a parent of pid 1.
    args += ["--chdir", str(workdir), "--setenv", "JPY_PARENT_PID", "1"]
    if os.geteuid() == 0:
        args += ["--", "setpriv", f"--reuid={NOBODY_UID}", f"--regid={NOBODY_GID}",
                 "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--"]
    else:
        args += ["--"]
    return args + list(kernel_cmd)


def kernel_env(env: dict[str, str] | None, *, pythonpath: list[Path], sandboxed: bool) -> dict[str, str]:
    """The environment a grading kernel gets: a filtered copy of ``env``."""
    env = dict(os.environ if env is None else env)
    out = {k: v for k, v in env.items() if k in PASSED_ENV or k.startswith("COURSE_")}
    out.setdefault("COURSE_FAST", "1")
    bin_dirs = [str(Path(sys.prefix) / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]
    out["PATH"] = os.pathsep.join(dict.fromkeys(bin_dirs))
    out["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(str(p) for p in pythonpath))
    if sandboxed:
        out.update(FORCED_ENV)
        out["HOME"] = "/tmp"
        # Paths of the grader's machine mean nothing inside the sandbox.
        for key in ("COURSE_ROOT", "COURSE_DATA_DIR", "COURSE_OUTPUT_DIR"):
            out.pop(key, None)
    else:
        out["HOME"] = env.get("HOME", "/tmp")
        for key in FORCED_ENV:
            if key in env:
                out[key] = env[key]
        out.setdefault("MPLBACKEND", "Agg")
    return out


def _copy_private(src: Path, dest: Path) -> None:
    """Copy the data files of ``src`` (no notebooks, no symlinks, no special files) to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    if not src.is_dir():
        return
    for root, dirs, files in os.walk(src, followlinks=False):
        rel = Path(root).relative_to(src)
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()
                   and d not in {".ipynb_checkpoints", "__pycache__"}]
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            path = Path(root) / name
            if name.endswith(".ipynb") or path.is_symlink() or not path.is_file():
                continue
            shutil.copy2(path, dest / rel / name)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel inside bubblewrap (see the module's doc)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sandbox_root: Path | None = None
        self.sandboxed, self.sandbox_reason = availability()
        if not self.sandboxed:
            if sandbox_setting() == "require":
                raise SandboxUnavailable(
                    f"AUTOGRADER_SANDBOX=require but the sandbox cannot run: {self.sandbox_reason}"
                )
            message = WARNING.format(reason=self.sandbox_reason)
            self.log.warning(message)
            print(message, file=sys.stderr, flush=True)
        else:
            # Short path: Unix socket names are limited to 107 bytes.
            self._sandbox_root = Path(tempfile.mkdtemp(prefix="agk-", dir="/tmp"))
            (self._sandbox_root / "ipc").mkdir()
            (self._sandbox_root / "work").mkdir()
            self.transport = "ipc"
            self.ip = str(self._sandbox_root / "ipc" / "k")
            self.connection_file = str(self._sandbox_root / "ipc" / "kernel.json")

    async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        kw["env"] = kernel_env(
            kw.get("env"),
            pythonpath=[p.parent for p in _package_dirs()],
            sandboxed=self.sandboxed,
        )
        if not self.sandboxed:
            return kernel_cmd, kw
        assert self._sandbox_root is not None
        workdir = Path(kw.get("cwd") or os.getcwd()).resolve()
        private = self._sandbox_root / "work"
        _copy_private(workdir, private)
        if os.geteuid() == 0:
            _chown_tree(self._sandbox_root, NOBODY_UID, NOBODY_GID)
        kernel_cmd = bwrap_command(
            kernel_cmd, workdir=workdir, private_dir=private, ipc_dir=self._sandbox_root / "ipc",
            bwrap=shutil.which("bwrap") or "bwrap",
        )
        return kernel_cmd, kw

    async def _async_interrupt_kernel(self) -> None:
        if not self.sandboxed:
            return await super()._async_interrupt_kernel()
        # A SIGINT to bwrap would not reach the kernel in its own pid namespace: ask the kernel.
        if self.has_kernel:
            msg = self.session.msg("interrupt_request", content={})
            self._connect_control_socket()
            self.session.send(self._control_socket, msg)
        else:
            raise RuntimeError("Cannot interrupt kernel. No kernel is running!")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart and self._sandbox_root is not None:
            shutil.rmtree(self._sandbox_root, ignore_errors=True)
            self._sandbox_root = None

    # AsyncKernelManager binds its public names to the base class's coroutines: rebind ours.
    pre_start_kernel = _async_pre_start_kernel
    interrupt_kernel = _async_interrupt_kernel
    cleanup_resources = _async_cleanup_resources


DEAD_KERNEL = (
    "the kernel died while running this cell (os._exit, a crash or out of memory); "
    "the cells after it were not run"
)


def _error_output(ename: str, evalue: str) -> Any:
    from nbformat.v4 import new_output

    return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _execute_class() -> type:
    from nbclient.exceptions import DeadKernelError
    from nbgrader.preprocessors import Execute

    class SandboxedExecute(Execute):
        """nbgrader's ``Execute`` with its kernels in the sandbox. A kernel that dies no longer
        fails the whole notebook: the cell that killed it and every later code cell get an error
        output, so the cells that passed before keep their points and the rest score zero."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
            super().__init__(*args, **kwargs)
            self._kernel_dead = False

        def preprocess(self, nb: Any, resources: Any = None, km: Any = None) -> Any:
            self._kernel_dead = False
            return super().preprocess(nb, resources, km=km)

        def preprocess_cell(self, cell: Any, resources: Any, index: int) -> Any:
            if cell.cell_type != "code":
                return super().preprocess_cell(cell, resources, index)
            if self._kernel_dead:
                cell.outputs = [_error_output("DeadKernelError",
                                              "not run: the kernel died in an earlier cell")]
                return cell, resources
            try:
                return super().preprocess_cell(cell, resources, index)
            except DeadKernelError:
                self._kernel_dead = True
                self.log.error("Kernel died in cell %s: later cells are not run", index)
                cell.outputs.append(_error_output("DeadKernelError", DEAD_KERNEL))
                return cell, resources

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
