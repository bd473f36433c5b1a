"""helpers.distributed: assignment 01's training function through Spark's TorchDistributor.

Two CPU processes (gloo DDP) on this machine, fast mode: both processes train on their half of
every batch, rank 0 saves the model, and the saved model loads and classifies. About a minute:
Spark's JVM starts (~15 s), then torchrun starts two processes that each load the data set.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'pyspark>=4'")
if shutil.which("java") is None:  # pragma: no cover - the course machines have Java 17
    pytest.skip("pyspark needs Java 17 (Debian: openjdk-17-jre-headless)", allow_module_level=True)


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

    model = AutoModelForSequenceClassification.from_pretrained(result.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    assert model.config.id2label == classifier.ID2LABEL
    assert model.config.pad_token_id is not None
    predictions = classifier.classify(model, tokenizer, ["A wonderful film.", "Dull and far too long."])
    assert [p["label"] in {"NEGATIVE", "POSITIVE"} for p in predictions] == [True, True]


def test_a_process_that_fails_is_reported(fast_env: Path) -> None:
    from helpers import distributed

    with pytest.raises(Exception, match=r"(?s)exit|fail|Error"):
        distributed.run_distributed({}, train_fn=_fails_on_rank_one, num_processes=2, use_gpu=False,
                                    records_dir=fast_env / "records")


def _fails_on_rank_one(config: dict) -> dict:
    import os

    if os.environ.get("RANK") == "1":
        raise ValueError("rank 1 broke on purpose")
    return {"ok": True}
