"""Unit tests of the sandbox's pieces: what the kernel sees and gets (no kernel started)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import sandbox

REPO = Path(__file__).resolve().parent.parent


def test_kernel_env_is_filtered_and_fast() -> None:
    env = sandbox.kernel_env(
        {"AZURE_OPENAI_API_KEY": "secret", "OPENAI_API_KEY": "s2", "HOME": "/root",
         "NBGRADER_EXECUTION": "autograde", "COURSE_UC_CATALOG": "main", "COURSE_ROOT": "/x"},
        pythonpath=[REPO], sandboxed=True)
    assert "AZURE_OPENAI_API_KEY" not in env and "OPENAI_API_KEY" not in env
    assert env["COURSE_FAST"] == "1" and env["NBGRADER_EXECUTION"] == "autograde"
    assert env["HF_HUB_OFFLINE"] == "1" and env["HOME"] == "/tmp"
    assert env["COURSE_UC_CATALOG"] == "main" and "COURSE_ROOT" not in env
    assert env["PYTHONPATH"] == str(REPO)


def test_course_fast_0_is_kept_for_a_full_grading_run() -> None:
    env = sandbox.kernel_env({"COURSE_FAST": "0"}, pythonpath=[], sandboxed=True)
    assert env["COURSE_FAST"] == "0"


def test_bwrap_command_binds_only_code_and_the_private_copy(tmp_path: Path) -> None:
    work, private, ipc = tmp_path / "autograded/s/a", tmp_path / "p", tmp_path / "ipc"
    cmd = sandbox.bwrap_command(["python", "-m", "ipykernel_launcher"], workdir=work,
                                private_dir=private, ipc_dir=ipc)
    assert "--unshare-net" in cmd and "--die-with-parent" in cmd
    binds = [(a, cmd[i + 1], cmd[i + 2]) for i, a in enumerate(cmd)
             if a in {"--bind", "--ro-bind"}]
    writable = [(src, dest) for kind, src, dest in binds if kind == "--bind"]
    assert writable == [(str(ipc), str(ipc)), (str(private), str(work))]
    bound = {dest for _, _, dest in binds}
    assert str(REPO / "helpers") in bound and str(REPO / "autograder") in bound
    assert not {str(REPO), str(REPO / "source"), str(REPO / "submitted")} & bound
    assert cmd[-3:] == ["python", "-m", "ipykernel_launcher"]


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
