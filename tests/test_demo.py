"""`make course` proves itself: `python -m autograder demo` grades samples of every kind and exits
non-zero when any sample's score differs from the score it is built to get
(`autograder.samples.designed_score`). Run here on a fresh copy of the self-test course, through
the command line, as the Makefile runs it on the real course."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_fixture_course

pytestmark = pytest.mark.requires("sandbox")


def _demo(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               COURSE_CELL_TIMEOUT="20")
    return subprocess.run([sys.executable, "-m", "autograder", "--root", str(root), "demo",
                           "--assignments", "selftest", *args], cwd=REPO, env=env, check=False,
                          capture_output=True, text=True, timeout=1200)


def test_the_makefile_runs_the_demo() -> None:
    makefile = (REPO / "Makefile").read_text()
    course = makefile.split("\ncourse:")[1].split("\n\n")[0]
    assert "-m autograder demo" in course


#: One or more samples of each class the demo judges: honest, robustness, malicious, forgery, and
#: one built to be refused. Every kind is graded against its designed score in
#: tests/test_grading.py (`test_an_attack_scores_what_its_honest_answers_score`,
#: `test_exact_autograded_scores`); here the command proves itself on a fresh copy.
DEMO_KINDS = ("perfect", "partial", "empty", "syntax", "missing", "tamper", "hook-result",
              "transformer", "always-equal", "exit", "duplicate")


def test_every_sample_class_scores_as_designed(tmp_path: Path) -> None:
    done = _demo(copy_fixture_course(tmp_path / "course"), "--kinds", ",".join(DEMO_KINDS))
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert f"all {len(DEMO_KINDS)} samples scored as designed" in done.stdout
    for kind in DEMO_KINDS:
        assert f"sample-{kind}" in done.stdout


def test_the_demo_grades_every_kind_but_the_resource_abuses_by_default(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`make course` runs the demo with its default kinds: every sample kind, the resource abuses
    left out (they take each limit to its end)."""
    from autograder import ci_check, grading, samples

    class Chosen(Exception):
        pass

    def write_samples(root, name, kinds, prefix=""):
        raise Chosen(list(kinds))

    monkeypatch.setattr(samples, "write_samples", write_samples)
    monkeypatch.setattr(ci_check, "make_copy", lambda root, base: tmp_path)
    monkeypatch.setattr(grading, "release", lambda root, names=None: [])
    monkeypatch.setattr(grading, "assignments", lambda root: ["selftest"])
    with pytest.raises(Chosen) as chosen:
        ci_check.demo(tmp_path)
    assert chosen.value.args[0] == [k for k in samples.KINDS if k not in samples.RESOURCES]


def test_a_sample_off_its_design_fails_the_demo(tmp_path: Path) -> None:
    root = copy_fixture_course(tmp_path / "course")
    path = root / "source" / "selftest" / "selftest.ipynb"
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:  # the solution itself is now wrong: the perfect sample loses points
        cell["source"] = [line.replace("return a + b", "return a - b") for line in cell["source"]]
    path.write_text(json.dumps(nb))
    done = _demo(root, "--kinds", "perfect,empty")
    assert done.returncode == 1, done.stdout[-2000:]
    assert "NOT AS DESIGNED" in done.stderr
    assert "selftest sample-perfect: scored 1, built to score 3" in done.stderr
