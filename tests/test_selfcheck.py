"""helpers.selfcheck (the student's `make check`): each notebook runs up to its first answer cell;
notebooks with the same set-up (code, kernel, files beside them) run once and share the verdict;
anything that differs runs on its own."""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
import pytest

from helpers import selfcheck


def _notebook(folder: Path, setup: str, *, markdown: str = "Intro", data: str | None = "1,2\n",
              after: str = "") -> Path:
    """A notebook: a markdown cell, a set-up cell, an answer cell that must never run, and a cell
    after it; ``data`` goes into data/values.csv beside it."""
    folder.mkdir(parents=True)
    answer = nbformat.v4.new_code_cell("raise AssertionError('an answer cell ran')")
    answer.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False,
                                   "grade_id": "answer", "schema_version": 3}
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(markdown), nbformat.v4.new_code_cell(setup), answer,
        nbformat.v4.new_code_cell(after or "raise AssertionError('a cell after the answer ran')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "lab.ipynb"
    nbformat.write(nb, path)
    if data is not None:
        (folder / "data").mkdir()
        (folder / "data" / "values.csv").write_text(data)
    return path


def _setup(log: Path, extra: str = "") -> str:
    """Set-up code that records each run (the folder it ran in) in ``log``."""
    return (f"import os\nwith open({str(log)!r}, 'a') as f:\n    f.write(os.getcwd() + '\\n')\n"
            f"assert open('data/values.csv').read()\n{extra}")


def _run(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
         *, every: bool = False) -> tuple[int, list[str]]:
    from helpers import assets

    monkeypatch.setattr(assets, "resolve_all", dict)
    code = selfcheck.run(argparse.Namespace(paths=[str(tmp_path / "release")], timeout=60,
                                            every=every))
    return code, capsys.readouterr().out.splitlines()


def _runs(log: Path) -> list[str]:
    return [Path(line).name for line in log.read_text().splitlines()] if log.exists() else []


def test_the_variants_of_one_set_up_run_once_and_each_is_reported(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "runs.log"
    _notebook(tmp_path / "release" / "01-lab", _setup(log), markdown="English")
    _notebook(tmp_path / "release" / "01-lab-de", _setup(log), markdown="Deutsch")
    _notebook(tmp_path / "release" / "01-lab-zh", _setup(log), markdown="中文")
    code, lines = _run(tmp_path, capsys, monkeypatch)
    assert code == 0, lines
    assert _runs(log) == ["01-lab"], "one run for three notebooks with the same set-up"
    ok = [line for line in lines if line.startswith("ok    ") and "lab.ipynb" in line]
    assert len(ok) == 3, lines
    assert "checked once" not in ok[0]
    assert all("the same set-up cells and files as" in line and "01-lab/lab.ipynb" in line
               for line in ok[1:]), ok
    assert lines[-1] == "the set-up is right"


@pytest.mark.parametrize("change", ["code", "data", "a new file", "no data"])
def test_any_difference_in_the_set_up_runs_the_notebook_on_its_own(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
        change: str) -> None:
    log = tmp_path / "runs.log"
    _notebook(tmp_path / "release" / "a", _setup(log))
    other = tmp_path / "release" / "b"
    if change == "code":
        _notebook(other, _setup(log, extra="x = 1\n"))
    elif change == "data":
        _notebook(other, _setup(log), data="1,3\n")
    elif change == "a new file":
        _notebook(other, _setup(log))
        (other / "notes.txt").write_text("read me")
    else:
        _notebook(other, _setup(log), data=None)
    code, lines = _run(tmp_path, capsys, monkeypatch)
    assert _runs(log) == ["a", "b"], lines
    assert not any("checked once" in line for line in lines), lines
    if change == "no data":
        assert code == 1 and any(line.startswith("FAIL  ") and "/b/lab.ipynb" in line
                                 and "FileNotFoundError" in line for line in lines), lines
    else:
        assert code == 0, lines


def test_another_kernel_is_another_set_up(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    first = _notebook(tmp_path / "release" / "a", _setup(log))
    second = _notebook(tmp_path / "release" / "b", _setup(log))
    assert selfcheck.setup_key(first) == selfcheck.setup_key(second)
    nb = nbformat.read(second, 4)
    nb.metadata["kernelspec"]["name"] = "python3-other"
    nbformat.write(nb, second)
    assert selfcheck.setup_key(first) != selfcheck.setup_key(second)


def test_a_failing_set_up_fails_every_notebook_that_shares_it(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "runs.log"
    broken = _setup(log, extra="import a_module_nobody_installed\n")
    _notebook(tmp_path / "release" / "01-lab", broken)
    _notebook(tmp_path / "release" / "01-lab-de", broken, markdown="Deutsch")
    code, lines = _run(tmp_path, capsys, monkeypatch)
    assert code == 1
    failed = [line for line in lines if line.startswith("FAIL  ") and "lab.ipynb" in line]
    assert len(failed) == 2, lines
    assert all("cell 2: ModuleNotFoundError" in line for line in failed), failed
    assert "checked once" in failed[1]
    assert lines[-1].startswith("2 problem(s)")
    assert _runs(log) == ["01-lab"]


def test_every_runs_each_notebook(tmp_path: Path, capsys: pytest.CaptureFixture,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "runs.log"
    _notebook(tmp_path / "release" / "01-lab", _setup(log))
    _notebook(tmp_path / "release" / "01-lab-de", _setup(log), markdown="Deutsch")
    code, lines = _run(tmp_path, capsys, monkeypatch, every=True)
    assert code == 0, lines
    assert sorted(_runs(log)) == ["01-lab", "01-lab-de"]
    assert not any("checked once" in line for line in lines)


def test_outputs_beside_a_notebook_do_not_change_its_set_up(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    first = _notebook(tmp_path / "release" / "a", _setup(log))
    second = _notebook(tmp_path / "release" / "b", _setup(log))
    (second.parent / "outputs").mkdir()
    (second.parent / "outputs" / "model.bin").write_bytes(b"\0" * 100)
    (second.parent / ".ipynb_checkpoints").mkdir()
    (second.parent / ".ipynb_checkpoints" / "lab-checkpoint.ipynb").write_text("{}")
    assert selfcheck.setup_key(first) == selfcheck.setup_key(second)
    # an answer written after the set-up does not change it either
    nb = nbformat.read(second, 4)
    nb.cells[2].source = "answer = 42"
    nbformat.write(nb, second)
    assert selfcheck.setup_key(first) == selfcheck.setup_key(second)


def test_a_folder_too_large_to_compare_always_runs(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = _notebook(tmp_path / "release" / "a", "x = 1")
    monkeypatch.setattr(selfcheck, "MAX_FILES", 1)
    (path.parent / "more.txt").write_text("more")
    assert selfcheck.setup_key(path) is None
