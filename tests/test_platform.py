"""helpers.platform: modes, where the course runs, and where data and outputs go."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import platform


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("COURSE_FAST", "NBGRADER_EXECUTION", "DATABRICKS_RUNTIME_VERSION", "CI",
                 "COURSE_DATA_DIR", "COURSE_OUTPUT_DIR", "COURSE_UC_CATALOG", "COURSE_UC_SCHEMA",
                 "COURSE_UC_VOLUME", "COURSE_VOLUMES_ROOT", "COURSE_ROOT"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("env", "fast"),
    [
        ({}, False),
        ({"COURSE_FAST": "1"}, True),
        ({"COURSE_FAST": "yes"}, True),
        ({"NBGRADER_EXECUTION": "autograde"}, True),
        ({"NBGRADER_EXECUTION": "validate"}, True),
        ({"NBGRADER_EXECUTION": "autograde", "COURSE_FAST": "0"}, False),
    ],
)
def test_fast_mode(monkeypatch, env, fast) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert platform.is_fast() is fast
    assert platform.mode() == ("fast" if fast else "full")


def test_environment_names(monkeypatch) -> None:
    assert platform.environment() == "local"
    monkeypatch.setenv("CI", "true")
    assert platform.environment() == "ci"
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert platform.environment() == "grading"
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    assert platform.environment() == "databricks" and platform.is_databricks()


def test_databricks_folders_land_in_the_volume(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    monkeypatch.setenv("COURSE_VOLUMES_ROOT", str(tmp_path))
    assert platform.volume_root() == tmp_path / "main" / "default" / "fine_tuning"
    monkeypatch.setenv("COURSE_UC_CATALOG", "teaching")
    monkeypatch.setenv("COURSE_UC_SCHEMA", "llm")
    assert platform.data_dir() == tmp_path / "teaching" / "llm" / "fine_tuning" / "data"
    out = platform.output_dir("gpt2")
    assert out == tmp_path / "teaching" / "llm" / "fine_tuning" / "outputs" / "gpt2"
    assert out.is_dir()


def test_local_folders(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert platform.output_dir("run") == tmp_path / "outputs" / "run"
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "d"))
    assert platform.data_dir() == tmp_path / "d" and (tmp_path / "d").is_dir()


def test_course_root_is_the_clone() -> None:
    root = platform.course_root()
    assert (root / "pyproject.toml").is_file() and (root / "helpers").is_dir()
