"""The student kit (`python -m autograder student-kit DIR`): what students receive holds no
solution, hidden test, mark scheme, check or reference answer; it installs into a fresh virtual
environment from its own files (offline, as the course does); its notebooks run top to bottom in
fast mode there, and its self-check passes. A student's work done in the kit is graded here like
work done in this repository: tests/test_answers.py grades a submission made in the kit."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from autograder import student_kit
from autograder.__main__ import main
from tests.conftest import REPO


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("kit") / "fine-tuning-course-student"
    assert main(["student-kit", str(dest)]) == 0
    return dest


def test_kit_holds_what_students_need(kit: Path) -> None:
    for path in ("README.md", "Makefile", "pyproject.toml", "environment.yml", ".gitignore",
                 "helpers/__init__.py", "helpers/emulator/app.py", "course/student.md",
                 "course/reading/en.md", "course/reading/de.md", "course/reading/zh.md",
                 "course/databricks.md"):
        assert (kit / path).exists(), path
    for folder in sorted((REPO / "release").iterdir()):
        for path in folder.rglob("*"):
            if path.is_file():
                copy = kit / "release" / path.relative_to(REPO / "release")
                assert copy.read_bytes() == path.read_bytes(), copy
    makefile = (kit / "Makefile").read_text()
    assert {"setup:", "lab:", "check:"} <= {line.split()[0] for line in makefile.splitlines()
                                            if line and not line[0].isspace() and ":" in line}
    assert "make setup" in (kit / "README.md").read_text()
    # the notebooks' Databricks cell installs the kit itself (its pyproject.toml)
    project = (kit / "pyproject.toml").read_text()
    assert 'name = "fine-tuning-course-student"' in project and '"helpers*"' in project
    assert "autograder" not in project and "copydetect" not in project


def test_kit_holds_no_solution_hidden_test_mark_scheme_or_check(kit: Path) -> None:
    assert not any((kit / name).exists() for name in ("autograder", "source", "tests", "bench"))
    text = {p: p.read_text(encoding="utf-8", errors="replace") for p in kit.rglob("*")
            if p.is_file()}
    for path, content in text.items():
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "MARK SCHEME",
                       "Model answer (for graders)", "autograder.checker", "import autograder"):
            assert marker not in content, f"{path}: {marker}"
    # the source notebooks' solution code, checked line by line as found in the solutions
    for source in REPO.glob("source/*/*.ipynb"):
        for cell in json.loads(source.read_text())["cells"]:
            meta = cell["metadata"].get("nbgrader") or {}
            if not meta.get("solution") or cell["cell_type"] != "code":
                continue
            solution = "".join(cell["source"]).split("### BEGIN SOLUTION")[1:]
            body = [block.split("### END SOLUTION")[0] for block in solution]
            for block in body:
                lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
                joined = "\n".join(lines)
                if len(lines) >= 2:
                    for path, content in text.items():
                        flat = "\n".join(ln.strip() for ln in content.splitlines() if ln.strip())
                        assert joined not in flat, f"{path} holds the solution of {meta['grade_id']}"


def test_kit_helpers_define_no_graded_answer(kit: Path) -> None:
    found = []
    for path in (kit / "helpers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name in student_kit.GRADED_ANSWERS:
                found.append(f"{path.relative_to(kit)}:{node.name}")
    assert found == []


def test_kit_is_not_written_where_it_would_leak_or_overwrite(tmp_path: Path, kit: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    assert main(["student-kit", str(kit)]) == 2  # not empty
    assert "is not empty" in capsys.readouterr().err
    assert main(["student-kit", str(REPO / "kit")]) == 2
    assert "inside the course repository" in capsys.readouterr().err
    # a course whose helpers hold a graded answer: no kit is written, and the error names it
    root = tmp_path / "course"
    for name in ("release", "helpers", "course", "source"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "environment.yml"):
        shutil.copy2(REPO / name, root / name)
    with (root / "helpers" / "tokens.py").open("a") as handle:
        handle.write("\n\ndef num_tokens_from_messages(messages):\n    return 0\n")
    (root / "course" / "reading" / "en.md").write_text(
        "    model = AutoModelForSequenceClassification.from_pretrained(\n"
        "        BACKBONE.path,\n        num_labels=2,\n        id2label=ID2LABEL,\n")
    with pytest.raises(student_kit.KitError) as error:
        student_kit.build(root, tmp_path / "leaky")
    assert "helpers/tokens.py: defines num_tokens_from_messages()" in str(error.value)
    assert "course/reading/en.md: holds a solution" in str(error.value)
    assert not (tmp_path / "leaky").exists()


@pytest.fixture(scope="module")
def kit_python(kit: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the kit installed from its own files. The third-party
    packages come from this course's environment (no network here): its site-packages is put on
    the new environment's path, where its editable install of this repository does not work (a
    .pth file's own .pth files are not read), so only the kit provides `helpers`."""
    venv = tmp_path_factory.mktemp("kitvenv") / "venv"
    # --without-pip: this environment's pip installs into it (`pip --python`), and the build uses
    # this environment's setuptools and wheel (a fresh venv's own setuptools has no wheel).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "course-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "--quiet", "--no-deps",
                           "--no-build-isolation", "--no-index", str(kit)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return python


def test_kit_installs_and_imports_from_its_own_files(kit_python: Path, tmp_path: Path) -> None:
    code = ("import importlib.util, helpers, helpers.tokens, helpers.emulator.app\n"
            "print(helpers.__file__)\n"
            "print(importlib.util.find_spec('autograder'))\n")
    done = subprocess.run([str(kit_python), "-c", code], capture_output=True, text=True,
                          check=False, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr
    helpers_file, autograder = done.stdout.splitlines()[:2]
    assert helpers_file.startswith(str(kit_python.parent.parent)), helpers_file
    assert autograder == "None"


def test_kit_notebooks_run_top_to_bottom_in_fast_mode(kit_python: Path, kit: Path) -> None:
    """The English notebooks run every cell (the answers are still placeholders, so errors are
    NotImplementedError and what follows from it, never a missing module); the self-check
    (`make check`) runs every notebook of every language up to its first answer cell."""
    script = r'''
import json, sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient
out = {}
for name in sys.argv[1:]:
    path = Path(name)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    first = next(i for i, c in enumerate(nb.cells)
                 if c.get("metadata", {}).get("nbgrader", {}).get("solution"))
    errors = [(i, o["ename"]) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    ran = all(c.get("execution_count") for c in nb.cells if c.cell_type == "code" and c.source.strip())
    out[name] = {"first": first, "errors": errors, "ran": ran}
print(json.dumps(out))
'''
    env = {**os.environ, "COURSE_FAST": "1", "MPLBACKEND": "Agg", "PYTHONPATH": "",
           "COURSE_OUTPUT_DIR": str(kit / "outputs")}
    notebooks = [str(kit / "release" / a / n) for a, n in (("01-gpt2-imdb", "gpt2_imdb.ipynb"),
                                                             ("02-gpt4o-jsonl", "gpt4o_jsonl.ipynb"))]
    done = subprocess.run([str(kit_python), "-c", script, *notebooks], capture_output=True,
                          text=True, check=False, cwd=kit, env=env, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    for name, result in json.loads(done.stdout.splitlines()[-1]).items():
        assert result["ran"], name
        assert all(index >= result["first"] for index, _ in result["errors"]), (name, result)
        assert not {"ModuleNotFoundError", "ImportError"} & {e for _, e in result["errors"]}
        assert ("NotImplementedError" in {e for _, e in result["errors"]}), (name, result)
    check = subprocess.run([str(kit_python), "-m", "helpers", "selfcheck", "release"],
                           capture_output=True, text=True, check=False, cwd=kit, env=env,
                           timeout=1500)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-2000:]
    assert check.stdout.count("ok    release/") == len(list((kit / "release").glob("*/*.ipynb")))
    assert "the set-up is right" in check.stdout
