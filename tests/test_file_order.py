"""tests/file_order.py: the suite's files run longest first, whole, and a bad record changes
only the order, never what runs."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests import file_order
from tests.conftest import REPO


@dataclass
class Item:
    nodeid: str


def _ids(items: list[Item]) -> list[str]:
    return [i.nodeid for i in items]


def test_longest_file_first_and_each_file_keeps_its_order() -> None:
    items = [Item("tests/test_a.py::one"), Item("tests/test_b.py::one"),
             Item("tests/test_a.py::two"), Item("tests/test_c.py::one"),
             Item("tests/test_b.py::two[x]")]
    out = file_order.ordered(items, {"tests/test_b.py": 90.0, "tests/test_a.py": 3.5})
    assert _ids(out) == ["tests/test_b.py::one", "tests/test_b.py::two[x]",
                         "tests/test_a.py::one", "tests/test_a.py::two",
                         "tests/test_c.py::one"]  # no record: last


def test_unknown_and_equal_files_keep_collection_order() -> None:
    items = [Item("tests/test_z.py::t"), Item("tests/test_y.py::t"), Item("tests/test_x.py::t")]
    assert _ids(file_order.ordered(items, {})) == _ids(items)
    same = {"tests/test_z.py": 5.0, "tests/test_y.py": 5.0, "tests/test_x.py": 5.0}
    assert _ids(file_order.ordered(items, same)) == _ids(items)


def test_a_missing_or_broken_record_is_no_record(tmp_path: Path) -> None:
    assert file_order.load(tmp_path / "absent.json") == {}
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert file_order.load(broken) == {}
    broken.write_text("[1, 2]")
    assert file_order.load(broken) == {}
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps({"tests/test_a.py": 2, "tests/test_b.py": "slow", "tests/test_c.py": 1.5}))
    assert file_order.load(mixed) == {"tests/test_a.py": 2.0, "tests/test_c.py": 1.5}


def test_the_record_names_files_that_exist() -> None:
    record = file_order.load()
    assert record, "tests/durations.json is missing or empty: refresh it (see tests/file_order.py)"
    missing = sorted(p for p in record if not (REPO / p).is_file())
    assert not missing, f"tests/durations.json names files that are gone: {missing}; refresh it"


def _pytest(suite: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in ``suite`` with the plugin copy ``order_plugin`` and nothing of this repository."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "order_plugin",
                           "-p", "no:cacheprovider", *args],
                          cwd=suite, capture_output=True, text=True, timeout=120, check=False,
                          env={"PYTHONPATH": str(suite), "PATH": "/usr/bin:/bin"})


def test_store_durations_writes_the_record_the_order_reads(tmp_path: Path) -> None:
    """A real pytest run with --store-durations writes seconds per file, longest first."""
    suite = tmp_path / "suite"
    (suite / "tests").mkdir(parents=True)
    (suite / "tests" / "test_slow.py").write_text(
        "import time\n\ndef test_a():\n    time.sleep(0.3)\n\ndef test_b():\n    time.sleep(0.2)\n")
    (suite / "tests" / "test_quick.py").write_text("def test_c():\n    pass\n")
    record = tmp_path / "durations.json"
    # The plugin writes next to itself; run a copy of it that points at the temporary record.
    source = Path(file_order.__file__).read_text()
    line = 'RECORD = Path(__file__).with_name("durations.json")'
    assert line in source, "tests/file_order.py names its record differently: update this test"
    (suite / "order_plugin.py").write_text(source.replace(line, f"RECORD = Path({str(record)!r})"))
    run = _pytest(suite, "--store-durations", "tests")
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(record.read_text())
    assert list(data) == ["tests/test_slow.py", "tests/test_quick.py"]
    assert data["tests/test_slow.py"] >= 0.5
    # The next run reads it: the slow file now goes first, though it is collected last.
    order = _pytest(suite, "--collect-only", "tests")
    lines = [ln for ln in order.stdout.splitlines() if "::" in ln]
    assert lines[0].startswith("tests/test_slow.py::"), order.stdout
    assert lines[-1].startswith("tests/test_quick.py::"), order.stdout
