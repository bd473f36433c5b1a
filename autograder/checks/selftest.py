"""Checks of the self-test assignment (``tests/fixtures/course/source/selftest``), the small
notebook the grading machinery is tested on."""

from __future__ import annotations

import math
import random

from autograder.checker import CheckFailed, Probe, check, raised

CHECKS: dict = {}


def _numbers(name: str, calls: list[list], outcomes: list[dict]) -> list[float]:
    """The numbers ``name`` returned for ``calls`` (each a list of arguments)."""
    values = []
    for args, outcome in zip(calls, outcomes, strict=True):
        shown = ", ".join(repr(a) for a in args)
        if raised(outcome):
            raise CheckFailed(f"{name}({shown}) {raised(outcome)}")
        if outcome.get("type") not in {"int", "float"}:
            raise CheckFailed(f"{name}({shown}) returned a {outcome.get('type')}; return a number")
        values.append(outcome["value"])
    return values


@check("add-tests", CHECKS)
def add_tests(probe: Probe) -> None:
    """``add`` adds integers, floats and negative numbers (the visible ``add(1, 2) == 3`` too)."""
    rng = random.Random(7)
    pairs = [(1, 2), (0, 0), (-4, 9), (2.5, 0.25), (10**12, 1)]
    pairs += [(rng.randint(-999, 999), rng.randint(-999, 999)) for _ in range(5)]
    calls = [[a, b] for a, b in pairs]
    outcomes = probe.call("add", [(args, {}) for args in calls])
    for (a, b), got in zip(pairs, _numbers("add", calls, outcomes), strict=True):
        if got != a + b:
            raise CheckFailed(f"add({a!r}, {b!r}) should be {a + b!r}, got {got!r}: return a + b")


@check("mean-tests", CHECKS)
def mean_tests(probe: Probe) -> None:
    """``mean`` is the arithmetic mean, exact for a single value and for large lists."""
    cases = [[1, 2, 3], [5.0], [1, 2, 3, 4], [-1, 1], [0.1] * 10, list(range(1001))]
    calls = [[values] for values in cases]
    outcomes = probe.call("mean", [(args, {}) for args in calls])
    for values, got in zip(cases, _numbers("mean", calls, outcomes), strict=True):
        expected = math.fsum(values) / len(values)
        if not math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-12):
            raise CheckFailed(f"mean of {len(values)} values starting {values[:3]} should be "
                              f"{expected!r}, got {got!r}")
