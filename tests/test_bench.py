"""Smoke tests of the benchmarks: each one runs with tiny sizes, prints its ratio lines and writes a
well-formed result; the summary renders them. No wall-clock figure is asserted anywhere (the
figures come from `make bench`, not from tests)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder.reference import imdb as reference_imdb
from bench import common, summary

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(name: str, out_dir: Path, *extra: str) -> tuple[str, dict]:
    """``python -m bench.<name> --smoke --out-dir out_dir``: its output and its result JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--smoke", "--out-dir", str(out_dir), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, f"bench.{name} failed:\n{proc.stdout}\n{proc.stderr}"
    path = out_dir / common.result_filename(name, "smoke")
    assert path.is_file(), f"bench.{name} wrote no {path.name}:\n{proc.stdout}"
    return proc.stdout, json.loads(path.read_text())


def run_in_process(name: str, out_dir: Path, capsys) -> tuple[str, dict]:
    """``bench.<name>.main(["--smoke", ...])`` in this process (shares torch's import with the
    other tests): its output and its result JSON."""
    import importlib

    module = importlib.import_module(f"bench.{name}")
    assert module.main(["--smoke", "--out-dir", str(out_dir)]) == 0
    output = capsys.readouterr().out
    return output, json.loads((out_dir / common.result_filename(name, "smoke")).read_text())


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
    assert {"lab", "padding-only", "truncation-only", "freezing-only", "course"} <= set(rows)
    lab, course = rows["lab"], rows["course"]
    # the lab pads every review to the maximum length: tokens per epoch = steps * 2 * max_length
    assert lab["tokens_per_epoch"] == lab["real_tokens"] / (1 - lab["padding_share"])
    assert lab["tokens_per_epoch"] == 16 * lab["max_length"]
    assert course["tokens_per_epoch"] <= 16 * course["max_length"]
    assert {row["batch_size"] for row in rows.values()} == {2}, "one batch size for every lever"
    tokens_ratio = next(r for r in data["ratios"] if r["name"].startswith("tokens per epoch"))
    assert tokens_ratio["value"] == pytest.approx(lab["tokens_per_epoch"] / course["tokens_per_epoch"])

    # Each single-lever variant differs from the lab's recipe in its lever only, on the same
    # model and batch size, and has its own ratio against the lab.
    settings = ("max_length", "pad_to_max", "group_by_length", "trainable_layers", "batch_size")
    lever_of = {"padding-only": {"pad_to_max", "group_by_length"},
                "truncation-only": {"max_length"}, "freezing-only": {"trainable_layers"}}
    for name, lever in lever_of.items():
        differs = {k for k in settings if rows[name][k] != lab[k]}
        assert differs == lever, (name, differs)
        assert rows[name][next(iter(lever))] == course[next(iter(lever))], "the course's setting"
        ratios = [r for r in data["ratios"] if r["candidate"] == name]
        assert {r["name"].split(": ")[1] for r in ratios} == {
            "tokens per epoch", "seconds per epoch (extrapolated)"}, ratios
    # what each lever does to the tokens fed: exact, from the Trainer's own batches
    assert rows["truncation-only"]["tokens_per_epoch"] == 16 * course["max_length"]
    assert rows["freezing-only"]["tokens_per_epoch"] == lab["tokens_per_epoch"]
    assert rows["freezing-only"]["trainable_params"] < lab["trainable_params"]
    assert rows["padding-only"]["real_tokens"] == lab["real_tokens"]
    assert rows["padding-only"]["tokens_per_epoch"] < lab["tokens_per_epoch"]
    assert any(n.startswith("what each lever buys") for n in data["notes"])
    # CPU time beside wall time: on a busy machine it checks the wall-time ratio
    assert all(row["step_cpu_s_median"] > 0 for row in rows.values())
    assert any(r["name"].startswith("CPU seconds per epoch") for r in data["ratios"])


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
    # what the job learned and what the two deployments answer, for the README
    trained = cases["losses"]
    assert trained["steps"] == job["examples"] * job["n_epochs"]  # batch size 1
    assert len(trained["full_valid_loss_per_epoch"]) == job["n_epochs"]
    said = [row for row in data["measurements"] if row["case"] == "answers"]
    assert said[0]["question"] == "Do other Azure AI services support this too?"  # the lab's
    assert len(said) == 3 and all({"base", "fine_tuned"} <= set(row) for row in said)
    text = summary.render({"emulator": data})
    assert "| job losses | backend | steps |" in text and "| fine-tuned deployment |" in text


def test_cpu_accuracy_smoke(tmp_path, capsys):
    output, data = run_in_process("cpu_accuracy", tmp_path, capsys)
    check_result("cpu_accuracy", output, data, ["chosen on validation within 30 min",
                                                "the course's CPU recipe (fixed in advance)"])
    validation = [r for r in data["measurements"] if r["phase"] == "validation"]
    test = [r for r in data["measurements"] if r["phase"] == "test"]
    assert [(r["config"], r["seed"]) for r in validation] == [("recipe", 42)]
    assert [(r["config"], r["seed"]) for r in test] == [("recipe", 42)]
    row = validation[0]
    assert row["validation_size"] == 16 and test[0]["test_size"] == 16
    assert 0 <= row["accuracy"] <= 1 and 0 <= row["f1"] <= 1
    assert row["total_s"] >= row["train_s"] + row["eval_s"]
    for r in (row, test[0]):  # every row says which code measured it
        assert r["commit"] and r["code"] == data["params"]["code"]
    assert all(r["unit"] == "" for r in data["ratios"]), "accuracies are figures, not ratios"


def test_cpu_accuracy_validation_is_carved_from_training_reviews_never_trained_on():
    """The validation reviews come from IMDB's training split, past every configuration's
    training subset, so none is trained on; the test reviews are the lab's, untouched."""
    from bench import cpu_accuracy
    from helpers import imdb

    data = imdb.load_imdb(prefer_hub=False).dataset
    start = cpu_accuracy.largest_train_size()
    assert start == 2000  # train-2000 is the largest subset
    train, validation, test = cpu_accuracy.splits(data, 2000, 500, 500, start)
    train_text, validation_text = set(train["text"]), set(validation["text"])
    assert len(validation_text) == 500 and not train_text & validation_text
    assert not validation_text & set(test["text"]) and not train_text & set(test["text"])
    assert set(validation["text"]) <= set(data["train"]["text"])
    lab_train, lab_test = reference_imdb.seed_subsets(data, 1000, 500)  # what the notebook trains on
    assert set(lab_train["text"]) <= train_text and lab_test["text"] == test["text"]
    with pytest.raises(ValueError, match="overlap"):
        cpu_accuracy.splits(data, 1000, 500, 500, 999)


def _row(phase, config, seed, accuracy, minutes, **extra):
    return {"phase": phase, "config": config, "seed": seed, "accuracy": accuracy, "f1": accuracy,
            "total_s": minutes * 60, "train_s": minutes * 50, "minutes": minutes, **extra}


def test_cpu_accuracy_chooses_on_validation_only():
    """The choice for each budget follows the validation means (over every seed); what the test
    reviews would say plays no part, and a configuration short of seeds does not compete."""
    from bench import cpu_accuracy

    rows = [
        _row("validation", "a", 1, 0.80, 4), _row("validation", "a", 2, 0.82, 4),
        _row("validation", "b", 1, 0.85, 12), _row("validation", "b", 2, 0.83, 14),
        _row("validation", "c", 1, 0.90, 25), _row("validation", "c", 2, 0.70, 25),  # mean 0.80
        _row("validation", "d", 1, 0.99, 3),  # one seed only
        # test rows that would choose otherwise: ignored by the choice
        _row("test", "c", 1, 0.99, 25), _row("test", "c", 2, 0.99, 25),
    ]
    chosen = cpu_accuracy.choose(rows, [1, 2])
    assert chosen == {"within 5 min": "a", "within 15 min": "b", "within 30 min": "b"}
    # a tie on validation goes to the faster configuration
    tie = [_row("validation", "slow", 1, 0.8, 20), _row("validation", "fast", 1, 0.8, 10)]
    assert cpu_accuracy.choose(tie, [1])["within 30 min"] == "fast"
    # the figures report the test reviews of the chosen configuration, mean ± sd over the seeds
    rows += [_row("test", "b", 1, 0.84, 13), _row("test", "b", 2, 0.86, 13),
             _row("test", "a", 1, 0.79, 4), _row("test", "a", 2, 0.81, 4)]
    figures = {f.name: f for f in cpu_accuracy.figures(rows, chosen, fast=False)}
    within30 = figures["chosen on validation within 30 min: test accuracy"]
    assert within30.value == pytest.approx(0.85) and within30.meets is True
    assert within30.baseline.startswith("b: 0.850 ± 0.014 over 2 seed(s)")
    assert "validation 0.840 ± 0.014" in within30.baseline


def test_cpu_accuracy_keeps_a_stopped_sweep_and_resumes_only_the_same_code(
        tmp_path, capsys, monkeypatch):
    """A sweep writes its result after every training run, so a stopped one keeps what finished;
    ``--resume`` trains only what is missing, and refuses rows measured with other code.

    The bookkeeping is under test here, not training (test_cpu_accuracy_smoke trains for real):
    each training run is replaced by one that writes its checkpoint and returns a row of the same
    shape, with made-up numbers, and looks at the result file as it stood before it ran."""
    from bench import cpu_accuracy

    written = []
    path = tmp_path / "cpu_accuracy.smoke.json"

    def fake_train(name, seed, overrides, fast, workdir, checkpoint, code, validation_start):
        written.append(json.loads(path.read_text()) if path.exists() else None)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_bytes(f"{name}-{seed}".encode())
        accuracy = 0.5 + 0.1 * list(cpu_accuracy.CONFIGS).index(name) / len(cpu_accuracy.CONFIGS)
        return {"phase": "validation", "config": name, "seed": seed, **cpu_accuracy.stamp(code),
                "validation_start": validation_start, "train_s": 1.0, "eval_s": 0.5,
                "total_s": 2.0 + seed, "minutes": (2.0 + seed) / 60, "cpu_s": 3.0,
                "accuracy": accuracy + seed / 100, "f1": accuracy, "precision": accuracy,
                "recall": accuracy, "load_start": 0.1, "load_end": 0.2}

    def fake_test(name, seed, overrides, fast, workdir, checkpoint, code, chosen_for):
        assert checkpoint.read_bytes() == f"{name}-{seed}".encode(), "the weights it trained"
        return {"phase": "test", "config": name, "seed": seed, **cpu_accuracy.stamp(code),
                "chosen_for": chosen_for, "test_size": 16, "eval_s": 0.5, "accuracy": 0.6,
                "f1": 0.6, "precision": 0.6, "recall": 0.6, "load_start": 0.1, "load_end": 0.2}

    monkeypatch.setattr(cpu_accuracy, "train_config", fake_train)
    monkeypatch.setattr(cpu_accuracy, "test_config", fake_test)
    work = str(tmp_path / "work")
    argv = ["--smoke", "--configs", "recipe,len64", "--seeds", "1,2", "--out-dir", str(tmp_path),
            "--work-dir", work]
    assert cpu_accuracy.main(argv) == 0
    capsys.readouterr()
    assert written[0] is None  # nothing before the first run finished
    partial = written[1]
    assert [(r["config"], r["seed"]) for r in partial["measurements"]] == [("recipe", 1)]
    assert any(n.startswith("partial: 1 of 4 selection runs") for n in partial["notes"])
    # seed by seed: every configuration has a seed before any has a second
    assert [(r["config"], r["seed"]) for r in written[3]["measurements"]] == [
        ("recipe", 1), ("len64", 1), ("recipe", 2)]
    final = json.loads(path.read_text())
    assert not any(n.startswith("partial") for n in final["notes"])
    phases = [(r["phase"], r["config"]) for r in final["measurements"]]
    assert phases.count(("validation", "recipe")) == phases.count(("validation", "len64")) == 2
    assert ("test", "recipe") in phases  # the shipped recipe is always reported

    written.clear()
    more = [a if a != "recipe,len64" else "recipe,len64,head-only" for a in argv]
    assert cpu_accuracy.main([*more, "--resume"]) == 0
    capsys.readouterr()
    assert len(written) == 2, "only head-only trains, once per seed"
    resumed = json.loads(path.read_text())
    old = [r for r in final["measurements"] if r["phase"] == "validation"]
    assert [r for r in resumed["measurements"] if r in old] == old
    assert any("carried over with --resume" in n for n in resumed["notes"])

    # a kept row whose trained weights are gone is trained again, not reported without them
    written.clear()
    for checkpoint in Path(work).rglob("len64-2.pt"):
        checkpoint.unlink()
    assert cpu_accuracy.main([*more, "--resume"]) == 0
    capsys.readouterr()
    assert len(written) == 1, "len64 seed 2 only"
    assert written[0]["measurements"], "the result file as it stood, before the retraining"

    # a row of other code (here: another helpers/classifier.py) is refused, by name
    stale = json.loads((tmp_path / "cpu_accuracy.smoke.json").read_text())
    stale["measurements"][0]["code"] = dict(stale["measurements"][0]["code"],
                                            **{"helpers/classifier.py": "0123456789ab"})
    (tmp_path / "cpu_accuracy.smoke.json").write_text(json.dumps(stale))
    with pytest.raises(cpu_accuracy.ResumeRefused, match=r"recipe/seed 1 .*helpers/classifier.py"):
        cpu_accuracy.main([*argv, "--resume"])
    # rows from before fingerprints were recorded are refused too
    for row in stale["measurements"]:
        row.pop("code")
    (tmp_path / "cpu_accuracy.smoke.json").write_text(json.dumps(stale))
    with pytest.raises(cpu_accuracy.ResumeRefused, match="no code fingerprint recorded"):
        cpu_accuracy.main([*argv, "--resume"])


def test_each_profile_writes_its_own_result_file(tmp_path):
    """`make bench` (default) and the long profile never overwrite each other's figures; the
    summary shows both, default first, and never a smoke result; a file renamed by hand (a long
    result under the default name) is refused."""
    for profile, value in (("long", 3.0), ("default", 2.0), ("smoke", 9.0)):
        result = common.Result("token_stats", "t", profile, machine=common.machine())
        result.ratio("lab / course", value, 1.0, "lab loop", "helpers.tokens")
        result.finish(tmp_path, command=f"python -m bench.token_stats --profile {profile}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "token_stats.json", "token_stats.long.json", "token_stats.smoke.json"]
    loaded = common.load_results(tmp_path)
    assert sorted(loaded) == ["token_stats", "token_stats.long"]
    assert loaded["token_stats.long"]["ratios"][0]["value"] == 3.0
    text = summary.render(loaded)
    assert text.index("### `bench/token_stats.py`\n") < text.index(
        "### `bench/token_stats.py` (long profile)")
    assert "9.00×" not in text
    (tmp_path / "token_stats.long.json").rename(tmp_path / "token_stats.json")
    with pytest.raises(ValueError, match="belongs in token_stats.long.json"):
        common.load_results(tmp_path)


def test_a_contended_run_says_so_next_to_its_figures():
    quiet = {"usable_cores": 2, "load_average_1m": 1.2, "load_average_1m_end": 1.9}
    busy = {"usable_cores": 2, "load_average_1m": 1.2, "load_average_1m_end": 7.5}
    assert not summary.contended(quiet) and summary.contended(busy)
    result = {"benchmark": "token_stats", "profile": "default", "machine": busy,
              "command": "python -m bench.token_stats", "ratios": [], "measurements": []}
    assert "**Measured on a contended machine**" in summary.render({"token_stats": result})
    result["machine"] = quiet
    assert "contended" not in summary.render({"token_stats": result})


def test_degenerate_answers_are_flagged():
    """The GPU machine's transformers 5.17 ignored the emulator's KV cache: answers came back as
    "Yes------". The benchmarks flag such answers instead of reporting them as the model's."""
    from bench import emulator

    assert emulator.degenerate("Yes-----------------------------------------------")
    assert emulator.degenerate("The" + "-" * 23)
    assert not emulator.degenerate("The biggest ocean is thought to be the Great Barrier Reef.")
    assert not emulator.degenerate("Yes.") and not emulator.degenerate("")
    said = [{"question": "q1", "base": "A fine answer, thanks.", "fine_tuned": "Q" + "-" * 40},
            {"question": "q2", "base": "Another answer.", "fine_tuned": "Also fine here."}]
    assert "1 of 2 questions" in emulator.degenerate_note(said)
    assert emulator.degenerate_note(said[1:]) is None


def test_summary_renders_results(tmp_path, capsys):
    result = common.Result("token_stats", "t", "default", machine=common.machine())
    result.measure(examples=10, tokens=100, lab_s=0.2, course_s=0.1, floor_s=0.05,
                   floor_batch_s=0.04, counts_agree=True)
    result.ratio("lab / course at 10 examples", 0.2, 0.1, "lab loop", "helpers.tokens")
    result.ratio("course / floor at 10 examples", 0.1, 0.05, "helpers.tokens", "raw encode",
                 target=1.5, direction="max")
    result.finish(tmp_path, command="python -m bench.token_stats --profile default")
    capsys.readouterr()
    assert summary.main(["--results", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("## Performance")
    assert "### `bench/token_stats.py`" in text
    assert "| lab / course at 10 examples | lab loop / helpers.tokens | **2.00×** |" in text
    assert "≤ 1.5× (**missed**)" in text
    assert "`python -m bench.token_stats --profile default` (" in text
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
    result = common.Result("token_stats", "t", "default", machine=common.machine())
    result.ratio("lab / course at 10 examples", 0.2, 0.1, "lab loop", "helpers.tokens")
    result.finish(tmp_path / "results", command="python -m bench.token_stats --profile default")
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


def test_a_baseline_run_is_its_own_result_beside_the_modes_comparison(tmp_path):
    """``bench.grading --baseline`` writes grading_baseline.<profile>.json: the long run that
    compares plain nbgrader with --jobs 2 (issue 8's target) survives a run against an older
    commit (issue 12's), and the README shows both under bench/grading.py, the modes first."""
    from bench import grading as bench_grading

    assert bench_grading.benchmark_name(None)[0] == "grading"
    assert bench_grading.benchmark_name("3c4e4b3")[0] == "grading_baseline"
    folder = tmp_path / "results"
    modes = common.Result("grading", bench_grading.TITLE, "long", machine=common.machine())
    modes.ratio("02, N=16: plain nbgrader / --jobs 2", 300.0, 150.0, "nbgrader autograde",
                "--jobs 2", target=1.5)
    modes.finish(folder, command="python -m bench.grading --profile long --sizes 16")
    name, title = bench_grading.benchmark_name("3c4e4b3")
    against = common.Result(name, title, "long", machine=common.machine())
    against.ratio("02, N=16: this commit / 3c4e4b3 --jobs 2", 160.0, 150.0, "--jobs 2",
                  "3c4e4b3 --jobs 2", target=1.5, direction="max")
    against.script = "grading"
    against.finish(folder, argv=["--profile", "long", "--baseline", "3c4e4b3"])
    assert sorted(p.name for p in folder.iterdir()) == ["grading.long.json",
                                                        "grading_baseline.long.json"]
    results = common.load_results(folder)
    assert summary.ordered(results) == ["grading.long", "grading_baseline.long"]
    assert summary.ordered(results, ["grading"]) == ["grading.long", "grading_baseline.long"]
    text = summary.render(results)
    assert text.count("# `bench/grading.py` (long profile)") == 2
    assert "bench/grading_baseline.py" not in text and "bench.grading_baseline" not in text
    assert "Command: `python -m bench.grading --profile long --baseline 3c4e4b3`" in text
    assert text.index("plain nbgrader / --jobs 2") < text.index("this commit / 3c4e4b3")
    assert "**2.00×** | ≥ 1.5× (met)" in text and "**1.07×** | ≤ 1.5× (met)" in text


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
    assert (tmp_path / "token_stats.smoke.json").is_file()
    bad = subprocess.run([sys.executable, "-m", "bench", "no_such_benchmark"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and "unknown benchmark" in bad.stderr


def test_grading_baseline_is_the_named_commit_and_comes_first_on_the_path(tmp_path):
    """``bench.grading --baseline COMMIT`` grades with that commit's own code: the tree is the
    commit's (``git archive``), and its packages come before this checkout's editable install."""
    from bench import grading as bench_grading

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    tree, short = bench_grading.unpack_baseline(head, tmp_path / "old")
    assert head.startswith(short)
    committed = subprocess.run(["git", "show", f"{head}:autograder/grading.py"], cwd=ROOT,
                               check=True, capture_output=True).stdout
    assert (tree / "autograder" / "grading.py").read_bytes() == committed
    env = bench_grading._baseline_env({"PYTHONPATH": "/elsewhere", "PATH": "/bin"}, tree)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(tree), "/elsewhere"]
    found = subprocess.run([sys.executable, "-c", "import autograder; print(autograder.__file__)"],
                           cwd=tree, env={**os.environ, **env}, check=True, capture_output=True,
                           text=True).stdout.strip()
    assert found == str(tree / "autograder" / "__init__.py")
