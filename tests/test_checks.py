"""Every graded cell's check, run on wrong answers written as students write them (each must
fail, for its own reason) and on right answers written differently from the solution (each must
pass), in this process: tests/check_harness.py. The same answers go through the real grading path
in tests/test_answers.py."""

from __future__ import annotations

import pytest

from tests import answer_variants as variants
from tests.check_harness import judge, run_notebook

CASES = [("01-gpt2-imdb", "gpt2_imdb", variants.GPT2), ("02-gpt4o-jsonl", "gpt4o_jsonl",
                                                       variants.GPT4O)]


def _params(kind: str):
    for assignment, notebook, table in CASES:
        for answer_id, entry in table.items():
            for number, item in enumerate(entry[kind]):
                label = item[0] if kind == "wrong" else f"right-{number}"
                yield pytest.param(assignment, notebook, answer_id, item,
                                   id=f"{notebook}-{answer_id}-{label}")


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory: pytest.TempPathFactory, fast_env) -> dict:
    out = {}
    for assignment, notebook, _ in CASES:
        workdir = tmp_path_factory.mktemp(notebook)
        out[notebook] = (run_notebook(assignment, notebook, workdir), workdir)
    return out


@pytest.fixture(scope="module")
def fast_env(tmp_path_factory: pytest.TempPathFactory):
    import os

    saved = {k: os.environ.get(k) for k in ("COURSE_FAST", "COURSE_OUTPUT_DIR", "MPLBACKEND")}
    os.environ.update(COURSE_FAST="1", MPLBACKEND="Agg",
                      COURSE_OUTPUT_DIR=str(tmp_path_factory.mktemp("outputs")))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.mark.parametrize("assignment, notebook, answer_id, item", list(_params("wrong")))
def test_wrong_answer_fails_its_cell_for_its_reason(notebooks, assignment, notebook, answer_id,
                                                    item) -> None:
    label, source, expected = item
    base, workdir = notebooks[notebook]
    verdict = judge(base, workdir, notebook, answer_id, variants.TESTS[answer_id], source)
    assert not verdict.ok, f"{label}: passed"
    assert expected in verdict.message, f"{label}: {verdict.message}"


@pytest.mark.parametrize("assignment, notebook, answer_id, item", list(_params("right")))
def test_right_answer_written_differently_passes(notebooks, assignment, notebook, answer_id,
                                                 item) -> None:
    base, workdir = notebooks[notebook]
    verdict = judge(base, workdir, notebook, answer_id, variants.TESTS[answer_id], item)
    assert verdict.ok, verdict.message


@pytest.mark.parametrize("notebook", ["gpt2_imdb", "gpt4o_jsonl"])
def test_the_solution_passes_every_check(notebooks, notebook) -> None:
    from autograder import checker

    base, _workdir = notebooks[notebook]
    tests = [t for a, t in variants.TESTS.items()
             if a in (variants.GPT2 if notebook == "gpt2_imdb" else variants.GPT4O)]
    for test_id in tests:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="chk-", dir="/tmp") as sockets:
            verdict = checker.decide(notebook, test_id, checker.LocalProbe(dict(base), sockets))
        assert verdict.ok, f"{test_id}: {verdict.message}"
