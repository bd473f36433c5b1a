"""The assignment notebooks on a simulated Databricks (slow: `make test-slow`): a real Jupyter kernel whose environment
says Databricks (``DATABRICKS_RUNTIME_VERSION``), with a temporary folder standing in for
``/Volumes``, and a fake ``%pip`` and ``dbutils`` installed by an IPython start-up file (a real
``%pip`` would install the course into the test's environment).

The notebooks run top to bottom in fast mode; their install cell must call ``%pip`` on the Git
folder and restart Python, and everything they write must land in the volume.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from helpers import databricks

ROOT = Path(__file__).resolve().parent.parent

STARTUP = r'''
# A stand-in for what Databricks gives a notebook: `dbutils` and its own `%pip`.
import json, os
from IPython import get_ipython

_LOG = os.environ["FAKE_DATABRICKS_LOG"]

def _record(*entry):
    with open(_LOG, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")

def _pip(line):
    _record("pip", line, os.getcwd())

get_ipython().register_magic_function(_pip, "line", "pip")

class _Library:
    def restartPython(self):
        _record("restartPython")

class _Secrets:
    def get(self, scope, key):
        _record("secret", scope, key)
        raise RuntimeError(f"Secret does not exist with scope: {scope} and key: {key}")

class _EntryPoint:  # what MLflow touches when it is imported on Databricks
    def getDbutils(self):
        return self

    def notebook(self):
        return self

class _DBUtils:
    library = _Library()
    secrets = _Secrets()
    entry_point = _EntryPoint()

dbutils = _DBUtils()
'''


def _course_copy(tmp_path: Path, assignment: str) -> Path:
    """A Git folder stand-in: pyproject.toml at the top, the assignment under release/."""
    git_folder = tmp_path / "Workspace" / "Users" / "me@example.com" / "fine-tuning-course"
    folder = git_folder / "release" / assignment
    shutil.copytree(ROOT / "source" / assignment, folder,
                    ignore=shutil.ignore_patterns("outputs", ".*", "executed-*"))
    shutil.copy(ROOT / "pyproject.toml", git_folder / "pyproject.toml")
    return folder


def _with_install_cell(nb) -> None:
    """Put `helpers.databricks.INSTALL_CELL` first, replacing any other install cell."""
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    if "DATABRICKS_RUNTIME_VERSION" in nb.cells[first_code].source:
        nb.cells[first_code].source = databricks.INSTALL_CELL
    else:
        nb.cells.insert(first_code, nbformat.v4.new_code_cell(databricks.INSTALL_CELL))


def _run_on_fake_databricks(tmp_path: Path, assignment: str, notebook: str):
    from nbclient import NotebookClient

    folder = _course_copy(tmp_path, assignment)
    ipython_dir = tmp_path / "ipython"
    (ipython_dir / "profile_default" / "startup").mkdir(parents=True)
    (ipython_dir / "profile_default" / "startup" / "00-fake-databricks.py").write_text(STARTUP)
    volumes = tmp_path / "Volumes"
    log = tmp_path / "databricks.log"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AZURE_", "COURSE_", "MLFLOW_")) and k != "TEMP_AUTH_TOKEN"}
    env.update(
        DATABRICKS_RUNTIME_VERSION="15.4",
        COURSE_VOLUMES_ROOT=str(volumes),
        COURSE_UC_CATALOG="teaching",
        COURSE_FAST="1",
        # the workspace's tracking server ("databricks") is not here: a local store stands in
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        IPYTHONDIR=str(ipython_dir),
        FAKE_DATABRICKS_LOG=str(log),
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    nb = nbformat.read(folder / notebook, as_version=4)
    _with_install_cell(nb)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        nbformat.write(nb, tmp_path / f"executed-{notebook}")
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return folder, volumes / "teaching" / "default" / "fine_tuning", calls


def _assert_installed_and_restarted(calls: list, folder: Path) -> None:
    git_folder = folder.parent.parent
    assert calls[:2] == [["pip", f'install --quiet "{git_folder}"', str(folder)], ["restartPython"]], calls


@pytest.mark.slow  # ~60 s; the fast suite covers the same outputs in test_databricks.py
def test_gpt2_notebook_writes_to_the_volume(tmp_path: Path) -> None:
    folder, volume, calls = _run_on_fake_databricks(tmp_path, "01-gpt2-imdb", "gpt2_imdb.ipynb")
    _assert_installed_and_restarted(calls, folder)
    outputs = volume / "outputs"
    written = sorted(p.relative_to(outputs).as_posix() for p in outputs.rglob("*") if p.is_file())
    assert any(name.endswith("config.json") for name in written), written
    assert any("model" in name and name.endswith(".safetensors") for name in written), written
    # nothing but the executed copy beside the notebook: the outputs went to the volume
    assert not (folder / "outputs").exists()
    # (MLflow's artifacts go to the workspace on Databricks; the local stand-in store used here
    # keeps them in mlruns/ beside its mlflow.db, which says nothing about the volume.)


@pytest.mark.slow  # ~90 s (the emulator trains a tiny model)
def test_gpt4o_notebook_runs_on_databricks(tmp_path: Path) -> None:
    folder, _volume, calls = _run_on_fake_databricks(tmp_path, "02-gpt4o-jsonl", "gpt4o_jsonl.ipynb")
    _assert_installed_and_restarted(calls, folder)
    assert not (folder / "outputs").exists()


def test_install_cell_in_a_plain_kernel_does_nothing(tmp_path: Path) -> None:
    """Outside Databricks the install cell runs in a real kernel without touching pip."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(databricks.INSTALL_CELL),
                                         nbformat.v4.new_code_cell("print('next cell ran')")])
    saved = dict(os.environ)
    os.environ.pop("DATABRICKS_RUNTIME_VERSION", None)
    try:
        NotebookClient(nb, timeout=60, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert nb.cells[0].outputs == []
    assert nb.cells[1].outputs[0]["text"] == "next cell ran\n"
