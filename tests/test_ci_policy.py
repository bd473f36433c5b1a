"""No silent skips under CI: a test that needs something the machine lacks (the bubblewrap
sandbox, network namespaces, a browser, Java) is skipped with its reason on a learner's machine
and FAILS under ``CI=true`` with a message that says what to install (tests/conftest.py,
"machine requirements"); tests/offline.sh's fallback without a network namespace does the same.

Each case runs pytest (or offline.sh) in a child process on a machine made to lack the thing:
a PATH without ``bwrap``/``java``/``unshare``, or a fake ``bwrap`` that cannot create namespaces,
as unprivileged containers refuse them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, REQUIREMENTS, require

TINY_MODULE = '''
import pytest
from pathlib import Path

pytestmark = pytest.mark.requires("sandbox")


@pytest.fixture(scope="module")
def graded():
    # what a grading module does first; it must not run when the sandbox is missing
    Path({touched!r}).write_text("the fixture ran")
    return 3


def test_needs_the_sandbox(graded):
    assert graded == 3


@pytest.mark.requires("java")
def test_needs_java_too(graded):
    pass
'''

OTHER_MODULE = '''
from tests.conftest import require


def test_require_inside_a_test():
    require("namespaces")


def test_plain_arithmetic_runs_anyway():
    assert 1 + 1 == 2
'''

FAKE_BWRAP = """#!/bin/sh
echo "bwrap: No permissions to create a new namespace, likely because the kernel does not \
allow non-privileged user namespaces." >&2
exit 1
"""


def _run_tiny_module(tmp_path: Path, *, ci: bool, fake_bwrap: bool = False) -> tuple[int, str]:
    """pytest on the tiny module with the suite's conftest, on a PATH with no bwrap, java or
    unshare (or with a bwrap that is refused its namespaces); returns exit code and output."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if fake_bwrap:
        (bin_dir / "bwrap").write_text(FAKE_BWRAP)
        (bin_dir / "bwrap").chmod(0o755)
    touched = tmp_path / "fixture-ran"
    module = tmp_path / "test_tiny.py"
    module.write_text(TINY_MODULE.format(touched=str(touched)))
    (tmp_path / "test_other.py").write_text(OTHER_MODULE)
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    env = {k: v for k, v in os.environ.items()
           if k not in {"CI", "AUTOGRADER_SANDBOX", "PYTEST_ADDOPTS"}}
    env.update(PATH=str(bin_dir), PYTHONPATH=str(REPO))
    if ci:
        env["CI"] = "true"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-c", str(tmp_path / "pytest.ini"),
         "--rootdir", str(tmp_path), "-rA", str(module), str(tmp_path / "test_other.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert "fixture ran" not in (touched.read_text() if touched.exists() else ""), (
        "the module-scoped fixture ran although its tests lack the sandbox")
    return result.returncode, result.stdout + result.stderr


def test_under_ci_a_missing_bubblewrap_fails_the_run_and_says_what_to_install(tmp_path) -> None:
    code, out = _run_tiny_module(tmp_path, ci=True)
    assert code == 1, out
    # the marked tests error in their set-up (before their fixtures), require() fails its test
    assert "1 failed, 1 passed, 2 errors" in out, out
    assert "skipped" not in out.splitlines()[-1], out
    assert "CI is set, so a missing requirement fails instead of skipping" in out
    assert "bubblewrap (bwrap) is not installed" in out
    assert "apt-get install -y bubblewrap" in out and "make setup-system" in out
    # each missing thing names its own package
    assert "apt-get install -y openjdk-17-jre-headless" in out
    assert "apt-get install -y util-linux" in out
    # and the end of the run lists each missing requirement once
    summary = out.split("missing under CI", 1)[1].split("short test summary info", 1)[0]
    assert summary.count("apt-get install -y bubblewrap") == 1, summary
    assert "no java on PATH" in summary and "unshare (util-linux) is not installed" in summary


def test_under_ci_a_bubblewrap_without_namespaces_fails_too(tmp_path) -> None:
    """Installed but refused its namespaces (an unprivileged container): not a reason to pass."""
    code, out = _run_tiny_module(tmp_path, ci=True, fake_bwrap=True)
    assert code == 1, out
    assert "cannot create namespaces here" in out
    assert "No permissions to create a new namespace" in out
    assert "allow unprivileged user namespaces" in out


def test_outside_ci_the_same_tests_skip_with_their_reasons(tmp_path) -> None:
    code, out = _run_tiny_module(tmp_path, ci=False)
    assert code == 0, out
    assert "1 passed, 3 skipped" in out, out
    assert "failed" not in out
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert len(skips) == 3, out
    assert any("bubblewrap (bwrap) is not installed" in line and "apt-get install -y bubblewrap"
               in line for line in skips), skips
    assert any("unshare (util-linux) is not installed" in line for line in skips), skips


def test_an_unknown_requirement_is_an_error_not_a_skip() -> None:
    with pytest.raises(ValueError, match="unknown requirement.*'bwrapp'.*known:.*'sandbox'"):
        require("bwrapp")


def test_every_requirement_names_what_to_install_or_allow() -> None:
    for name, requirement in REQUIREMENTS.items():
        assert requirement.fix.strip(), name
        assert ("install" in requirement.fix) or ("Run" in requirement.fix), (name, requirement.fix)


# --------------------------------------------------------------------------- tests/offline.sh

REFUSING_UNSHARE = """#!/bin/sh
echo "unshare: unshare failed: Operation not permitted" >&2
exit 1
"""


def _offline_sh(tmp_path: Path, *, ci: bool, unshare: str | None) -> subprocess.CompletedProcess:
    """tests/offline.sh running ``python -c print(...)`` where ``unshare`` is refused (a fake one
    first on PATH) or missing (a PATH without it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if unshare == "refused":
        (bin_dir / "unshare").write_text(REFUSING_UNSHARE)
        (bin_dir / "unshare").chmod(0o755)
        path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    else:
        path = str(bin_dir)  # nothing at all: no unshare
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "COURSE_NO_UNSHARE"}}
    env["PATH"] = path
    if ci:
        env["CI"] = "true"
    bash = "/bin/bash" if Path("/bin/bash").exists() else "/usr/bin/bash"
    return subprocess.run(
        [bash, str(REPO / "tests" / "offline.sh"), sys.executable, "-c",
         "import os; print('the command ran', os.environ.get('HF_HUB_OFFLINE'))"],
        env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("unshare", "says"), [
    ("refused", ("unshare -n and unshare -rn are both refused: unshare: unshare failed: "
                 "Operation not permitted")),
    ("missing", "unshare is not installed"),
])
def test_offline_sh_under_ci_fails_without_a_network_namespace(tmp_path, unshare, says) -> None:
    result = _offline_sh(tmp_path, ci=True, unshare=unshare)
    assert result.returncode == 1, result
    assert "the command ran" not in result.stdout
    assert "CI is set and no network namespace can be made here" in result.stderr
    assert says in result.stderr
    fix = "allow unprivileged user namespaces" if unshare == "refused" else \
        "apt-get install -y util-linux"
    assert fix in result.stderr


def test_offline_sh_outside_ci_falls_back_with_a_warning(tmp_path) -> None:
    result = _offline_sh(tmp_path, ci=False, unshare="refused")
    assert result.returncode == 0, result
    assert result.stdout.strip() == "the command ran 1"
    assert "running with HF_HUB_OFFLINE=1 only" in result.stderr
    assert "Operation not permitted" in result.stderr


def test_spark_connect_fails_with_import_error_in_a_test_worker():
    """In a pytest-xdist worker (a bare ``__main__``) pyspark took ``import pyspark.sql.connect``
    for its doctests and called ``sys.exit(0)`` (MLflow's log_model imports it): tests/conftest.py
    makes it raise ImportError there, as it does in any other process without grpc."""
    code = ("import tests.conftest, mlflow.types.utils as u\n"
            "print('spark dataframe:', u._is_spark_df(1))\n")
    env = {**os.environ, "PYTEST_XDIST_WORKER": "gw0"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, check=False,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "spark dataframe: False" in proc.stdout, proc.stderr[-2000:]
