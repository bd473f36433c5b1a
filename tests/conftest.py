"""Shared fixtures. The grading tests use the self-test course in ``tests/fixtures/course``: a
tiny assignment (two autograded answers with visible and hidden tests, a manually graded answer,
a task) that grades in seconds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURE_COURSE = REPO / "tests" / "fixtures" / "course"


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
