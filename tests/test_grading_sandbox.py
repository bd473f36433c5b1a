"""Unit tests of the sandbox's pieces: what the kernel sees and gets (no kernel started)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import sandbox

REPO = Path(__file__).resolve().parent.parent


def test_kernel_env_passes_only_named_variables() -> None:
    env = sandbox.kernel_env(
        {"AZURE_OPENAI_API_KEY": "secret", "OPENAI_API_KEY": "s2", "HOME": "/root",
         "NBGRADER_EXECUTION": "autograde", "COURSE_UC_CATALOG": "main", "COURSE_ROOT": "/x",
         "COURSE_SECRET_TOKEN": "t", "AWS_SECRET_ACCESS_KEY": "a", "LANG": "C.UTF-8"},
        pythonpath=[REPO], sandboxed=True)
    assert not {"AZURE_OPENAI_API_KEY", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY"} & set(env)
    assert not [k for k in env if k.startswith("COURSE_") and k not in
                {"COURSE_FAST", "COURSE_OFFLINE", "COURSE_NETWORK", "COURSE_ASSETS_RO"}]
    assert env["COURSE_FAST"] == "1" and env["NBGRADER_EXECUTION"] == "autograde"
    assert env["HF_HUB_OFFLINE"] == "1" and env["HOME"] == "/tmp" and env["LANG"] == "C.UTF-8"
    assert env["PYTHONPATH"] == str(REPO)
    assert env["OMP_NUM_THREADS"].isdigit()


def test_course_fast_0_is_kept_for_a_full_grading_run() -> None:
    env = sandbox.kernel_env({"COURSE_FAST": "0"}, pythonpath=[], sandboxed=True)
    assert env["COURSE_FAST"] == "0"


def test_bwrap_command_binds_only_code_and_the_private_copy(tmp_path: Path) -> None:
    work, private, ipc = tmp_path / "autograded/s/a", tmp_path / "p", tmp_path / "ipc"
    checker_dir = tmp_path / "checker"
    cmd = sandbox.bwrap_command(["python", "-m", "ipykernel_launcher"], workdir=work,
                                private_dir=private, ipc_dir=ipc, checker_dir=checker_dir)
    assert "--unshare-net" in cmd and "--die-with-parent" in cmd
    binds = [(a, cmd[i + 1], cmd[i + 2]) for i, a in enumerate(cmd)
             if a in {"--bind", "--ro-bind"}]
    writable = [(src, dest) for kind, src, dest in binds if kind == "--bind"]
    assert writable == [(str(ipc), str(ipc)), (str(checker_dir), str(checker_dir))]
    bound = {dest for _, _, dest in binds}
    assert str(REPO / "helpers") in bound and str(REPO / "autograder") not in bound
    assert not {str(REPO), str(REPO / "source"), str(REPO / "submitted")} & bound
    assert (str(private), sandbox.STAGE) in [(src, dest) for kind, src, dest in binds]
    # the working folder, /tmp and /dev/shm are size-limited tmpfs
    sizes = {cmd[i + 3]: int(cmd[i + 1]) for i, a in enumerate(cmd)
             if a == "--size" and cmd[i + 2] == "--tmpfs"}
    assert set(sizes) == {"/tmp", "/dev/shm", str(work)}
    assert cmd[-3:] == ["python", "-m", "ipykernel_launcher"]


def _run_in_sandbox(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    """``python -c code`` in the grading sandbox, as a kernel is started (launcher, bwrap)."""
    from autograder import limits

    (tmp_path / "priv" / "data").mkdir(parents=True)
    (tmp_path / "priv" / "data" / "train.jsonl").write_text("{}")
    for name in ("ipc", "checker"):
        (tmp_path / name).mkdir()
    work = tmp_path / "work-here"
    cmd = sandbox.bwrap_command([sys.executable, "-c", code], workdir=work,
                                private_dir=tmp_path / "priv", ipc_dir=tmp_path / "ipc",
                                checker_dir=tmp_path / "checker")
    current = limits.current()
    cgroup = limits.make_cgroup(current)
    try:
        full = limits.launcher_command(sys.executable, current, cgroup, cmd)
        environment = sandbox.kernel_env(dict(os.environ, **env),
                                         pythonpath=[REPO], sandboxed=True)
        return subprocess.run(full, check=False, capture_output=True, text=True, timeout=120,
                              env=environment)
    finally:
        if cgroup is not None:
            cgroup.remove()


@pytest.mark.requires("sandbox")
def test_the_kernel_cannot_import_or_read_the_checks(tmp_path: Path) -> None:
    code = (
        "import os, pathlib, importlib.util\n"
        "print('import', importlib.util.find_spec('autograder'))\n"
        f"print('files', os.path.exists({str(REPO / 'autograder' / 'checker.py')!r}))\n"
        f"print('source', os.path.exists({str(REPO / 'source')!r}))\n"
        "print('data', sorted(str(p) for p in pathlib.Path.cwd().rglob('*')))\n"
        "print('helpers', importlib.util.find_spec('helpers') is not None)\n"
        "print('uid', os.getuid())\n"
    )
    done = _run_in_sandbox(tmp_path, code)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "import None" in out and "files False" in out and "source False" in out
    assert "helpers True" in out and "train.jsonl" in out
    if os.geteuid() == 0:
        assert "uid 0" not in out


@pytest.mark.requires("sandbox")
def test_limits_hold_inside_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOGRADER_LIMITS", "workdir=4M,tmp=4M,file_size=1M,open_files=64")
    code = (
        "import os, resource\n"
        "def attempt(path, size):\n"
        "    try:\n"
        "        with open(path, 'wb') as f:\n"
        "            f.write(b'x' * size)\n"
        "        return 'ok'\n"
        "    except OSError as e:\n"
        "        return e.strerror\n"
        "print('big file', attempt('big.bin', 2 << 20))\n"
        "print('workdir', [attempt(f'w{i}.bin', 900 << 10) for i in range(6)][-1])\n"
        "print('tmp', [attempt(f'/tmp/t{i}.bin', 900 << 10) for i in range(6)][-1])\n"
        "print('nofile', resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    done = _run_in_sandbox(tmp_path, code)
    assert done.returncode == 0, done.stderr
    assert "big file File too large" in done.stdout
    assert "workdir No space left on device" in done.stdout
    assert "tmp No space left on device" in done.stdout
    assert "nofile 64" in done.stdout


def test_limits_are_set_in_one_place_and_parsed_strictly() -> None:
    from autograder import limits

    assert limits.current({}) == limits.Limits()
    custom = limits.current({"AUTOGRADER_LIMITS": "memory=2G, processes=10,output=1.5M"})
    assert (custom.memory, custom.processes, custom.output) == (2 << 30, 10, int(1.5 * (1 << 20)))
    for bad in ("memory", "nonsense=1", "memory=lots", "processes=0"):
        with pytest.raises(ValueError, match="AUTOGRADER_LIMITS|not a size"):
            limits.current({"AUTOGRADER_LIMITS": bad})
    assert limits.Limits().describe("cpu_seconds") == "CPU time limit (1800 s of CPU time)"


def test_private_copy_skips_notebooks_and_links(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "data" / "train.jsonl").write_text("{}")
    (src / "graded.ipynb").write_text("{}")  # holds the hidden tests while grading
    (src / "gradebook.db").symlink_to("/etc/passwd")
    sandbox._copy_private(src, tmp_path / "dest")
    files = sorted(str(p.relative_to(tmp_path / "dest")) for p in (tmp_path / "dest").rglob("*"))
    assert files == ["data", "data/train.jsonl"]


def test_bad_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOGRADER_SANDBOX", "maybe")
    with pytest.raises(ValueError, match="AUTOGRADER_SANDBOX='maybe'"):
        sandbox.sandbox_setting()


def test_missing_bwrap_falls_back_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    ok, reason = sandbox.availability()
    assert not ok and "bubblewrap (bwrap) is not installed" in reason


def test_require_without_bwrap_refuses_to_grade(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("AUTOGRADER_SANDBOX", "require")
    with pytest.raises(sandbox.SandboxUnavailable, match="not installed"):
        sandbox.SandboxKernelManager(kernel_name="python3")


def test_nbgrader_config_installs_the_sandbox(tmp_path: Path) -> None:
    code = ("from traitlets.config.loader import PyFileConfigLoader;"
            f"c = PyFileConfigLoader('nbgrader_config.py', path={str(REPO)!r}).load_config();"
            "print([p.__name__ for p in c.Autograde.autograde_preprocessors]);"
            "print(c.CourseDirectory.db_url); print(c.Exchange.root);"
            "print(c.CourseDirectory.course_id)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True, env={**os.environ, "NBG_ROOT": str(tmp_path / "course")}).stdout
    assert "SandboxedExecute" in out
    assert f"sqlite:///{tmp_path}/course/gradebook.db?timeout=60" in out
    assert f"{tmp_path}/course/exchange" in out
    assert (tmp_path / "course" / "exchange").is_dir()
    from autograder.grading import COURSE_ID

    assert out.split()[-1] == COURSE_ID


def test_submission_copy_drops_links_to_the_gradebook(tmp_path: Path) -> None:
    from autograder import grading

    sub = tmp_path / "submitted"
    (sub / "data").mkdir(parents=True)
    (sub / "answer.ipynb").write_text("{}")
    (sub / "grades.db").symlink_to(tmp_path / "gradebook.db")
    (sub / "others").symlink_to(tmp_path, target_is_directory=True)
    notes: list[str] = []
    grading._safe_copy(sub, tmp_path / "copy", notes)
    copied = sorted(str(p.relative_to(tmp_path / "copy")) for p in (tmp_path / "copy").rglob("*"))
    assert copied == ["answer.ipynb", "data"]
    assert sorted(n.split(" ->")[0] for n in notes) == ["ignored symbolic link grades.db",
                                                       "ignored symbolic link others"]


def test_grading_assets_taken_from_the_grader_only_when_every_folder_exists(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The grading loop hands its built asset folders to each submission's process
    (`sandbox.ASSETS_ENV`); a list naming a folder that is not there is not trusted: the folders
    are built (resolved) again."""
    from autograder import sandbox
    from helpers import assets

    built = [tmp_path / "built-a", tmp_path / "built-b"]
    for folder in built:
        folder.mkdir()
    monkeypatch.setattr(assets, "for_grading", lambda: built)
    given = [tmp_path / "given-a", tmp_path / "given-b"]
    for folder in given:
        folder.mkdir()
    try:
        sandbox.grading_assets.cache_clear()
        monkeypatch.setenv(sandbox.ASSETS_ENV, os.pathsep.join(map(str, given)))
        assert sandbox.grading_assets() == tuple(given)
        sandbox.grading_assets.cache_clear()
        monkeypatch.setenv(sandbox.ASSETS_ENV, os.pathsep.join(map(str, [*given, tmp_path / "gone"])))
        assert sandbox.grading_assets() == tuple(p.resolve() for p in built)
    finally:
        sandbox.grading_assets.cache_clear()


@pytest.mark.requires("sandbox")
def test_the_kernel_cannot_reach_the_nbgrader_fork_server(tmp_path: Path) -> None:
    """The server that forks nbgrader commands would run any config file it is pointed at,
    outside the sandbox: its socket must be out of the kernel's sight and reach."""
    from autograder import nbgrader_runner

    path = nbgrader_runner._server().socket_path(dict(os.environ))
    code = (
        "import glob, os, socket\n"
        f"print('seen', os.path.exists({path!r}))\n"
        "print('found', glob.glob('/tmp/nbgrader-server-*') + glob.glob('/tmp/**/socket', recursive=True))\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({path!r})\n"
        "    print('connected')\n"
        "except OSError as error:\n"
        "    print('refused', error.errno)\n"
    )
    done = _run_in_sandbox(tmp_path, code)
    assert done.returncode == 0, done.stderr
    assert "seen False" in done.stdout and "found []" in done.stdout, done.stdout
    assert "refused" in done.stdout and "connected" not in done.stdout


def test_each_kernel_gets_its_share_of_the_cores() -> None:
    """Kernels graded at once never ask for more math threads than there are cores."""
    assert sandbox.kernel_threads(1, cpus=2) == 2
    assert sandbox.kernel_threads(2, cpus=2) == 1
    assert sandbox.kernel_threads(3, cpus=2) == 1  # never zero
    assert sandbox.kernel_threads(2, cpus=16) == 4  # at most 4: small models gain nothing more
    assert sandbox.kernel_threads(0, cpus=8) == 4
    assert sandbox.kernel_threads(4, cpus=None) >= 1


def test_the_graders_thread_share_reaches_the_kernel_unless_set() -> None:
    share = {sandbox.KERNEL_THREADS_ENV: "1"}
    env = sandbox.kernel_env(share, pythonpath=[], sandboxed=True)
    assert all(env[k] == "1" for k in sandbox.THREAD_ENV)
    assert sandbox.KERNEL_THREADS_ENV not in env  # the setting, not passed on
    # the instructor's own OMP_NUM_THREADS wins over the share
    env = sandbox.kernel_env({**share, "OMP_NUM_THREADS": "3"}, pythonpath=[], sandboxed=True)
    assert env["OMP_NUM_THREADS"] == "3" and env["MKL_NUM_THREADS"] == "1"
    # a bad share is ignored, not passed to the libraries
    for bad in ("0", "-2", "two", ""):
        env = sandbox.kernel_env({sandbox.KERNEL_THREADS_ENV: bad}, pythonpath=[], sandboxed=True)
        assert env["OMP_NUM_THREADS"] == str(sandbox.kernel_threads())


def test_grade_gives_each_kernel_cores_divided_by_jobs(fixture_course, monkeypatch) -> None:
    """grading.grade passes every submission's nbgrader run the share for its --jobs."""
    from autograder import grading

    seen: list[dict] = []

    def fake_grade_one(root, assignment, student, **kw):
        seen.append(kw)
        return grading.SubmissionResult(assignment, student, "graded")

    monkeypatch.setattr(grading, "grade_one", fake_grade_one)
    monkeypatch.setattr(grading, "release", lambda *a, **k: [])
    monkeypatch.setattr(grading, "_in_gradebook", lambda *a: True)
    monkeypatch.setattr(grading.report, "save_report", lambda *a, **k: None)
    for student in ("a", "b", "c"):
        (fixture_course / "submitted" / student / "selftest").mkdir(parents=True)
    grading.grade(fixture_course, "selftest", jobs=2)
    assert [kw["threads"] for kw in seen] == [sandbox.kernel_threads(2)] * 3
    seen.clear()
    grading.grade(fixture_course, "selftest", jobs=4, students=["a"])
    assert [kw["threads"] for kw in seen] == [sandbox.kernel_threads(1)]  # one kernel runs
