"""Hidden-test checks of the course's self-test assignment (``tests/fixtures/course/source/selftest``).

The self-test assignment is the small notebook the grading machinery is tested on. Its hidden
test cells call these functions, exactly as the real assignments' hidden tests call
``autograder.gpt2`` and ``autograder.gpt4o``: the logic lives here, the notebook cell stays one call.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def check_add(add: Callable[[object, object], object]) -> None:
    """``add`` adds integers, floats and negative numbers."""
    for a, b in [(0, 0), (-4, 9), (2.5, 0.25), (10**12, 1)]:
        got = add(a, b)
        assert got == a + b, f"add({a!r}, {b!r}) should be {a + b!r}, got {got!r}"


def check_mean(mean: Callable[[list[float]], float]) -> None:
    """``mean`` is the arithmetic mean, exact for a single value and for large lists."""
    cases = [[5.0], [1, 2, 3, 4], [-1, 1], [0.1] * 10, list(range(1001))]
    for values in cases:
        expected = math.fsum(values) / len(values)
        got = mean(values)
        assert math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-12), (
            f"mean of {len(values)} values starting {values[:3]} should be {expected!r}, got {got!r}"
        )
