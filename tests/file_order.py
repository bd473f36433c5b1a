"""Longest test files first, so that pytest-xdist's workers finish together.

`make test` hands whole files to each worker (``--dist loadfile``), in the order the files are
collected (``--no-loadscope-reorder``; by default xdist puts files with MORE TESTS first, which sent
the one-test, two-minute files to the end of the run, where one worker ran them while the other
was idle). This plugin sorts the collected tests by their file's recorded duration, longest first
(the classic longest-processing-time rule), keeping each file's tests in their order; files with
no record go last, in collection order.

The record is ``tests/durations.json``: seconds per file, summed over setup, call and teardown,
from one run of the suite. Refresh it after a file's cost changes much::

    bash tests/offline.sh .venv/bin/python -m pytest -m "not slow" -n 3 --dist loadfile \\
        --no-loadscope-reorder --store-durations

Only the order depends on it: a stale or missing record never changes what runs."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

RECORD = Path(__file__).with_name("durations.json")


def load(path: Path = RECORD) -> dict[str, float]:
    """The recorded seconds per test file (``tests/test_x.py``), or ``{}`` when there is none or
    it cannot be read (the order then stays the collection order)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float))}


def ordered(items: list, durations: dict[str, float]) -> list:
    """``items`` (anything with a ``nodeid``) grouped by file, files longest first by
    ``durations``; unknown files last; the order within a file and among equals kept."""
    first_seen: dict[str, int] = {}
    for item in items:
        first_seen.setdefault(item.nodeid.split("::", 1)[0], len(first_seen))

    def key(item) -> tuple[float, int]:
        path = item.nodeid.split("::", 1)[0]
        return (-durations.get(path, 0.0), first_seen[path])

    return sorted(items, key=key)  # stable: a file's own tests keep their order


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store-durations", action="store_true", default=False,
                     help=f"write each test file's summed duration to {RECORD.name} "
                          "(tests/file_order.py orders the files by it)")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list) -> None:
    items[:] = ordered(items, load())


class _Recorder:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid.split("::", 1)[0]] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.seconds:
            record = {path: round(s, 1) for path, s in
                      sorted(self.seconds.items(), key=lambda kv: (-kv[1], kv[0]))}
            RECORD.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def pytest_configure(config: pytest.Config) -> None:
    # Only the process that sees every report writes the record: the xdist controller, or the
    # single process of a run without workers.
    if config.getoption("--store-durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Recorder(), "file-order-recorder")
