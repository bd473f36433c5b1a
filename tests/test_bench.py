"""Smoke tests of the benchmarks: each one runs with tiny sizes, prints its ratio lines and writes a
well-formed result; the summary renders them. No wall-clock figure is asserted anywhere (the
figures come from `make bench`, not from tests)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import common, summary

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(name: str, out_dir: Path, *extra: str) -> tuple[str, dict]:
    """``python -m bench.<name> --smoke --out-dir out_dir``: its output and its result JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--smoke", "--out-dir", str(out_dir), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, f"bench.{name} failed:\n{proc.stdout}\n{proc.stderr}"
    path = out_dir / f"{name}.json"
    assert path.is_file(), f"bench.{name} wrote no {path.name}:\n{proc.stdout}"
    return proc.stdout, json.loads(path.read_text())


def run_in_process(name: str, out_dir: Path, capsys) -> tuple[str, dict]:
    """``bench.<name>.main(["--smoke", ...])`` in this process (shares torch's import with the
    other tests): its output and its result JSON."""
    import importlib

    module = importlib.import_module(f"bench.{name}")
    assert module.main(["--smoke", "--out-dir", str(out_dir)]) == 0
    output = capsys.readouterr().out
    return output, json.loads((out_dir / f"{name}.json").read_text())


def check_result(name: str, output: str, data: dict, expected_ratios: list[str]) -> None:
    """The shape every result has, and a RATIO line per ratio in the output."""
    assert data["schema"] == common.SCHEMA_VERSION
    assert data["benchmark"] == name and data["profile"] == "smoke"
    assert data["command"].startswith(f"python -m bench.{name} --smoke")
    for key in ("cpu", "usable_cores", "memory_gib", "versions", "git_commit"):
        assert key in data["machine"], f"machine description lacks {key}"
    assert data["measurements"], "no measurement rows"
    names = [r["name"] for r in data["ratios"]]
    for expected in expected_ratios:
        assert any(expected in n for n in names), f"no ratio named like {expected!r} in {names}"
    for ratio in data["ratios"]:
        assert ratio["value"] is not None and math.isfinite(ratio["value"]) and ratio["value"] > 0, ratio
        kind = "RATIO" if ratio["unit"] == "x" else "FIGURE"
        assert f"{kind} {name}: {ratio['name']}:" in output, f"{kind} line missing for {ratio['name']}"
        if ratio["target"] is not None:
            assert isinstance(ratio["meets"], bool)
    assert f"RESULT {name}:" in output


def test_token_stats_smoke(tmp_path):
    output, data = run_benchmark("token_stats", tmp_path)
    check_result("token_stats", output, data, ["lab / course", "course / floor"])
    row = data["measurements"][0]
    assert row["counts_agree"] is True, "the lab's loop and helpers.tokens must count the same"
    assert row["examples"] == 200 and row["tokens"] > 0
    assert all(row[f"{k}_s"] > 0 for k in ("lab", "course", "floor"))


def test_gpt2_recipe_smoke(tmp_path, capsys):
    output, data = run_in_process("gpt2_recipe", tmp_path, capsys)
    check_result("gpt2_recipe", output, data, ["tokens per epoch", "seconds per epoch"])
    rows = {row["variant"]: row for row in data["measurements"]}
    assert {"lab", "course"} <= set(rows)
    lab, course = rows["lab"], rows["course"]
    # the lab pads every review to the maximum length: tokens per epoch = steps * 2 * max_length
    assert lab["tokens_per_epoch"] == lab["real_tokens"] / (1 - lab["padding_share"])
    assert lab["tokens_per_epoch"] == 16 * lab["max_length"]
    assert course["tokens_per_epoch"] <= 16 * course["max_length"]
    assert course["batch_size"] == lab["batch_size"] == 2
    tokens_ratio = next(r for r in data["ratios"] if r["name"].startswith("tokens per epoch"))
    assert tokens_ratio["value"] == pytest.approx(lab["tokens_per_epoch"] / course["tokens_per_epoch"])


@pytest.mark.slow
def test_grading_smoke(tmp_path):
    """Grades one sample submission of the test fixture's assignment three ways (four nbgrader
    runs: about a minute on a quiet 2-core machine, several on a busy one, hence slow)."""
    output, data = run_benchmark("grading", tmp_path)
    check_result("grading", output, data, ["plain nbgrader / --jobs 2", "--jobs 1 / --jobs 2"])
    rows = data["measurements"]
    assert {row["mode"] for row in rows} == {"plain", "jobs1", "jobs2"}
    for row in rows:
        assert list(row["scores"]) == ["bench-perfect"], "N=1 grades the perfect sample"
        assert row["scores_agree"] is True, "the three ways must give the same scores"
        assert all(score is not None for score in row["scores"].values()), row


def test_emulator_smoke(tmp_path, capsys):
    output, data = run_in_process("emulator", tmp_path, capsys)
    check_result("emulator", output, data, ["chat latency, fine-tuned / base", "upload of",
                                            "chat latency per generated token"])
    cases = {row["case"]: row for row in data["measurements"]}
    job = cases["job create -> succeeded"]
    assert job["status"] == "succeeded" and job["backend"] == "tiny"
    for which in ("base", "fine-tuned"):
        chat = cases[f"chat, {which} deployment"]
        assert chat["n"] == 2
        assert 1 <= chat["completion_tokens"] <= data["params"]["max_tokens"]
        assert 0 < chat["per_token_s"] <= chat["median_s"]
    upload = next(row for case, row in cases.items() if case.endswith(": upload"))
    assert upload["bytes"] >= 1_000_000 and upload["throughput_mib_s"] > 0


def test_cpu_accuracy_smoke(tmp_path, capsys):
    output, data = run_in_process("cpu_accuracy", tmp_path, capsys)
    check_result("cpu_accuracy", output, data, ["best accuracy within 30 min",
                                                "the course's CPU recipe: accuracy"])
    row = data["measurements"][0]
    assert row["config"] == "recipe" and row["eval_size"] == 16
    assert 0 <= row["accuracy"] <= 1 and 0 <= row["f1"] <= 1
    assert row["total_s"] >= row["train_s"] + row["eval_s"]
    assert all(r["unit"] == "" for r in data["ratios"]), "accuracies are figures, not ratios"


def test_cpu_accuracy_follows_the_recipe_and_keeps_a_stopped_sweep(tmp_path, capsys, monkeypatch):
    """The bench trains what the notebook trains: the recipe's truncation side reaches the
    tokenizer (the CPU recipe keeps a review's *last* tokens; a bench that kept the first ones
    measured 0.706 instead of 0.81). A sweep writes its result after every configuration, so a
    stopped one keeps what finished, and ``--resume`` goes on from it."""
    from bench import cpu_accuracy

    row = cpu_accuracy.run_config("recipe", {"truncation_side": "left", "train_size": 8,
                                             "eval_size": 8}, True, str(tmp_path / "work"))
    assert row["truncation_side"] == "left"

    written = []
    real_run = cpu_accuracy.run_config

    def run_and_look(name, *args):
        path = tmp_path / "cpu_accuracy.json"
        written.append(json.loads(path.read_text()) if path.exists() else None)
        return real_run(name, *args)

    monkeypatch.setattr(cpu_accuracy, "run_config", run_and_look)
    assert cpu_accuracy.main(["--smoke", "--configs", "recipe,len64", "--out-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert written[0] is None  # nothing before the first configuration finished
    partial = written[1]
    assert [r["config"] for r in partial["measurements"]] == ["recipe"]
    assert any(n.startswith("partial: 1 of 2") for n in partial["notes"])
    final = json.loads((tmp_path / "cpu_accuracy.json").read_text())
    assert [r["config"] for r in final["measurements"]] == ["recipe", "len64"]
    assert not any(n.startswith("partial") for n in final["notes"])

    # --resume trains only what the result file lacks and keeps the rows it has (in the default
    # results folder when no --out-dir is given, as `make bench` leaves it)
    written.clear()
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert cpu_accuracy.main(["--smoke", "--configs", "recipe,len64,head-only", "--resume"]) == 0
    capsys.readouterr()
    assert len(written) == 1, "only head-only trains again"
    resumed = json.loads((tmp_path / "cpu_accuracy.json").read_text())
    assert [r["config"] for r in resumed["measurements"]] == ["recipe", "len64", "head-only"]
    assert resumed["measurements"][:2] == final["measurements"]
    assert any("carried over" in n and "recipe, len64" in n for n in resumed["notes"])


def test_summary_renders_results(tmp_path, capsys):
    result = common.Result("token_stats", "t", "smoke", machine=common.machine())
    result.measure(examples=10, tokens=100, lab_s=0.2, course_s=0.1, floor_s=0.05,
                   floor_batch_s=0.04, counts_agree=True)
    result.ratio("lab / course at 10 examples", 0.2, 0.1, "lab loop", "helpers.tokens")
    result.ratio("course / floor at 10 examples", 0.1, 0.05, "helpers.tokens", "raw encode",
                 target=1.5, direction="max")
    result.finish(tmp_path, command="python -m bench.token_stats --smoke")
    capsys.readouterr()
    assert summary.main(["--results", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("## Performance")
    assert "### `bench/token_stats.py`" in text
    assert "| lab / course at 10 examples | lab loop / helpers.tokens | **2.00×** |" in text
    assert "≤ 1.5× (**missed**)" in text
    assert "`python -m bench.token_stats --smoke` (" in text
    empty = summary.render({})
    assert "No benchmark results yet" in empty


def test_summary_shows_commands_as_a_reader_types_them():
    results = str(common.RESULTS_DIR)
    assert (summary.display_command(f"python -m bench.grading --profile long --sizes 16 --out-dir {results}")
            == "python -m bench.grading --profile long --sizes 16")
    assert (summary.display_command("python -m bench.grading --out-dir /tmp/elsewhere")
            == "python -m bench.grading --out-dir /tmp/elsewhere")
    other_checkout = "/home/someone/course/bench/results"
    assert summary.display_command(f"python -m bench.emulator --out-dir {other_checkout}") == "python -m bench.emulator"


def test_readme_performance_figures_are_the_committed_results():
    """The README's figures are generated from bench/results/*.json, never typed: a new result
    committed without `python -m bench.summary --write README.md` (or a hand edit) fails here."""
    readme = ROOT / "README.md"
    block = summary.generated_block(readme)
    assert block is not None, "README.md lacks the bench.summary markers in its Performance section"
    expected = summary.render(common.load_results(), heading=False)
    assert block == expected, ("README.md's Performance figures differ from bench/results/*.json: "
                               "run `python -m bench.summary --write README.md`")
    section = readme.read_text().split("## Performance", 1)[1].split("\n## ", 1)[0]
    assert summary.BEGIN in section, "the generated figures belong under '## Performance'"


def test_summary_write_replaces_only_the_generated_block(tmp_path):
    page = tmp_path / "README.md"
    page.write_text(f"# Course\n\n## Performance\n\nLead.\n\n{summary.BEGIN}\nold\n{summary.END}\n\n## Next\n")
    result = common.Result("token_stats", "t", "smoke", machine=common.machine())
    result.ratio("lab / course at 10 examples", 0.2, 0.1, "lab loop", "helpers.tokens")
    result.finish(tmp_path / "results", command="python -m bench.token_stats --smoke")
    assert summary.main(["--results", str(tmp_path / "results"), "--write", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("# Course\n\n## Performance\n\nLead.\n\n" + summary.BEGIN)
    assert text.endswith(summary.END + "\n\n## Next\n") and "old" not in text
    assert text.count("## Performance") == 1 and "### `bench/token_stats.py`" in text
    assert summary.generated_block(page) == summary.render(
        common.load_results(tmp_path / "results"), heading=False)
    page.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="no generated block"):
        summary.main(["--results", str(tmp_path / "results"), "--write", str(page)])


def test_ratio_targets_and_json_without_nan(tmp_path):
    assert common.Ratio("r", 3.2, "a", "b", target=3).meets is True
    assert common.Ratio("r", 2.9, "a", "b", target=3).meets is False
    assert common.Ratio("r", 1.4, "a", "b", target=1.5, direction="max").meets is True
    assert common.Ratio("r", math.nan, "a", "b", target=1.5).meets is None
    result = common.Result("demo", "t", "smoke")
    result.measure(value=math.nan, values=[1.0, math.inf])
    path = result.finish(tmp_path, command="x")
    data = json.loads(path.read_text())  # strict JSON: no NaN/Infinity tokens
    assert data["measurements"] == [{"value": None, "values": [1.0, None]}]


def test_interleaved_alternates_order_and_keeps_values():
    calls = []
    seen = []
    times = common.interleaved(
        {"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2},
        repeats=3, warmup=1, on_result=lambda name, r, s, v: seen.append((name, r, v)),
    )
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert [len(v) for v in times.values()] == [3, 3]
    assert ("b", 1, 2) in seen and len(seen) == 6


def test_peak_memory_sees_a_temporary_allocation():
    with common.PeakMemory() as memory:
        block = bytearray(64 * 2**20)
        block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page
        del block
        time.sleep(0.02)
    assert memory.growth >= 48 * 2**20, (memory.method, memory.growth)
    assert memory.peak >= memory.start


def test_machine_description_and_summary_statistics():
    info = common.machine()
    assert info["usable_cores"] >= 1 and info["memory_gib"] > 0
    assert "cores" in common.describe_machine(info)
    stats = common.summary([3.0, 1.0, 2.0, 10.0])
    assert stats["median"] == 2.5 and stats["min"] == 1.0 and stats["max"] == 10.0
    assert common.quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.95) == pytest.approx(4.8)
    assert common.fmt_seconds(0.0123) == "12.3 ms" and common.fmt_seconds(7200 * 1.5) == "3.00 h"


def test_runner_runs_a_benchmark_and_prints_the_section(tmp_path):
    """``python -m bench --profile smoke token_stats``: what ``make bench`` calls."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--profile", "smoke", "--out-dir", str(tmp_path),
         "token_stats"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "=== bench.token_stats (smoke) ===" in proc.stdout
    assert "RATIO token_stats: course / floor at 200 examples:" in proc.stdout
    assert "## Performance" in proc.stdout and "### `bench/token_stats.py`" in proc.stdout
    assert (tmp_path / "token_stats.json").is_file()
    bad = subprocess.run([sys.executable, "-m", "bench", "no_such_benchmark"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and "unknown benchmark" in bad.stderr
