"""Resource limits of a grading kernel, set in one place.

Every kernel that runs a submission gets, whatever the submission does:

| limit | default | how it is enforced |
|---|---|---|
| ``memory`` | 6 GiB | all the kernel's processes together (a memory cgroup, where one can be made), and each process's address space (``RLIMIT_AS``) |
| ``processes`` | 128 | processes and threads (a pids cgroup, and ``RLIMIT_NPROC`` for the kernel's own user id) |
| ``cpu_seconds`` | 1800 | CPU time of each process (``RLIMIT_CPU``; the kernel is stopped past it) |
| ``file_size`` | 256 MiB | the largest file it may write (``RLIMIT_FSIZE``) |
| ``open_files`` | 1024 | open file descriptors (``RLIMIT_NOFILE``) |
| ``workdir`` | 512 MiB | its working folder: a private, size-limited copy of the submission's data (tmpfs) |
| ``tmp`` | 1 GiB | its ``/tmp`` and ``/dev/shm`` (tmpfs, in memory, counted in ``memory`` where a cgroup exists) |
| ``output`` | 5 MiB | the outputs of all cells together (text, images, errors) kept in the graded notebook |

Change them for a whole grading run with ``AUTOGRADER_LIMITS`` (comma-separated
``name=value``; sizes take K, M, G suffixes), e.g. ``AUTOGRADER_LIMITS="memory=8G,tmp=2G"`` for a
full-mode grading run, or set them in ``nbgrader_config.py``'s environment. A submission that hits
a limit keeps the points it earned before, and the grading reasons say which limit it hit.

Where no cgroup can be made (no cgroup v1 memory/pids hierarchy or cgroup v2 delegation that this
user may write), the per-process limits still hold, and the grading reasons say that total memory
was not capped.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from dataclasses import dataclass, fields, replace
from pathlib import Path

KiB, MiB, GiB = 1024, 1024**2, 1024**3


@dataclass(frozen=True)
class Limits:
    memory: int = 6 * GiB
    processes: int = 128
    cpu_seconds: int = 1800
    file_size: int = 256 * MiB
    open_files: int = 1024
    workdir: int = 512 * MiB
    tmp: int = 1 * GiB
    output: int = 5 * MiB

    def describe(self, name: str) -> str:
        """``name`` and its value as a person reads it (``memory limit (6 GiB)``)."""
        value = getattr(self, name)
        unit = {"processes": "processes and threads", "cpu_seconds": "s of CPU time",
                "open_files": "open files"}.get(name)
        shown = f"{value} {unit}" if unit else human_size(value)
        label = {"cpu_seconds": "CPU time", "file_size": "file size", "open_files": "open files",
                 "workdir": "working folder", "tmp": "/tmp", "output": "output"}.get(name, name)
        return f"{label} limit ({shown})"


def human_size(value: int) -> str:
    """``6 GiB``, ``512 MiB``, ``1.5 KiB``, ``300 bytes``."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if value >= size:
            return f"{round(value / size, 2):g} {unit}"
    return f"{value} bytes"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?[bB])?\s*$")


def parse_size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size: use a number with an optional K, M or G suffix")
    number, unit = float(match.group(1)), match.group(2).upper()
    return int(number * {"": 1, "K": KiB, "M": MiB, "G": GiB}[unit])


def current(env: dict[str, str] | None = None) -> Limits:
    """The limits in force: the defaults with ``AUTOGRADER_LIMITS`` applied."""
    env = os.environ if env is None else env
    text = (env.get("AUTOGRADER_LIMITS") or "").strip()
    limits = Limits()
    if not text:
        return limits
    names = {f.name for f in fields(Limits)}
    changes = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in names or not value:
            raise ValueError(
                f"AUTOGRADER_LIMITS: {item!r} is not name=value with a name among "
                f"{', '.join(sorted(names))}"
            )
        plain = {"processes", "cpu_seconds", "open_files"}
        changes[name] = int(value) if name in plain else parse_size(value)
        if changes[name] <= 0:
            raise ValueError(f"AUTOGRADER_LIMITS: {name} must be positive")
    return replace(limits, **changes)


# --------------------------------------------------------------------------- cgroups


def _cgroup_v1_base(controller: str) -> Path | None:
    """This process's own folder in the cgroup v1 hierarchy of ``controller``, if writable."""
    mount = Path("/sys/fs/cgroup") / controller
    if not (mount / "cgroup.procs").exists():
        return None
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                folder = mount / path.lstrip("/")
                return folder if os.access(folder, os.W_OK) else None
    except OSError:
        return None
    return None


@dataclass
class KernelCgroup:
    """Memory and pids cgroups of one kernel (cgroup v1 here; see :func:`make_cgroup`)."""

    folders: dict[str, Path]

    @property
    def procs_files(self) -> list[str]:
        return [str(folder / "cgroup.procs") for folder in self.folders.values()]

    def counters(self) -> dict[str, int]:
        """How often each limit was reached so far: ``{"memory": n, "processes": n}`` (memory:
        allocations refused plus out-of-memory kills; some kernels count only the kills)."""
        out = {}
        folder = self.folders.get("memory")
        if folder is not None:
            count = 0
            try:
                count += int((folder / "memory.failcnt").read_text().strip() or 0)
            except (OSError, ValueError):
                pass
            try:
                found = re.search(r"oom_kill (\d+)", (folder / "memory.oom_control").read_text())
                count += int(found.group(1)) if found else 0
            except OSError:
                pass
            out["memory"] = count
        folder = self.folders.get("pids")
        if folder is not None:
            try:
                out["processes"] = int((folder / "pids.events").read_text().split()[-1])
            except (OSError, ValueError, IndexError):
                pass
        return out

    def memory_hit(self) -> bool:
        """Did the kernel's processes reach the memory limit (an allocation refused or an
        out-of-memory kill)?"""
        folder = self.folders.get("memory")
        if folder is None:
            return False
        for name in ("memory.failcnt",):
            try:
                if int((folder / name).read_text().strip() or 0) > 0:
                    return True
            except (OSError, ValueError):
                pass
        try:
            text = (folder / "memory.oom_control").read_text()
            return bool(re.search(r"oom_kill (\d+)", text) and
                        int(re.search(r"oom_kill (\d+)", text).group(1)) > 0)
        except OSError:
            return False

    def pids_hit(self) -> bool:
        folder = self.folders.get("pids")
        if folder is None:
            return False
        try:
            events = (folder / "pids.events").read_text()
            return int(events.split()[-1]) > 0
        except (OSError, ValueError, IndexError):
            return False

    def remove(self) -> None:
        for folder in self.folders.values():
            try:
                for pid in (folder / "cgroup.procs").read_text().split():
                    try:
                        os.kill(int(pid), 9)
                    except (OSError, ValueError):
                        pass
                folder.rmdir()
            except OSError:
                pass


def make_cgroup(limits: Limits, name: str | None = None) -> KernelCgroup | None:
    """A memory cgroup and a pids cgroup for one kernel, with the limits written, or None where
    this machine lets us make none (the per-process limits still apply)."""
    name = name or f"agk-{secrets.token_hex(6)}"
    folders: dict[str, Path] = {}
    writes = {"memory": {"memory.limit_in_bytes": limits.memory,
                         "memory.memsw.limit_in_bytes": limits.memory},
              "pids": {"pids.max": limits.processes}}
    for controller, settings in writes.items():
        base = _cgroup_v1_base(controller)
        if base is None:
            continue
        folder = base / name
        try:
            folder.mkdir()
        except OSError:
            continue
        ok = True
        for key, value in settings.items():
            try:
                (folder / key).write_text(str(value))
            except OSError:
                if key != "memory.memsw.limit_in_bytes":  # absent without swap accounting
                    ok = False
        if ok:
            folders[controller] = folder
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return KernelCgroup(folders) if folders else None


#: The launcher the kernel command starts with (run by the grader's Python before bwrap): it
#: joins the kernel's cgroups, sets the per-process limits, and becomes the sandbox (exec), so
#: everything the kernel starts inherits both. Arguments: a JSON object, then the command.
LAUNCHER = r"""
import json, os, resource, sys
spec = json.loads(sys.argv[1])
for path in spec["procs"]:
    with open(path, "w") as handle:
        handle.write(str(os.getpid()))
nproc = spec["processes"]
if os.geteuid() != 0:  # a normal user's limit counts all of that user's processes
    mine = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == os.getuid():
                    mine += 1
            except OSError:
                pass
    nproc += mine
limits = {"RLIMIT_AS": spec["memory"], "RLIMIT_NPROC": nproc, "RLIMIT_CPU": spec["cpu_seconds"],
          "RLIMIT_FSIZE": spec["file_size"], "RLIMIT_NOFILE": spec["open_files"], "RLIMIT_CORE": 0}
for name, value in limits.items():
    kind = getattr(resource, name)
    soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value if name != "RLIMIT_CPU" else value + 5))
os.execvp(sys.argv[2], sys.argv[2:])
"""


def launcher_command(python: str, limits: Limits, cgroup: KernelCgroup | None,
                     command: list[str]) -> list[str]:
    import json

    # With a memory cgroup, the cgroup holds the real limit (every process together) and the
    # address-space limit is only a backstop against one absurd allocation (a process reserves
    # far more address space than it uses); without one, RLIMIT_AS is the limit.
    address_space = limits.memory * 2 if cgroup is not None and "memory" in cgroup.folders \
        else limits.memory
    spec = {"procs": cgroup.procs_files if cgroup else [], "memory": address_space,
            "processes": limits.processes, "cpu_seconds": limits.cpu_seconds,
            "file_size": limits.file_size, "open_files": limits.open_files}
    return [python, "-c", LAUNCHER, json.dumps(spec), *command]


#: Run inside the sandbox as the kernel's user: copy the submission's staged data files into the
#: size-limited working folder, then become the kernel.
STAGE_COPY = r"""
import errno, os, shutil, sys
stage, workdir = sys.argv[1], sys.argv[2]
try:
    for root, dirs, files in os.walk(stage):
        target = os.path.join(workdir, os.path.relpath(root, stage))
        os.makedirs(target, exist_ok=True)
        for name in files:
            shutil.copyfile(os.path.join(root, name), os.path.join(target, name))
except OSError as error:
    why = ("do not fit its working folder" if error.errno in (errno.ENOSPC, errno.EFBIG)
           else "could not be copied into its working folder")
    print(f"grading sandbox: the submission's files {why}: {error}", file=sys.stderr)
os.execvp(sys.argv[3], sys.argv[3:])
"""


def unique_uid() -> int:
    """An unprivileged user id of its own for one kernel (when the grader is root), so that
    ``RLIMIT_NPROC`` counts that kernel's processes only."""
    return 200_000 + secrets.randbelow(800_000)
