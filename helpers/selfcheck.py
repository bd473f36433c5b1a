"""``python -m helpers selfcheck [PATH ...]``: is the set-up right? (fast mode, about a minute)

Resolves every offline asset the notebooks use, then runs each notebook under ``PATH`` (folders
are searched for ``*.ipynb``; default ``release``) in fast mode **up to its first answer cell**:
what the course gives you must run; the answers are yours to write, so they are not run. Prints
one line per notebook and exits 1 when anything failed, with the cell and the error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

#: Files beside a notebook that never decide its set-up (outputs, caches).
IGNORED_PARTS = {".ipynb_checkpoints", "outputs", "__pycache__", ".course-data"}
#: A folder with more files than this beside the notebook is not compared: it always runs.
MAX_FILES = 200


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", default=["release"],
                        help="notebooks or folders of notebooks (default: release)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--every", action="store_true",
                        help="run every notebook, even one whose set-up is the same as another's")


def notebooks(paths: list[str]) -> list[Path]:
    found = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no notebook or folder of notebooks there")
    return found


def _setup_cells(nb) -> list:
    first = next((i for i, c in enumerate(nb.cells)
                  if c.get("metadata", {}).get("nbgrader", {}).get("solution")), len(nb.cells))
    return nb.cells[:first]


def setup_key(path: Path) -> str | None:
    """What decides the set-up run of ``path``: its code cells before the first answer, its
    kernel, and every file beside it (names and contents). Two notebooks with the same key run
    the same code on the same files. None when the folder is too large to compare."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    folder = path.parent
    files = []
    for item in sorted(folder.rglob("*")):
        relative = item.relative_to(folder)
        if not item.is_file() or item.suffix == ".ipynb" or IGNORED_PARTS & set(relative.parts):
            continue
        if len(files) == MAX_FILES:
            return None
        files.append([str(relative), hashlib.sha256(item.read_bytes()).hexdigest()])
    code = [c.source for c in _setup_cells(nb) if c.cell_type == "code"]
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    return hashlib.sha256(json.dumps([code, kernel, files]).encode()).hexdigest()


def check_notebook(path: Path, timeout: int = 600) -> str | None:
    """Run ``path`` in fast mode up to its first answer cell; None when every cell ran, else the
    first error ("cell N: Error: message")."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells = _setup_cells(nb)
    client = NotebookClient(nb, timeout=timeout, allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"cell {index + 1}: {output.get('ename')}: {output.get('evalue')}"
    return None


def run(args: argparse.Namespace) -> int:
    from helpers import assets

    os.environ.setdefault("COURSE_FAST", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    failed = 0
    try:
        for name, where in assets.resolve_all().items():
            print(f"ok    asset {name}: {where}")
    except Exception as error:  # noqa: BLE001 - report, then go on with the notebooks
        failed += 1
        print(f"FAIL  assets: {type(error).__name__}: {error}")
    done: dict[str, tuple[Path, str | None]] = {}  # set-up key -> (the notebook run, its verdict)
    for path in notebooks(args.paths):
        key = None if args.every else setup_key(path)
        note = ""
        if key is not None and key in done:
            first, problem = done[key]
            note = f" (the same set-up cells and files as {first}: checked once)"
        else:
            problem = check_notebook(path, args.timeout)
            if key is not None:
                done[key] = (path, problem)
        failed += problem is not None
        print(f"{'FAIL' if problem else 'ok  '}  {path}" + (f": {problem}" if problem else "")
              + note)
    print("the set-up is right" if not failed else f"{failed} problem(s): see FAIL above")
    return 1 if failed else 0
