"""helpers.distributed: assignment 01's training function through Spark's TorchDistributor.

Two CPU processes (gloo DDP) on this machine, fast mode: both processes train on their half of
every batch, rank 0 saves the model, and the saved model loads and classifies. About a minute:
Spark's JVM starts (~15 s), then torchrun starts two processes that each load the data set.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

# Skipped without them on a learner's machine; under CI a missing one fails (tests/conftest.py).
pytestmark = pytest.mark.requires("pyspark", "java")


@pytest.fixture(scope="module")
def spark():
    """One local Spark session for the module (its JVM takes ~15 s to start)."""
    from helpers import distributed

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARK_LOCAL_IP", "127.0.0.1")
        session = distributed.spark_session(2)
        yield session
        session.stop()


@pytest.fixture
def fast_env(monkeypatch, tmp_path: Path, spark):
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "outputs"))
    for name in ("DATABRICKS_RUNTIME_VERSION", "MLFLOW_TRACKING_URI", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_train_classifier_runs_on_two_processes(fast_env: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from helpers import classifier, distributed

    out = fast_env / "run"
    result = distributed.run_distributed({"fast": True, "output_dir": str(out)}, num_processes=2,
                                         use_gpu=False, records_dir=fast_env / "records")

    assert [r["rank"] for r in result.ranks] == [0, 1]
    assert {r["world_size"] for r in result.ranks} == {2}
    assert result.ranks[0]["pid"] != result.ranks[1]["pid"]
    recipe = result.ranks[0]["recipe"]
    # data-parallel: each process takes half of every global batch, so an epoch has half the steps
    # a single process would take (two independent runs would each take all of them)
    expected_steps = math.ceil(recipe["train_size"] / (2 * recipe["train_batch_size"])) * recipe["epochs"]
    for record in result.ranks:
        assert record["global_step"] == expected_steps, record
        assert record["logged_losses"] and all(math.isfinite(x) for x in record["logged_losses"])
        assert 0.0 <= record["metrics"]["eval_accuracy"] <= 1.0
    # only rank 0 saves
    assert result.ranks[0]["model_dir"] == str(out / "model") and result.ranks[1]["model_dir"] is None
    assert result.model_dir == str(out / "model")

    import torch

    model = AutoModelForSequenceClassification.from_pretrained(result.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    assert model.config.id2label == classifier.ID2LABEL
    assert model.config.pad_token_id is not None
    reviews = ["A wonderful film.", "Dull and far too long."]
    predictions = classifier.classify(model, tokenizer, reviews)
    # the saved model's own logits, one review at a time (no padding), decide label and score
    model.eval()
    for review, prediction in zip(reviews, predictions, strict=True):
        with torch.no_grad():
            logits = model(**tokenizer(review, return_tensors="pt")).logits[0]
        probabilities = torch.softmax(logits, dim=-1)
        assert prediction["label"] == ("POSITIVE" if logits[1] > logits[0] else "NEGATIVE")
        assert prediction["score"] == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_a_process_that_fails_is_reported(fast_env: Path, capfd: pytest.CaptureFixture) -> None:
    """Rank 1 raises. pyspark's torchrun wrapper exits 0 whatever its workers do, so
    run_distributed counts the processes that reported back and raises; the processes' output,
    which its message points to, names rank 1's error."""
    from helpers import distributed

    records = fast_env / "records"
    with pytest.raises(RuntimeError) as info:
        distributed.run_distributed({}, train_fn=_fails_on_rank_one, num_processes=2, use_gpu=False,
                                    records_dir=records)
    message = str(info.value)
    # rank 0 usually reports before torchrun stops it: 1 of 2, sometimes 0 of 2
    ours = re.fullmatch(rf"[01] of 2 processes reported back in {re.escape(str(records))}; see the "
                        "output of the processes above for the one that failed", message)
    # (a pyspark that propagates torchrun's exit code raises its own error with the output)
    theirs = message.startswith("Command ") and "failed with return code" in message
    assert ours or theirs, message
    output = capfd.readouterr()
    assert "ValueError: rank 1 broke on purpose" in message + output.out + output.err
    assert not (records / "rank-1.json").exists()


def _fails_on_rank_one(config: dict) -> dict:
    import os

    if os.environ.get("RANK") == "1":
        raise ValueError("rank 1 broke on purpose")
    return {"ok": True}
