"""The CI check: every assignment in ``source/`` is gradable, proved in a temporary copy of the
course (the real gradebook and folders are never touched).

Four conditions per assignment:

1. ``release/<a>`` is exactly what ``nbgrader generate_assignment`` makes of ``source/<a>``
   (a stale release fails: regenerate it with ``python -m autograder release``);
2. no ``BEGIN SOLUTION``, ``BEGIN HIDDEN TESTS`` or ``BEGIN MARK SCHEME`` (nor their ``END``)
   survives anywhere in ``release/<a>``;
3. the source notebook, submitted as a student's, scores full marks on every autograded cell;
4. the untouched release notebook scores zero on every autograded cell.

Scores are read from the gradebook: ``nbgrader validate`` exits 0 even when tests fail.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from autograder import grading

MARKERS = (
    "BEGIN SOLUTION", "END SOLUTION",
    "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
    "BEGIN MARK SCHEME", "END MARK SCHEME",
)
CONDITIONS = ("release-up-to-date", "no-markers-in-release", "source-scores-full",
              "release-scores-zero")
SOURCE_STUDENT = "ci-source"
RELEASE_STUDENT = "ci-release"


@dataclass
class Finding:
    assignment: str
    condition: str
    ok: bool
    detail: str = ""

    def __str__(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"{mark} {self.assignment}: {self.condition}" + (f": {self.detail}" if self.detail else "")


def _canonical(path: Path) -> object:
    """A notebook as data (key order and indentation do not matter); other files as bytes."""
    if path.suffix == ".ipynb":
        return json.loads(path.read_text(encoding="utf-8"))
    return path.read_bytes()


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    skip = {".ipynb_checkpoints", "__pycache__"}
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*"))
            if p.is_file() and not skip & set(p.relative_to(folder).parts)}


def compare_release(committed: Path, generated: Path) -> list[str]:
    """Differences between the committed release folder and a freshly generated one."""
    a, b = _files(committed), _files(generated)
    problems = [f"{name} is missing from release/ (generate_assignment makes it)"
                for name in sorted(b.keys() - a.keys())]
    problems += [f"{name} is in release/ but generate_assignment does not make it"
                 for name in sorted(a.keys() - b.keys())]
    for name in sorted(a.keys() & b.keys()):
        if _canonical(a[name]) != _canonical(b[name]):
            problems.append(f"{name} differs from what generate_assignment makes of source/")
    return problems


def find_markers(folder: Path) -> list[str]:
    """``file:line: marker`` for every solution/hidden-test/mark-scheme marker under ``folder``."""
    hits = []
    for name, path in _files(folder).items():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if path.suffix == ".ipynb":
            lines = [line for cell in json.loads(text).get("cells", [])
                     for line in "".join(cell.get("source", "")).splitlines()]
        else:
            lines = text.splitlines()
        for number, line in enumerate(lines, 1):
            for marker in MARKERS:
                if marker in line:
                    hits.append(f"{name}:{number}: {marker}")
    return hits


def make_copy(root: Path, dest: Path) -> Path:
    """A temporary course: ``source/`` and ``release/`` of ``root`` and nothing else."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "outputs", ".course-data")
    for folder in ("source", "release"):
        if (root / folder).is_dir():
            shutil.copytree(root / folder, dest / folder, ignore=ignore, symlinks=True)
    return dest


def _code_cells(folder: Path) -> list:
    """Every notebook's code cells with their nbgrader metadata: what grading depends on."""
    out = []
    for path in sorted(folder.glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        out.append((path.name, [("".join(c.get("source", "")), c.get("metadata", {}).get("nbgrader"))
                                for c in cells if c.get("cell_type") == "code"]))
    return out


def same_code_as(root: Path, name: str, names: list[str]) -> str | None:
    """For a language variant (``<assignment>-<lang>``, autograder.i18n) whose code cells and
    nbgrader metadata equal its English assignment's (and whose data files are the same), the
    English one's name: its grades are the variant's, so grading it again proves nothing new."""
    from autograder.i18n import split_variant

    base, lang = split_variant(name)
    if lang is None or base not in names or base == name:
        return None
    a, b = root / "source" / name, root / "source" / base
    if _code_cells(a) != _code_cells(b):
        return None
    return base if _data_files(a) == _data_files(b) else None


def _data_files(folder: Path) -> dict[str, bytes]:
    return {k: v.read_bytes() for k, v in _files(folder).items() if not k.endswith(".ipynb")}


def check(root: Path, names: list[str] | None = None, *, workdir: Path | None = None,
          jobs: int = 2, grade_variants: bool = False) -> list[Finding]:
    """Run the four conditions on every assignment (or ``names``) of the course at ``root``.
    A language variant with the same code cells, metadata and data as its English assignment
    (checked here) inherits the English one's conditions 3 and 4 unless ``grade_variants``."""
    root = Path(root).resolve()
    names = names or grading.assignments(root)
    if not names:
        return [Finding("(course)", "assignments", False, f"no assignment in {root / 'source'}")]
    own_tmp = workdir is None
    base = Path(tempfile.mkdtemp(prefix="course-check-")) if own_tmp else Path(workdir)
    findings: list[Finding] = []
    try:
        copy = make_copy(root, base / "course")
        committed = base / "committed-release"
        for name in names:
            if (root / "release" / name).is_dir():
                shutil.copytree(root / "release" / name, committed / name)
        to_grade = []
        inherit = {} if grade_variants else {
            n: b for n in names if (b := same_code_as(root, n, names))}
        for name in names:
            # 1. release up to date
            grading.release(copy, [name])
            diff = compare_release(committed / name, copy / "release" / name)
            findings.append(Finding(name, CONDITIONS[0], not diff, "; ".join(diff[:5])))
            # 2. no markers in the committed release
            hits = find_markers(committed / name)
            findings.append(Finding(name, CONDITIONS[1], not hits and (committed / name).is_dir(),
                                    "; ".join(hits[:5]) if hits else
                                    ("" if (committed / name).is_dir() else "no release/ folder")))
            # 3 and 4: submit the source and the committed (untouched) release as students.
            if name in inherit:
                continue
            for student, folder in ((SOURCE_STUDENT, root / "source" / name),
                                    (RELEASE_STUDENT, committed / name)):
                dest = copy / "submitted" / student / name
                if folder.is_dir():
                    shutil.copytree(folder, dest, ignore=shutil.ignore_patterns(
                        ".ipynb_checkpoints", "outputs", ".course-data"))
                    to_grade.append((name, student))
        # One grading run over every assignment, so `jobs` submissions run at once throughout.
        results = {(r.assignment, r.student): r for r in grading.grade(
            copy, None, jobs=jobs, students=[SOURCE_STUDENT, RELEASE_STUDENT])}
        for name in names:
            base = inherit.get(name, name)
            for student, full in ((SOURCE_STUDENT, True), (RELEASE_STUDENT, False)):
                finding = _score_finding(results.get((base, student)), name, full=full)
                if base != name:
                    finding.detail = f"as {base} (same code cells, metadata and data): {finding.detail}"
                findings.append(finding)
    finally:
        if own_tmp:
            shutil.rmtree(base, ignore_errors=True)
    return findings


def _score_finding(result: grading.SubmissionResult | None, name: str, *, full: bool) -> Finding:
    condition = CONDITIONS[2] if full else CONDITIONS[3]
    if result is None:
        return Finding(name, condition, False, "nothing to grade")
    if result.status != "graded":
        return Finding(name, condition, False, "; ".join(result.reasons))
    if not result.cells:
        return Finding(name, condition, False, "the assignment has no autograded cell")
    maxima = result.cell_max
    wrong = [f"{cell} scored {score:g}" + (f" of {maxima[cell]:g}" if full else "")
             for cell, score in result.cells.items()
             if (full and score != maxima[cell]) or (not full and score != 0)]
    detail = "; ".join(wrong)
    if wrong and result.reasons:
        detail += " (" + "; ".join(result.reasons[:4]) + ")"
    total = f"{result.auto_score:g}/{result.auto_max:g} on {len(result.cells)} autograded cells"
    return Finding(name, condition, not wrong, detail or total)


def main(root: Path, names: list[str] | None = None, *, keep: bool = False,
         grade_variants: bool = False) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="course-check-")) if keep else None
    findings = check(root, names, workdir=workdir, grade_variants=grade_variants)
    for finding in findings:
        print(finding)
    if keep:
        print(f"kept the course copy in {workdir}")
    bad = [f for f in findings if not f.ok]
    print(f"\n{len(findings) - len(bad)} of {len(findings)} checks passed", file=sys.stderr)
    return 1 if bad else 0


def demo(root: Path, *, jobs: int = 2, variants: bool = False, names: list[str] | None = None,
         kinds: str = "all") -> int:
    """The instructor's loop on a temporary copy, proving itself: release, sample submissions of
    every kind (honest, robustness, attacks; ``kinds`` narrows it: ``honest`` or a comma list) of
    each English assignment (and language variant with ``variants``), grade, feedback, CSV export,
    the table; then every sample's score against the score it is built to get
    (:func:`autograder.samples.designed_score`). Exit 1 when any differs, or when a submission
    built to be graded was not (and 0 only when every one is as designed)."""
    import nbformat

    from autograder import samples
    from autograder.i18n import split_variant

    if kinds == "all":
        chosen = [k for k in samples.KINDS if k not in samples.RESOURCES]
    elif kinds == "honest":
        chosen = list(samples.HONEST)
    else:
        chosen = [k.strip() for k in kinds.split(",") if k.strip()]
        unknown = sorted(set(chosen) - set(samples.KINDS))
        if unknown:
            raise grading.GradingError(f"unknown sample kinds {unknown}; choose from "
                                       f"{', '.join(samples.KINDS)}")
    base = Path(tempfile.mkdtemp(prefix="course-demo-"))
    copy = make_copy(Path(root).resolve(), base)
    print(f"course copy: {copy}")
    for folder in grading.release(copy, names):
        print(f"released {folder.relative_to(copy)}")
    designed: dict[tuple[str, str], float | None] = {}
    for name in names or grading.assignments(copy):
        if not (variants or split_variant(name)[1] is None or names):
            continue
        students = samples.write_samples(copy, name, chosen, prefix="sample-")
        notebooks = sorted((copy / "source" / name).glob("*.ipynb"))
        for student, kind in zip(students, chosen, strict=True):
            score = 0.0
            for path in notebooks:
                value = samples.designed_score(kind, nbformat.read(
                    copy / "release" / name / path.name, 4), nbformat.read(path, 4))
                score = None if value is None or score is None else score + value
            designed[(name, student)] = score
    results = grading.grade(copy, jobs=jobs)
    print(grading.summary_table(results))
    files = grading.feedback(copy)
    print(f"feedback: {len(files)} HTML files under {copy / 'feedback'}")
    print(f"grades: {grading.export(copy)}")
    wrong = []
    by_key = {(r.assignment, r.student): r for r in results}
    for key, score in sorted(designed.items()):
        result = by_key.get(key)
        if result is None:
            wrong.append(f"{key[0]} {key[1]}: not graded at all")
        elif score is None:
            if result.status != "failed":
                wrong.append(f"{key[0]} {key[1]}: built to be refused, but was graded")
        elif result.status != "graded" or result.auto_score != score:
            got = f"{result.auto_score:g}" if result.status == "graded" else result.status
            wrong.append(f"{key[0]} {key[1]}: scored {got}, built to score {score:g}")
    if wrong:
        print("\nNOT AS DESIGNED:\n  " + "\n  ".join(wrong), file=sys.stderr)
        return 1
    print(f"\nall {len(designed)} samples scored as designed")
    return 0
