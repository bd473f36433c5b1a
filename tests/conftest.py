"""Shared fixtures. The grading tests use the self-test course in ``tests/fixtures/course``: a
tiny assignment (two autograded answers with visible and hidden tests, a manually graded answer,
a task) that grades in seconds."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

from autograder.sandbox import THREAD_ENV

# Longest test files first, so that xdist's workers finish together (tests/file_order.py).
pytest_plugins = ["tests.file_order"]

# One thread per math library in every test process and everything it starts (grading kernels,
# emulators, notebooks), unless the caller sets it: the suite runs several workers on few cores,
# and a multi-threaded torch there has its OpenMP threads wait for each other (measured on the
# 2-core machine, three workers: the recipe test took 595 s with two threads, where one thread
# alone takes 141 s and two on idle cores 88 s). `OMP_NUM_THREADS=2 pytest ...` overrides it.
# The variables are the ones the grader sizes for its kernels (autograder.sandbox.THREAD_ENV).
for _name in THREAD_ENV:
    os.environ.setdefault(_name, "1")

REPO = Path(__file__).resolve().parent.parent
FIXTURE_COURSE = REPO / "tests" / "fixtures" / "course"


class _NoSparkConnectInWorkers:
    """pytest-xdist's workers run with a bare ``__main__`` (no ``__spec__``, no ``__file__``),
    which pyspark takes for its own doctests: importing ``pyspark.sql.connect`` without grpc then
    calls ``sys.exit(0)`` instead of raising ImportError. MLflow imports it while it infers a
    model signature (``_is_spark_df``), so ``log_model`` in a worker died with SystemExit (a
    flaky failure, depending on which worker ran the file). Here the import fails the way it does
    in any other process (a kernel, ``python -m pytest``): with ImportError."""

    name = "pyspark.sql.connect"

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return
        main = sys.modules.get("__main__")
        if getattr(main, "__spec__", None) is not None or hasattr(main, "__file__"):
            return
        if importlib.util.find_spec("grpc") is not None:
            return
        raise ImportError(f"{fullname} needs grpc (not installed; pytest-xdist worker)")


if os.environ.get("PYTEST_XDIST_WORKER"):
    sys.meta_path.insert(0, _NoSparkConnectInWorkers())


def copy_fixture_course(dest: Path) -> Path:
    """A fresh course root with the self-test assignment's source and committed release."""
    dest.mkdir(parents=True, exist_ok=True)
    for folder in ("source", "release"):
        shutil.copytree(FIXTURE_COURSE / folder, dest / folder)
    return dest


@pytest.fixture
def fixture_course(tmp_path: Path) -> Path:
    return copy_fixture_course(tmp_path / "course")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server on 127.0.0.1 serving a course folder, as `make lab` starts it."""

    def __init__(self, root: Path, log: Path) -> None:
        import os
        import secrets
        import subprocess
        import sys

        self.root, self.port, self.token = root, free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(REPO), "JUPYTER_PLATFORM_DIRS": "1", "COURSE_FAST": "1",
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        env.pop("NBG_ROOT", None)
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
               # A fresh workspace: Lab would otherwise reopen the tabs of an earlier session.
               f"--LabApp.workspaces_dir={log.parent / 'workspaces'}"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self._log = log.open("w")
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def get(self, path: str, timeout: float = 90.0):
        import requests

        return requests.get(self.url + path, headers={"Authorization": f"token {self.token}"},
                            timeout=timeout)

    def wait(self, deadline: float = 120.0) -> None:
        import time

        import requests

        start = time.monotonic()
        while time.monotonic() - start < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}")
            try:
                if self.get("/api/status", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer on {self.url} in {deadline:.0f} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except Exception:  # noqa: BLE001
            self.proc.kill()
        self._log.close()


def lab_course(dest: Path) -> Path:
    """A course folder for Lab: this repo's nbgrader_config.py, source/ and release/, plus the
    self-test assignment."""
    copy_fixture_course(dest)
    shutil.copy(REPO / "nbgrader_config.py", dest / "nbgrader_config.py")
    for folder in ("source", "release"):
        for assignment in sorted((REPO / folder).glob("*")):
            if assignment.is_dir() and not (dest / folder / assignment.name).exists():
                shutil.copytree(assignment, dest / folder / assignment.name)
    return dest


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """One JupyterLab for the whole run (test_lab.py and test_browser.py share it)."""
    base = tmp_path_factory.mktemp("lab")
    server = Lab(lab_course(base / "course"), base / "lab.log")
    try:
        server.wait()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- machine requirements
#
# What a test needs from the machine (the grading sandbox, a network namespace, a browser, Java,
# pyspark) is declared ONE way, and the run decides what a missing one means:
#
# - outside CI the test is skipped, with the reason and what to install (`pytest -ra` lists it);
# - under CI (``CI`` set to true, 1, yes or on, as CI services set it) the test FAILS with the
#   same message: CI must prove everything, so a machine that lacks a requirement is an error of
#   the CI set-up, not a reason to pass. The run's summary lists each missing requirement once.
#
# How to use it (tests/test_ci_policy.py shows both behaviours):
#
#   pytestmark = pytest.mark.requires("sandbox")          # a whole module
#   @pytest.mark.requires("java", "pyspark")              # one test (or class)
#   def test_x(): ...
#   require("browser")                                    # inside a test or a fixture
#   skip_or_fail("why", "what to install")                # a requirement that is no probe here
#
# The marker is checked before any fixture of the test is set up, so a module-scoped fixture
# that grades or starts a JVM never runs on a machine that lacks what it needs. Do not put
# `require()` or `pytest.skip` at module level for these: under CI that is a collection error
# that stops the whole run instead of failing the tests that need it.
#
# Names (`REQUIREMENTS`): "sandbox" (bubblewrap that can create namespaces: the grading
# sandbox), "namespaces" (`unshare -n`: a test that cuts a child process off the network),
# "offline" (the run itself is in tests/offline.sh's network namespace), "browser" (Debian's
# chromium and the playwright module), "java" (a Java 17+ runtime), "pyspark".
# Data that a learner's clone does not have (../shared) is no machine requirement: those tests
# keep a plain `skipif`.


def in_ci() -> bool:
    """True when the run is CI's (``CI`` is true, 1, yes or on)."""
    from helpers import platform

    return platform.is_ci()


class Requirement:
    """Something tests need from the machine. ``probe()`` returns None when it is there, else
    why it is not (evaluated once per run); ``fix`` says what to install or allow."""

    def __init__(self, name: str, what: str, probe, fix: str) -> None:
        self.name, self.what, self._probe, self.fix = name, what, probe, fix
        self._checked = False
        self._missing: str | None = None

    def missing(self) -> str | None:
        if not self._checked:
            self._missing, self._checked = self._probe(), True
        return self._missing

    def message(self) -> str:
        return f"needs {self.what}, which is missing here: {self.missing()}. {self.fix}"


_USERNS_HINT = ("run as root, or allow unprivileged user namespaces "
                "(sysctl -w kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 also "
                "kernel.apparmor_restrict_unprivileged_userns=0; in Docker "
                "--security-opt seccomp=unconfined --security-opt apparmor=unconfined, or "
                "--privileged)")


def _probe_sandbox() -> str | None:
    from autograder import sandbox

    ok, why = sandbox.availability()
    return None if ok else why


def unshare_command() -> list[str] | None:
    """The command that runs a child in a fresh network namespace here (``unshare -n`` as root,
    ``unshare -rn`` in a user namespace), or None where neither is allowed."""
    import subprocess

    if shutil.which("unshare") is None:
        return None
    for command in (["unshare", "-n"], ["unshare", "-rn"]):
        try:
            done = subprocess.run([*command, "true"], check=False, capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return command
    return None


def _probe_namespaces() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    if unshare_command() is None:
        return "`unshare -n` and `unshare -rn` are refused (no network namespace can be made)"
    return None


def _probe_offline() -> str | None:
    import os

    if os.environ.get("COURSE_NETWORK") != "blocked":
        return ("the run is not inside tests/offline.sh's network namespace "
                "(COURSE_NETWORK is not 'blocked')")
    return None


def chromium_path() -> Path:
    """The browser the browser test drives: ``COURSE_CHROMIUM``, else chromium on PATH, else
    Debian's ``/usr/bin/chromium``."""
    import os

    if os.environ.get("COURSE_CHROMIUM"):
        return Path(os.environ["COURSE_CHROMIUM"])
    found = shutil.which("chromium")
    return Path(found) if found else Path("/usr/bin/chromium")


def _probe_browser() -> str | None:
    import importlib.util

    problems = []
    if not chromium_path().exists():
        problems.append(f"no chromium at {chromium_path()}")
    if importlib.util.find_spec("playwright") is None:
        problems.append("the playwright module is not installed")
    return "; ".join(problems) or None


def java_version() -> int | None:
    """The major version of the ``java`` on PATH (17 for "17.0.15"), or None without one."""
    import re
    import subprocess

    java = shutil.which("java")
    if java is None:
        return None
    try:
        out = subprocess.run([java, "-version"], check=False, capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def _probe_java() -> str | None:
    if shutil.which("java") is None:
        return "no java on PATH"
    version = java_version()
    if version is None or version < 17:
        return f"java on PATH is version {version or 'unknown'}; pyspark 4 needs 17 or later"
    return None


def _probe_pyspark() -> str | None:
    import importlib.util

    return None if importlib.util.find_spec("pyspark") else "the pyspark module is not installed"


_SYSTEM = "`make setup-system` installs it on Debian/Ubuntu"
REQUIREMENTS: dict[str, Requirement] = {r.name: r for r in (
    Requirement("sandbox", "the bubblewrap grading sandbox", _probe_sandbox,
                f"Install bubblewrap (apt-get install -y bubblewrap; {_SYSTEM}); if it is "
                f"installed but cannot create namespaces, {_USERNS_HINT}."),
    Requirement("namespaces", "network namespaces (unshare -n)", _probe_namespaces,
                f"Install util-linux (apt-get install -y util-linux) and {_USERNS_HINT}."),
    Requirement("offline", "a run inside a network namespace", _probe_offline,
                "Run the suite as `make test` does: bash tests/offline.sh .venv/bin/python -m "
                "pytest ... (offline.sh needs unshare -n: install util-linux and "
                f"{_USERNS_HINT})."),
    Requirement("browser", "headless Chromium driven by Playwright", _probe_browser,
                f"Install chromium (apt-get install -y chromium; {_SYSTEM}; or point "
                "COURSE_CHROMIUM at one) and playwright (pip install -e '.[dev]')."),
    Requirement("java", "a Java 17+ runtime (for Spark)", _probe_java,
                f"Install Java 17 (apt-get install -y openjdk-17-jre-headless; {_SYSTEM})."),
    Requirement("pyspark", "pyspark", _probe_pyspark,
                "Install the dev extras: pip install -e '.[dev]' (pyspark>=4)."),
)}

#: Requirements a test failed on under CI in this run (for the summary at the end).
_FAILED_IN_CI: dict[str, str] = {}


def skip_or_fail(reason: str, fix: str = "", *, name: str = "") -> None:
    """Skip the running test (outside CI) or fail it (under CI) because the machine lacks
    something: ``reason`` says what is missing, ``fix`` what to install."""
    message = " ".join(part for part in (reason, fix) if part)
    if in_ci():
        _FAILED_IN_CI[name or reason] = message
        pytest.fail(f"CI is set, so a missing requirement fails instead of skipping: {message}",
                    pytrace=False)
    pytest.skip(message)


def require(*names: str) -> None:
    """Skip (outside CI) or fail (under CI) unless the machine has every requirement in
    ``names`` (keys of `REQUIREMENTS`). Call it inside a test or a fixture."""
    unknown = [n for n in names if n not in REQUIREMENTS]
    if unknown:
        raise ValueError(f"unknown requirement(s) {unknown}; known: {sorted(REQUIREMENTS)}")
    for name in names:
        requirement = REQUIREMENTS[name]
        if requirement.missing():
            skip_or_fail(requirement.message(), name=name)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires(*names): the test needs these machine requirements "
        f"({', '.join(REQUIREMENTS)}); skipped without them, failed under CI (tests/conftest.py)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Check the ``requires`` markers before the test's fixtures are set up."""
    for marker in item.iter_markers(name="requires"):
        require(*marker.args)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _FAILED_IN_CI:
        terminalreporter.section("missing under CI (install these, or run without CI=true)",
                                 red=True, bold=True)
        for message in _FAILED_IN_CI.values():
            terminalreporter.line(f"- {message}")
