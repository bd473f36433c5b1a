"""``python -m helpers check-data``: the real CLI in a subprocess (JSON and tables, exit codes),
and check_file / format_report for notebooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import check_data

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference-data" / "mslearn-databricks"
COURSE_DATA = REPO / "source" / "02-gpt4o-jsonl" / "data"
needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason="../shared/reference-data is not present"
)
JSON_KEYS = {
    "path", "model", "encoding", "examples", "valid", "errors", "warnings",
    "size_tokens",
}
DIST_KEYS = {"count", "min", "max", "mean", "median", "p10", "p90"}


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "helpers", "check-data", *map(str, args)],
        check=False, capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )


def json_objects(proc: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def example(i: int) -> str:
    return json.dumps({"messages": [
        {"role": "system", "content": "You are a course assistant."},
        {"role": "user", "content": f"Question {i}?"},
        {"role": "assistant", "content": f"Answer {i}."},
    ]})


@pytest.fixture
def valid_file(tmp_path) -> Path:
    path = tmp_path / "valid.jsonl"
    path.write_text("\n".join(example(i) for i in range(10)) + "\n", encoding="utf-8-sig")
    return path


@pytest.fixture
def invalid_file(tmp_path) -> Path:
    path = tmp_path / "invalid.jsonl"
    lines = [example(i) for i in range(10)]
    lines[2] = "{broken"
    lines[6] = json.dumps({"messages": [{"role": "user", "content": "only a question"}]})
    path.write_bytes("\r\n".join(lines).encode())
    return path


@needs_reference
@pytest.mark.parametrize(
    ("model_args", "encoding", "expected"),
    [
        # the cookbook's counts of the lab's data (tests/test_tokens.py) + 1 per message (3 each):
        # the size is the cookbook's count with 4 instead of 3 per message, an upper bound
        ((), "o200k_base", {"min": 49, "max": 62, "mean": 52.8, "median": 51.5}),
        (("--model", "gpt-35-turbo"), "cl100k_base",
         {"min": 50, "max": 65, "mean": 55.1, "median": 53.5}),
    ],
)
def test_acceptance_figures_on_the_lab_data(model_args, encoding, expected):
    proc = cli(REFERENCE / "training_set.jsonl", *model_args, "--json")
    assert proc.returncode == 0, proc.stderr
    [result] = json_objects(proc)
    assert set(result) == JSON_KEYS
    assert result["encoding"] == encoding
    assert result["examples"] == 10 and result["valid"] is True
    assert result["errors"] == [] and result["warnings"] == []
    size = result["size_tokens"]
    assert set(size) == DIST_KEYS and size["count"] == 10
    assert {k: size[k] for k in expected} == pytest.approx(expected)


@needs_reference
def test_human_table_on_the_lab_data():
    proc = cli(REFERENCE / "training_set.jsonl", REFERENCE / "validation_set.jsonl")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count("VALID") == 2
    assert "o200k_base" in out and "CRLF" in out and "no BOM" in out
    assert "tokens (size)" in out and "assistant tokens" not in out and "epochs" not in out
    size_row = next(line for line in out.splitlines() if "tokens (size)" in line)
    assert size_row.split()[2:7] == ["10", "49", "62", "52.8", "51.5"]
    assert "65,536 tokens per example" in out


def test_exit_0_when_all_files_are_valid(valid_file):
    proc = cli(valid_file, valid_file, "--json")
    assert proc.returncode == 0, proc.stderr
    assert [r["valid"] for r in json_objects(proc)] == [True, True]


def test_exit_1_with_errors_by_line(valid_file, invalid_file):
    proc = cli(valid_file, invalid_file, "--json")
    assert proc.returncode == 1, proc.stderr
    ok, bad = json_objects(proc)
    assert ok["valid"] is True and bad["valid"] is False
    assert [(e["line"], e["kind"]) for e in bad["errors"]] == [
        (3, "invalid_json"), (7, "example_missing_assistant_message"),
    ]
    assert all(set(e) == {"line", "kind", "message"} for e in bad["errors"])
    assert [(w["line"], w["kind"]) for w in bad["warnings"]] == [(7, "missing_system_message")]
    # the distributions cover the 8 examples without errors
    assert bad["examples"] == 10 and bad["size_tokens"]["count"] == 8

    table = cli(invalid_file)
    assert table.returncode == 1
    assert "INVALID" in table.stdout
    assert "line 3" in table.stdout and "invalid_json" in table.stdout
    assert "line 7" in table.stdout and "example_missing_assistant_message" in table.stdout
    assert "sizes count the 8 examples without errors" in table.stdout


def test_exit_2_when_a_file_cannot_be_read(valid_file, invalid_file, tmp_path):
    missing = tmp_path / "missing.jsonl"
    proc = cli(valid_file, missing, invalid_file, "--json")
    assert proc.returncode == 2
    assert "missing.jsonl" in proc.stderr and "no such file" in proc.stderr
    results = json_objects(proc)
    assert len(results) == 3  # one object per file, the unreadable one included
    assert set(results[1]) == JSON_KEYS and results[1]["valid"] is False
    assert results[1]["errors"][0]["kind"] == "unreadable"
    assert results[2]["valid"] is False  # the files after it are still checked

    table = cli(tmp_path)  # a folder
    assert table.returncode == 2 and "folder" in table.stderr


def test_unknown_model_exits_2_with_the_known_ones(valid_file):
    proc = cli(valid_file, "--model", "llama-3")
    assert proc.returncode == 2
    assert "Unknown model" in proc.stderr and "gpt-4o" in proc.stderr


def test_model_changes_the_limit(tmp_path):
    path = tmp_path / "long.jsonl"
    lines = [example(i) for i in range(10)]
    lines[4] = json.dumps({"messages": [
        {"role": "user", "content": "Say 'token' many times."},
        {"role": "assistant", "content": "token " * 17_000},
    ]})
    path.write_text("\n".join(lines))
    [ok] = json_objects(cli(path, "--json", "--model", "gpt-4o-mini"))
    assert ok["valid"] and ok["size_tokens"]["max"] > 16_385
    proc = cli(path, "--json", "--model", "gpt-35-turbo-0125")
    assert proc.returncode == 1
    [bad] = json_objects(proc)
    assert [(e["line"], e["kind"]) for e in bad["errors"]] == [(5, "example_too_long")]


def test_help_lists_the_options():
    proc = subprocess.run([sys.executable, "-m", "helpers", "check-data", "--help"],
                          check=False, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0
    assert "--model" in proc.stdout and "--json" in proc.stdout


def test_course_data_passes_check_data():
    proc = cli(COURSE_DATA / "training_set.jsonl", COURSE_DATA / "validation_set.jsonl", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    train, valid = json_objects(proc)
    assert train["examples"] >= 40 and valid["examples"] >= 12
    assert train["warnings"] == [] and valid["warnings"] == []


def test_check_file_and_format_report_in_process(valid_file, invalid_file):
    result = check_data.check_file(valid_file, model="gpt-4o")
    assert set(result) == JSON_KEYS
    assert result["valid"] and result["examples"] == 10
    json.dumps(result)  # JSON-serialisable as is
    text = check_data.format_report(result)
    assert str(valid_file) in text and "VALID" in text and "tokens (size)" in text
    assert "BOM" not in text  # file facts only when given
    assert "with BOM" in check_data.format_report(result, {"bom": True, "line_endings": "LF"})

    bad = check_data.format_report(check_data.check_file(invalid_file))
    assert "INVALID: 2 error(s)" in bad and "line 3" in bad
    with pytest.raises(FileNotFoundError):
        check_data.check_file(valid_file.parent / "nope.jsonl")


def test_table_groups_a_repeated_warning_by_line_ranges(tmp_path):
    no_system = [json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                          {"role": "assistant", "content": f"a{i}"}]})
                 for i in range(6)]
    lines = no_system[:2] + [example(2)] + no_system[2:] + [example(i) for i in range(10, 14)]
    path = tmp_path / "no-system.jsonl"
    path.write_text("\n".join(lines))
    result = check_data.check_file(path)
    assert result["valid"] and len(result["warnings"]) == 6
    text = check_data.format_report(result)
    rows = [row for row in text.splitlines() if "missing_system_message" in row]
    assert len(rows) == 1 and "lines 1-2, 4-7" in rows[0]
