"""autograder.nbgrader_runner: an nbgrader command forked from the server behaves as
`python -m nbgrader` does (arguments, working folder, environment, config file, output at the
file-descriptor level, exit codes, time limit), one command's process shares nothing with
another's, and nothing outlives the process that asked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from autograder import nbgrader_runner as runner

REPO = Path(__file__).resolve().parent.parent


#: A command that reads the config file (three times, as nbgrader does) and exits 0 once the
#: config gives it an exchange folder it can list.
LIST = ["list"]


def _config(folder: Path, body: str) -> Path:
    """A working folder whose nbgrader_config.py (read by nbgrader at start) runs ``body``, with
    an exchange of its own for `nbgrader list`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "exchange").mkdir(exist_ok=True)
    (folder / "nbgrader_config.py").write_text(
        textwrap.dedent(body) + f"\nc = get_config()\nc.Exchange.root = {str(folder / 'exchange')!r}\n"
        "c.CourseDirectory.course_id = 'course'\n")
    return folder


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(params=["fork", "subprocess"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AUTOGRADER_NBGRADER", request.param)
    return request.param


def test_a_command_sees_its_folder_environment_and_config_and_its_output_is_captured(
        tmp_path: Path, mode: str) -> None:
    folder = _config(tmp_path / "work", """
        import os, subprocess, sys
        print("config read in", os.getcwd(), "mark", os.environ.get("COURSE_CELL_TIMEOUT"))
        print("parent", os.getppid())
        print("on stderr", file=sys.stderr)
        subprocess.run(["sh", "-c", "echo from a child process; echo child stderr >&2"])
        sys.stdout.flush()
    """)
    done = runner.run(LIST, folder, _env(COURSE_CELL_TIMEOUT="42"))
    assert done.returncode == 0, done.stderr
    assert f"config read in {folder} mark 42" in done.stdout
    forked = f"parent {runner._server().proc.pid}" in done.stdout if mode == "fork" else False
    assert forked == (mode == "fork"), "the fork server ran it exactly when asked to"
    assert "from a child process" in done.stdout
    assert "on stderr" in done.stderr and "child stderr" in done.stderr
    assert "Released assignments" in done.stderr  # nbgrader's own log
    assert done.args[1:3] == ["-m", "nbgrader"]


def test_a_command_in_another_environment_gets_a_server_started_in_it(tmp_path: Path) -> None:
    """Modules the server imported may have read a variable when imported: a command whose
    environment differs (outside the per-run variables) is forked from a new server started in
    that environment; the replaced one finishes and ends, its folder with it. Per-run variables
    keep the server."""
    folder = _config(tmp_path / "work", """
        import os
        print("parent", os.getppid(), "offline", os.environ.get("HF_HUB_OFFLINE"))
    """)

    def parent(done: subprocess.CompletedProcess) -> str:
        assert done.returncode == 0, done.stderr
        return next(x for x in done.stdout.splitlines() if x.startswith("parent"))

    first = parent(runner.run(LIST, folder, _env()))
    server, old_folder = runner._server().proc.pid, runner._server().folder
    assert first.startswith(f"parent {server} ")
    assert parent(runner.run(LIST, folder, _env(NBG_ROOT="/elsewhere"))).startswith(
        f"parent {server} "), "a per-run variable keeps the server"
    other = "0" if os.environ.get("HF_HUB_OFFLINE") == "1" else "1"
    line = parent(runner.run(LIST, folder, _env(HF_HUB_OFFLINE=other)))
    new = runner._server().proc.pid
    assert new != server and line == f"parent {new} offline {other}", line
    deadline = time.monotonic() + 15
    while (_alive(server) or Path(old_folder).exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(server) and not Path(old_folder).exists()


def test_both_ways_give_the_same_answer_to_a_failing_command(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _config(tmp_path / "work", f"get_config().CourseDirectory.root = "
                                        f"{str(tmp_path / 'course')!r}")
    answers = {}
    for way in ("fork", "subprocess"):
        monkeypatch.setenv("AUTOGRADER_NBGRADER", way)
        done = runner.run(["generate_assignment", "no-such-assignment"], folder, _env())
        answers[way] = (done.returncode, [line for line in done.stderr.splitlines()
                                          if "ERROR" in line])
    assert answers["fork"] == answers["subprocess"]
    assert answers["fork"][0] != 0 and answers["fork"][1], answers


def test_exit_codes_and_signals_are_reported_as_subprocess_does(tmp_path: Path, mode: str) -> None:
    code = runner.run(LIST, _config(tmp_path / "a", "raise SystemExit(3)"), _env())
    assert code.returncode == 3
    killed = runner.run(LIST, _config(
        tmp_path / "b", "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)"), _env())
    assert killed.returncode == -signal.SIGTERM


def test_past_its_time_limit_a_command_is_killed_and_says_so(tmp_path: Path, mode: str) -> None:
    folder = _config(tmp_path / "work", """
        import os, sys, time
        print(os.getpid(), flush=True)
        time.sleep(120)
    """)
    start = time.monotonic()
    done = runner.run(LIST, folder, _env(), timeout=3)
    assert done.returncode == 124
    assert done.stderr.rstrip().endswith("timed out after 3 s")
    assert time.monotonic() - start < 60
    if mode == "fork":  # the output up to the kill is kept, and the process is gone
        pid = int(done.stdout.split()[0])
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid)


def test_commands_at_once_run_in_their_own_processes(tmp_path: Path) -> None:
    results = {}

    def one(name: str) -> None:
        folder = _config(tmp_path / name, f"""
            import os, time
            import nbgrader
            if not hasattr(nbgrader, "SHARED"):  # the config file is read three times
                nbgrader.SHARED = sorted(getattr(nbgrader, "SEEN", set()) | {{{name!r}}})
                nbgrader.SEEN = set(nbgrader.SHARED)
                time.sleep(1)
                print("pid", os.getpid(), "saw", nbgrader.SHARED, flush=True)
        """)
        results[name] = runner.run(LIST, folder, _env())

    threads = [threading.Thread(target=one, args=(n,)) for n in ("first", "second", "third")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pids = set()
    for name, done in results.items():
        assert done.returncode == 0, done.stderr
        line = next(x for x in done.stdout.splitlines() if x.startswith("pid"))
        assert line.endswith(f"saw ['{name}']"), line  # nothing of another command's
        pids.add(line.split()[1])
    assert len(pids) == 3


def test_a_dead_server_is_started_again(tmp_path: Path) -> None:
    folder = _config(tmp_path / "work", "")
    assert runner.run(LIST, folder, _env()).returncode == 0
    server = runner._server()
    server.proc.kill()
    server.proc.wait()
    assert runner.run(LIST, folder, _env()).returncode == 0
    assert server.proc.poll() is None


def test_a_script_without_a_main_guard_and_nothing_outlives_it(tmp_path: Path) -> None:
    """An instructor's script that grades at import time (no `if __name__ == "__main__"`) runs
    once; when it ends, the server and a command still running end with it."""
    quick = _config(tmp_path / "quick", "")
    pid_file = tmp_path / "command.pid"
    slow = _config(tmp_path / "slow", f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(120)
    """)
    script = tmp_path / "grade_everything.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, threading, time
        sys.path.insert(0, {str(REPO)!r})
        from autograder import nbgrader_runner as runner
        print("script ran", flush=True)
        done = runner.run(["list"], {str(quick)!r}, dict(os.environ))
        assert done.returncode == 0, done.stderr
        threading.Thread(target=runner.run, args=(["list"], {str(slow)!r}, dict(os.environ)),
                         daemon=True).start()
        while not os.path.exists({str(pid_file)!r}):
            time.sleep(0.1)
        print("server", runner._server().proc.pid, runner._server().folder, flush=True)
        os._exit(0)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False,
                          timeout=120, env=_env(AUTOGRADER_NBGRADER="fork"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("script ran") == 1, done.stdout
    _, pid, folder = next(x for x in done.stdout.splitlines() if x.startswith("server")).split()
    server = int(pid)
    command = int(pid_file.read_text())
    deadline = time.monotonic() + 15
    while (_alive(server) or _alive(command)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(server), "the server outlived the script"
    assert not _alive(command), "a command outlived the script"
    assert not Path(folder).exists(), "the server left its socket folder behind"


def _checker_request_env() -> dict[str, str]:
    from autograder import sandbox

    return {**sandbox.checker_env(), "PYTHONPATH": str(REPO)}


def test_a_checker_is_forked_ready_answers_and_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv(runner.CHECKER_SERVER_ENV, runner._checker_server().socket_path(
        runner._checker_env(dict(os.environ))))
    proc = runner.start_checker("selftest", _checker_request_env(), str(REPO))
    assert isinstance(proc, runner.ForkedProcess)
    assert json.loads(proc.stdout.readline()) == {"op": "ready"}
    assert proc.poll() is None
    proc.stdin.write(json.dumps({"op": "check", "notebook": "selftest", "grade_id": "no-such-test",
                                 "answers": {}}) + "\n")
    proc.stdin.flush()
    verdict = json.loads(proc.stdout.readline())
    assert verdict["op"] == "verdict" and verdict["ok"] is False, verdict
    proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
    proc.stdin.flush()
    assert proc.wait(30) == 0

    other = runner.start_checker("selftest", _checker_request_env(), str(REPO))
    assert other.pid != proc.pid
    other.kill()
    assert other.wait(30) == -signal.SIGKILL


def test_a_checker_in_another_environment_is_not_forked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Modules the server imported read some variables when imported (offline flags, cache
    folders): a request that sets them otherwise gets no fork, and the grader starts its own
    checker (CheckerProcess falls back to python -m autograder.checker)."""
    from autograder import checker

    monkeypatch.setenv(runner.CHECKER_SERVER_ENV, runner._checker_server().socket_path(
        runner._checker_env(dict(os.environ))))
    env = {**_checker_request_env(), "HF_HUB_OFFLINE": "0"}
    assert runner.start_checker("selftest", env, str(REPO)) is None
    # per-run variables may differ
    env = {**_checker_request_env(), "NBG_ROOT": "/elsewhere", "COURSE_CELL_TIMEOUT": "5"}
    forked = runner.start_checker("selftest", env, str(REPO))
    assert isinstance(forked, runner.ForkedProcess)
    forked.kill()
    forked.wait(30)
    # and without a server at all, the handle starts the plain process
    monkeypatch.delenv(runner.CHECKER_SERVER_ENV)
    handle = checker.CheckerProcess(_checker_request_env())
    proc = handle._start("selftest")
    try:
        assert isinstance(proc, subprocess.Popen)
    finally:
        handle.proc = proc
        handle.close()


def test_the_checker_server_imports_what_a_notebook_s_checks_use_before_forking(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the server: a forked checker finds its checks' heavy modules imported."""
    from autograder.checks import gpt2_imdb

    monkeypatch.setenv(runner.CHECKER_SERVER_ENV, runner._checker_server().socket_path(
        runner._checker_env(dict(os.environ))))
    proc = runner.start_checker("gpt2_imdb", _checker_request_env(), str(REPO), quiet=False)
    assert isinstance(proc, runner.ForkedProcess)
    import json

    assert json.loads(proc.stdout.readline()) == {"op": "ready"}
    status = Path(f"/proc/{proc.pid}/maps").read_text()
    assert "libtorch" in status, "torch was not loaded before the fork"
    assert {spec.partition(":")[0] for spec in gpt2_imdb.PRELOAD} >= {"torch", "sklearn.metrics"}
    proc.kill()
    proc.wait(30)


@pytest.mark.requires("sandbox")
def test_grading_scores_the_same_forked_and_from_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same submissions (honest ones and a forgery), graded through the fork servers and
    through plain `python -m nbgrader` / `python -m autograder.checker`: the same scores, cell by
    cell, and the same reasons."""
    from autograder import grading, samples
    from tests.conftest import copy_fixture_course

    kinds = ["perfect", "partial", "empty", "hook-result"]
    found = {}
    for way in ("fork", "subprocess"):
        monkeypatch.setenv("AUTOGRADER_NBGRADER", way)
        root = copy_fixture_course(tmp_path / way / "course")
        samples.write_samples(root, "selftest", kinds)
        found[way] = {r.student: (r.status, r.auto_score, r.cells, sorted(r.reasons))
                      for r in grading.grade(root, "selftest", jobs=2, timeout=6)}
    assert found["fork"] == found["subprocess"]
    assert found["fork"]["perfect"][1] == 3 and found["fork"]["empty"][1] == 0
    assert found["fork"]["hook-result"][1] == found["fork"]["empty"][1]


def test_a_replaced_server_finishes_what_it_runs(tmp_path: Path) -> None:
    """A command still running when another environment replaces its server ends as it would
    have, with its output and exit code (the old server is not told its caller is gone)."""
    slow = _config(tmp_path / "slow", """
        import time
        time.sleep(3)
        print("finished")
        raise SystemExit(5)
    """)
    quick = _config(tmp_path / "quick", "")
    results = {}
    thread = threading.Thread(target=lambda: results.update(
        slow=runner.run(LIST, slow, _env(SELECTOR="a"))))
    thread.start()
    time.sleep(1)
    assert runner.run(LIST, quick, _env(SELECTOR="b")).returncode == 0  # replaces the server
    thread.join(60)
    assert results["slow"].returncode == 5 and "finished" in results["slow"].stdout


def test_a_request_to_a_replaced_server_starts_nothing_and_is_tried_again(tmp_path: Path) -> None:
    """Between finding a server and reaching it, another environment may replace it: the
    request then starts nothing there (_NotStarted), and run() tries the current server."""
    folder = _config(tmp_path / "work", "import os\nprint('parent', os.getppid())\n")
    old_path = runner._server().socket_path(_env(SELECTOR="a"))
    old_folder = os.path.dirname(old_path)
    runner._server().socket_path(_env(SELECTOR="b"))  # replaces it; with nothing to finish, it ends
    deadline = time.monotonic() + 15
    while Path(old_folder).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with pytest.raises(runner._NotStarted):
        runner._run_forked(["nbgrader", *LIST], old_path, LIST, folder, _env(SELECTOR="a"), None)
    done = runner.run(LIST, folder, _env(SELECTOR="b"))
    assert done.returncode == 0 and f"parent {runner._server().proc.pid}" in done.stdout
