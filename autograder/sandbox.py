"""The grading sandbox: every kernel that runs student code while autograding starts inside
bubblewrap (``bwrap``, Debian package ``bubblewrap``), under the limits of
:mod:`autograder.limits`.

What the kernel gets:

- **no network**: its own network namespace (not even the host's loopback); the grader talks to
  it over ZeroMQ ``ipc`` sockets (Unix sockets in a private folder), which need no network;
- **a private, size-limited working folder**: a tmpfs of ``limits.workdir`` bytes holding a copy
  of the submission folder's data files (no notebooks: the notebook being graded holds the hidden
  tests); ``/tmp`` and ``/dev/shm`` are tmpfs of ``limits.tmp`` bytes; all thrown away afterwards;
- **read-only system and Python code**: ``/usr``, ``/etc``, the Python environment and the
  ``helpers`` package; **not** the instructor-only ``autograder`` package (the checks and their
  reference answers), nothing else of the course: no ``source/``, no ``submitted/``, no
  gradebook, no other student's folder;
- **a user id of its own** (with every capability dropped) when the grader is root, so that the
  process limit counts this kernel alone; a normal user's grader runs bwrap in a user namespace;
- **limits** on memory, processes and threads, CPU time, file size and open files (a cgroup
  where one can be made, and per-process rlimits always), see :mod:`autograder.limits`;
- **only named environment variables**: ``NBGRADER_EXECUTION``, ``COURSE_FAST``, locale and
  thread settings, offline flags; never the grader's secrets (``AZURE_OPENAI_API_KEY`` and the
  like) nor other ``COURSE_*`` settings.

The kernel's answers to the checker (:mod:`autograder.checker`) travel over the same Jupyter
channels as its outputs; the checker's own emulator listens on a Unix socket in a root-owned
folder the kernel can connect to but not change.

The kernel gets ``JPY_PARENT_PID=1``: in its pid namespace its parent is bwrap's pid 1,
and ipykernel would take that for "parent exited"; ``--die-with-parent`` ends it instead.
Interrupts (the per-cell timeout) go as a Jupyter ``interrupt_request`` message, since a signal
to the bwrap process would not reach the kernel inside it.

Where bubblewrap is missing or cannot make namespaces, the kernel runs without a sandbox and a
loud warning says so (stderr and nbgrader's log); ``AUTOGRADER_SANDBOX=require`` turns that into
an error, ``AUTOGRADER_SANDBOX=off`` skips the sandbox on purpose (it still warns).

nbgrader_config.py installs :class:`autograder.execute.SandboxedExecute` in place of nbgrader's
``Execute``, so ``nbgrader autograde``, ``python -m autograder grade`` and the formgrader's
"autograde" button all grade in the sandbox, with the checker deciding every test cell.
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

from autograder import limits as limits_module

#: Environment variables passed into the kernel, by name (nothing else reaches it).
PASSED_ENV = (
    "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM",
    "NBGRADER_EXECUTION", "NBGRADER_VALIDATING",
    "JPY_SESSION_NAME",
    "TIKTOKEN_CACHE_DIR", "PYTHONHASHSEED",
    "COURSE_FAST",
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
    "TOKENIZERS_PARALLELISM": "false",
}
#: Thread pools sized for a grading kernel (within the process limit), unless the grader sets them.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")
#: The threads each grading kernel gets, set by :func:`autograder.grading.grade` from ``--jobs``
#: (see :func:`kernel_threads`); a variable of THREAD_ENV set in the grader's environment wins.
KERNEL_THREADS_ENV = "AUTOGRADER_KERNEL_THREADS"
#: Where the sandbox sees the submission's staged data files before they are copied into the
#: size-limited working folder.
STAGE = "/run/course-stage"

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
           "--size", "1048576", "--tmpfs", "/tmp", "true"]
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


def _package_dirs(names: tuple[str, ...] = ("helpers",)) -> list[Path]:
    """The folders of the course's packages the kernel may import (``helpers`` only: the
    ``autograder`` package, with the checks and their reference answers, stays outside)."""
    dirs = []
    for name in names:
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


#: The asset folders a grading loop (:func:`autograder.grading.grade`) built once, handed to each
#: submission's ``nbgrader autograde`` process so that it does not import and check them again
#: (about 2 s a submission). Set by the grader, never by a submission.
ASSETS_ENV = "AUTOGRADER_ASSET_DIRS"


@functools.cache
def grading_assets() -> tuple[Path, ...]:
    """The course's offline assets, built once in the grader's cache (tokenizers, encodings, the
    tiny GPT-2, the IMDB copy, SmolLM2), to be bound read-only into every grading sandbox: no
    kernel spends its time (and its /tmp) rebuilding them. Empty when they cannot be built.
    :data:`ASSETS_ENV` names folders already built (each must exist, or they are built here)."""
    given = [Path(p) for p in os.environ.get(ASSETS_ENV, "").split(os.pathsep) if p]
    if given and all(p.is_dir() for p in given):
        return tuple(given)
    try:
        from helpers import assets

        return tuple(p.resolve() for p in assets.for_grading())
    except Exception as exc:  # noqa: BLE001 - kernels then build what they need themselves
        print(f"grading sandbox: the shared asset cache is not available ({exc})",
              file=sys.stderr)
        return ()


def bwrap_command(
    kernel_cmd: list[str],
    *,
    workdir: Path,
    private_dir: Path,
    ipc_dir: Path,
    checker_dir: Path | None = None,
    limits: limits_module.Limits | None = None,
    uid: int | None = None,
    bwrap: str = "bwrap",
) -> list[str]:
    """The bwrap command line that runs ``kernel_cmd`` in ``workdir`` (a size-limited tmpfs
    filled from ``private_dir``), with ``ipc_dir`` (sockets, connection file) writable and
    ``checker_dir`` (the checker's socket) reachable."""
    limits = limits or limits_module.current()
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
             "--perms", "1777", "--size", str(limits.tmp), "--tmpfs", "/tmp",
             "--perms", "1777", "--size", str(limits.tmp), "--tmpfs", "/dev/shm"]
    made: set[Path] = {Path("/tmp"), Path("/dev"), Path("/dev/shm")}
    # The instructor-only package must not be readable, even when it sits inside a bound
    # folder (an editable install puts it beside helpers; a plain one in site-packages).
    hidden = _package_dirs(("autograder",))
    ro = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(),
          Path(sys.executable).resolve().parent, *_package_dirs(), *_extra_ro_paths(),
          *grading_assets()]
    seen: set[Path] = set()
    for path in ro:
        if path in seen or any(parent in seen for parent in path.parents) or not path.exists():
            continue
        seen.add(path)
        args += _parents_755(path, made) + ["--ro-bind", str(path), str(path)]
    for path in hidden:  # an empty folder over it, wherever it is bound
        if any(parent in seen for parent in path.parents) or path in seen:
            args += ["--perms", "0000", "--tmpfs", str(path)]
    # The staged data (read-only), the working folder (a tmpfs the kernel's user fills from the
    # stage), the sockets folder, the checker's folder.
    args += _parents_755(Path(STAGE), made) + ["--ro-bind", str(private_dir), STAGE]
    args += _parents_755(workdir, made) + ["--perms", "0777", "--size", str(limits.workdir),
                                            "--tmpfs", str(workdir)]
    args += _parents_755(ipc_dir, made) + ["--bind", str(ipc_dir), str(ipc_dir)]
    if checker_dir is not None:
        args += _parents_755(checker_dir, made) + ["--bind", str(checker_dir), str(checker_dir)]
    # jupyter_client always sets JPY_PARENT_PID; ipykernel never polls a parent of pid 1.
    args += ["--chdir", str(workdir), "--setenv", "JPY_PARENT_PID", "1"]
    stage = [sys.executable, "-c", limits_module.STAGE_COPY, STAGE, str(workdir)]
    if os.geteuid() == 0:
        uid = limits_module.unique_uid() if uid is None else uid
        args += ["--", "setpriv", f"--reuid={uid}", f"--regid={uid}",
                 "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--"]
    else:
        args += ["--"]
    return args + stage + list(kernel_cmd)


def kernel_threads(jobs: int = 1, cpus: int | None = None) -> int:
    """Math-library threads for each of ``jobs`` kernels graded at once: their share of the
    ``cpus`` this process may use, 1 to 4. More threads than cores is slower, not faster: torch's
    OpenMP threads wait for each other while another process holds a core (measured on 2 cores
    with two other busy test workers: the course's recipe training took 595 s with 2 threads,
    290-346 s with 1)."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, (cpus or 1) // max(1, jobs)))


def kernel_env(env: dict[str, str] | None, *, pythonpath: list[Path], sandboxed: bool) -> dict[str, str]:
    """The environment a grading kernel gets: the named variables of ``env`` only."""
    env = dict(os.environ if env is None else env)
    out = {k: v for k, v in env.items() if k in PASSED_ENV}
    out.setdefault("COURSE_FAST", "1")
    wanted = env.get(KERNEL_THREADS_ENV, "").strip()
    threads = wanted if wanted.isdigit() and int(wanted) >= 1 else str(kernel_threads())
    for key in THREAD_ENV:
        out[key] = env.get(key) or threads
    bin_dirs = [str(Path(sys.prefix) / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]
    out["PATH"] = os.pathsep.join(dict.fromkeys(bin_dirs))
    out["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(str(p) for p in pythonpath))
    assets = grading_assets()
    if assets:
        out["COURSE_ASSETS_RO"] = str(assets[0].parent)
    if sandboxed:
        out.update(FORCED_ENV)
        out["HOME"] = "/tmp"
    else:
        out["HOME"] = env.get("HOME", "/tmp")
        for key in FORCED_ENV:
            if key in env:
                out[key] = env[key]
        out.setdefault("MPLBACKEND", "Agg")
    return out


def checker_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the checker process: the grader's, in the kernel's mode and offline."""
    env = dict(os.environ if env is None else env)
    env["COURSE_FAST"] = env.get("COURSE_FAST") or "1"
    env.update({k: v for k, v in FORCED_ENV.items() if k != "PYTHONDONTWRITEBYTECODE"})
    return env


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
    """A kernel manager that starts the kernel inside bubblewrap, under the course's limits
    (see the module's doc)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sandbox_root: Path | None = None
        self.limits = limits_module.current()
        self.cgroup: limits_module.KernelCgroup | None = None
        self.uid = limits_module.unique_uid() if os.geteuid() == 0 else os.getuid()
        self.sandboxed, self.sandbox_reason = availability()
        if not self.sandboxed:
            if sandbox_setting() == "require":
                raise SandboxUnavailable(
                    f"AUTOGRADER_SANDBOX=require but the sandbox cannot run: {self.sandbox_reason}"
                )
            message = WARNING.format(reason=self.sandbox_reason)
            self.log.warning(message)
            print(message, file=sys.stderr, flush=True)
            self.checker_dir = Path(tempfile.mkdtemp(prefix="agc-"))
        else:
            # Short path: Unix socket names are limited to 107 bytes.
            self._sandbox_root = Path(tempfile.mkdtemp(prefix="agk-", dir="/tmp"))
            self._sandbox_root.chmod(0o755)
            for name in ("ipc", "work", "checker"):
                (self._sandbox_root / name).mkdir(mode=0o755)
            self.checker_dir = self._sandbox_root / "checker"
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
        self.cgroup = limits_module.make_cgroup(self.limits)
        if not self.sandboxed:
            return limits_module.launcher_command(sys.executable, self.limits, self.cgroup,
                                                  kernel_cmd), kw
        assert self._sandbox_root is not None
        workdir = Path(kw.get("cwd") or os.getcwd()).resolve()
        private = self._sandbox_root / "work"
        _copy_private(workdir, private)
        if os.geteuid() == 0:
            _chown_tree(self._sandbox_root / "ipc", self.uid, self.uid)
        kernel_cmd = bwrap_command(
            kernel_cmd, workdir=workdir, private_dir=private, ipc_dir=self._sandbox_root / "ipc",
            checker_dir=self.checker_dir, limits=self.limits, uid=self.uid,
            bwrap=shutil.which("bwrap") or "bwrap",
        )
        return limits_module.launcher_command(sys.executable, self.limits, self.cgroup,
                                              kernel_cmd), kw

    def exit_status(self) -> int | None:
        """The kernel process's exit status once it has ended (bwrap reports 128 + signal)."""
        process = getattr(self.provisioner, "process", None)
        return None if process is None else process.poll()

    def limit_hit(self) -> str | None:
        """Which limit ended the kernel, when one did (``"memory"``, ``"cpu_seconds"``,
        ``"processes"``), from its exit status and its cgroups."""
        status = self.exit_status()
        if status in (128 + 24, -24):  # SIGXCPU
            return "cpu_seconds"
        if self.cgroup is not None and self.cgroup.memory_hit():
            return "memory"
        if self.cgroup is not None and self.cgroup.pids_hit():
            return "processes"
        return None

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
        if restart:
            return
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        for folder in (self._sandbox_root, self.checker_dir):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        self._sandbox_root = None

    # AsyncKernelManager binds its public names to the base class's coroutines: rebind ours.
    pre_start_kernel = _async_pre_start_kernel
    interrupt_kernel = _async_interrupt_kernel
    cleanup_resources = _async_cleanup_resources
