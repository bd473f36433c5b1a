"""helpers.classifier: backbone choice, model config, recipes, layer freezing, and a real
``Trainer`` run of `train_classifier` on the tiny model, recorded in MLflow and read back."""

from __future__ import annotations

import os

import numpy as np
import pytest

from autograder.reference import classifier as reference_classifier
from helpers import classifier

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning",
                                        "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def tiny():
    return classifier.choose_backbone(fast=True)


@pytest.fixture(scope="module")
def tokenizer(tiny):
    return reference_classifier.load_tokenizer(tiny)


def test_fast_mode_uses_a_tiny_random_gpt2_with_the_real_tokenizer(tiny, tokenizer):
    from transformers import AutoConfig

    assert tiny.kind == "tiny" and "Fast mode" in tiny.description
    config = AutoConfig.from_pretrained(tiny.path)
    assert config.model_type == "gpt2" and config.n_layer == 2 and config.n_embd == 64
    assert len(tokenizer) == 50257
    assert tokenizer("Hello world")["input_ids"] == [15496, 995]  # GPT-2's real ids


def test_tiny_backbone_is_built_once_and_identically(tiny, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    rebuilt = classifier.tiny_gpt2_dir()
    assert rebuilt.parent == tmp_path
    first = load_file(str(rebuilt / "model.safetensors"))
    second = load_file(str(next(iter([tiny.path])) + "/model.safetensors"))
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_offline_full_mode_announces_the_packaged_smollm2(monkeypatch, tmp_path):
    from helpers import assets

    monkeypatch.setattr(assets, "smollm2_dir", lambda: tmp_path)
    backbone = classifier.choose_backbone(fast=False, prefer_hub=False)
    assert backbone.kind == "packaged" and backbone.path == str(tmp_path)
    assert "not reachable" in backbone.description and "SmolLM2" in backbone.description
    online = classifier.choose_backbone(fast=False, prefer_hub=True)
    assert (online.kind, online.path) == ("hub", "gpt2")


def test_tokenizer_gets_a_pad_token(tokenizer):
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.pad_token_id == 50256


def test_model_has_labels_and_pad_token_and_takes_padded_batches(tiny, tokenizer):
    import torch

    model = reference_classifier.build_model(tiny, tokenizer)
    assert model.config.num_labels == 2
    assert model.config.id2label == {0: "NEGATIVE", 1: "POSITIVE"}
    assert model.config.label2id == {"NEGATIVE": 0, "POSITIVE": 1}
    assert model.config.pad_token_id == tokenizer.pad_token_id
    batch = tokenizer(["short", "a much longer review than the first"], padding=True, return_tensors="pt")
    with torch.no_grad():
        padded = model(**batch).logits
        alone = model(**tokenizer(["short"], return_tensors="pt")).logits
    assert padded.shape == (2, 2)
    # the classifier reads the last real token: padding does not change the first review's logits
    assert torch.allclose(padded[0], alone[0], atol=1e-5)


def test_freeze_lower_layers_trains_only_the_top(tiny, tokenizer):
    model = reference_classifier.build_model(tiny, tokenizer)
    counts = classifier.freeze_lower_layers(model, 1)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable, "nothing trains"
    assert all(name.startswith(("transformer.h.1.", "transformer.ln_f", "score")) for name in trainable)
    assert any(name.startswith("score") for name in trainable)
    assert any(name.startswith("transformer.ln_f") for name in trainable)
    assert counts["trainable"] < counts["total"]
    everything = classifier.freeze_lower_layers(reference_classifier.build_model(tiny, tokenizer), None)
    assert everything["trainable"] == everything["total"]
    with pytest.raises(ValueError, match="between 0 and 2"):
        classifier.freeze_lower_layers(model, 3)


def test_transformer_layers_of_a_llama_model():
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                         num_key_value_heads=1, vocab_size=100, pad_token_id=0)
    model = LlamaForSequenceClassification(config)
    assert len(classifier.transformer_layers(model)) == 3
    classifier.freeze_lower_layers(model, 1)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {name for name, _ in model.named_parameters()
                         if name.startswith(("model.layers.2.", "model.norm", "score"))}


def test_recipes(tiny):
    fast = classifier.default_recipe(tiny, device="cpu", fast=True)
    assert fast.train_size < 100 and fast.max_length <= 64
    gpu = classifier.default_recipe(tiny, device="cuda", fast=False)
    assert (gpu.learning_rate, gpu.weight_decay, gpu.train_size, gpu.eval_size) == (2e-5, 0.01, 1000, 500)
    assert gpu.trainable_layers is None
    packaged = classifier.Backbone("SmolLM2-135M", "packaged", "/x", "")
    cpu = classifier.default_recipe(packaged, device="cpu", fast=False)
    assert (cpu.train_size, cpu.eval_size) == (1000, 500)
    assert cpu.trainable_layers is not None and cpu.learning_rate > gpu.learning_rate


def test_mlflow_tracking_uri(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    assert classifier.mlflow_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example")
    assert classifier.mlflow_tracking_uri(tmp_path) == "http://tracking.example"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    assert classifier.mlflow_tracking_uri(tmp_path) == "databricks"
    monkeypatch.setenv("COURSE_UC_CATALOG", "course")
    assert classifier.registered_model_name() == "course.default.gpt2_imdb"
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION")
    assert classifier.registered_model_name() is None


@pytest.fixture
def mlflow_state(monkeypatch):
    """MLflow's process-wide tracking URI and experiment, restored after the test; no
    MLFLOW_TRACKING_URI and no Databricks to start with."""
    import mlflow

    original = os.environ.get("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    saved = mlflow.get_tracking_uri()
    yield mlflow
    mlflow.set_tracking_uri(saved)
    # set_tracking_uri also exports MLFLOW_TRACKING_URI; left behind, it passed for a user's
    # setting in every later test of the worker (a training run then wrote ./mlflow.db).
    if original is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = original


def _experiments(db) -> list[tuple[str, str]]:
    """The experiments in an MLflow SQLite store, read with sqlite3 (not MLflow)."""
    import sqlite3

    with sqlite3.connect(db) as con:
        return con.execute("SELECT name, lifecycle_stage FROM experiments ORDER BY name").fetchall()


def test_configure_mlflow_makes_a_local_store_with_the_experiment(mlflow_state, tmp_path):
    mlflow = mlflow_state
    uri = classifier.configure_mlflow(tmp_path / "out")
    db = tmp_path / "out" / "mlflow.db"
    assert uri == f"sqlite:///{db}"
    assert mlflow.get_tracking_uri() == uri
    assert ("gpt2-imdb", "active") in _experiments(db)
    # a run started now is recorded in that experiment of that store
    with mlflow.start_run() as run:
        mlflow.log_metric("eval_accuracy", 0.75)
    import sqlite3

    with sqlite3.connect(db) as con:
        (name,) = con.execute("SELECT e.name FROM runs r JOIN experiments e "
                              "ON r.experiment_id = e.experiment_id WHERE r.run_uuid = ?",
                              (run.info.run_id,)).fetchone()
    assert name == "gpt2-imdb"
    # configuring again (a second training run) reuses the experiment
    assert classifier.configure_mlflow(tmp_path / "out", experiment="gpt2-imdb") == uri
    assert [e for e in _experiments(db) if e[0] == "gpt2-imdb"] == [("gpt2-imdb", "active")]


def test_logged_artifacts_stay_beside_the_store_not_in_the_current_folder(mlflow_state, tmp_path,
                                                                          monkeypatch):
    """MLflow puts a SQLite store's artifacts in ./mlruns of whatever folder is current; the
    course's experiments keep them in mlruns/ beside mlflow.db, in the run's output folder."""
    mlflow = mlflow_state
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    classifier.configure_mlflow(tmp_path / "out")
    with mlflow.start_run():
        mlflow.log_text("a note", "notes/note.txt")
    assert [p.name for p in (tmp_path / "out" / "mlruns").rglob("note.txt")] == ["note.txt"]
    assert list((tmp_path / "cwd").iterdir()) == []
    # a second configuration (another training run) reuses the experiment and its folder
    classifier.configure_mlflow(tmp_path / "out")
    with mlflow.start_run():
        mlflow.log_text("another", "notes/note.txt")
    assert len(list((tmp_path / "out" / "mlruns").rglob("note.txt"))) == 2
    assert list((tmp_path / "cwd").iterdir()) == []


def test_configure_mlflow_follows_each_output_folder(mlflow_state, tmp_path):
    """Two runs with two output folders in one process get two stores: the URI MLflow itself
    exports (it sets MLFLOW_TRACKING_URI for subprocesses) is not taken for a user's setting."""
    first = classifier.configure_mlflow(tmp_path / "a")
    second = classifier.configure_mlflow(tmp_path / "b", experiment="other")
    assert (first, second) == (f"sqlite:///{tmp_path}/a/mlflow.db", f"sqlite:///{tmp_path}/b/mlflow.db")
    assert ("other", "active") in _experiments(tmp_path / "b" / "mlflow.db")
    assert "other" not in [name for name, _ in _experiments(tmp_path / "a" / "mlflow.db")]


def test_configure_mlflow_honours_mlflow_tracking_uri(mlflow_state, tmp_path, monkeypatch):
    store = tmp_path / "shared" / "tracking.db"
    store.parent.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    uri = classifier.configure_mlflow(tmp_path / "out", experiment="course-run")
    assert uri == f"sqlite:///{store}" and mlflow_state.get_tracking_uri() == uri
    assert ("course-run", "active") in _experiments(store)
    assert not (tmp_path / "out" / "mlflow.db").exists()


@pytest.mark.parametrize(("env", "experiment", "expected_uri", "expected_experiment"), [
    ({"DATABRICKS_RUNTIME_VERSION": "15.4"}, "gpt2-imdb",
     "databricks", "/Shared/fine-tuning-course/gpt2-imdb"),
    ({"DATABRICKS_RUNTIME_VERSION": "15.4"}, "/Users/me@example.com/my-runs",
     "databricks", "/Users/me@example.com/my-runs"),
    ({"MLFLOW_TRACKING_URI": "databricks://teaching"}, "gpt2-imdb",
     "databricks://teaching", "/Shared/fine-tuning-course/gpt2-imdb"),
])
def test_configure_mlflow_on_databricks_puts_experiments_in_the_workspace(
        mlflow_state, monkeypatch, tmp_path, env, experiment, expected_uri, expected_experiment):
    """A workspace experiment is a path: a bare name goes under /Shared/fine-tuning-course/, a
    path stays. (No workspace here: MLflow's two calls are recorded instead of made.)"""
    calls = []
    monkeypatch.setattr(mlflow_state, "set_tracking_uri", lambda uri: calls.append(("uri", uri)))
    monkeypatch.setattr(mlflow_state, "set_experiment", lambda name: calls.append(("exp", name)))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert classifier.configure_mlflow(tmp_path, experiment=experiment) == expected_uri
    assert calls == [("uri", expected_uri), ("exp", expected_experiment)]
    assert not (tmp_path / "mlflow.db").exists()


def test_plot_history_draws_training_and_evaluation_curves():
    history = [{"loss": 0.7, "step": 1, "epoch": 0.5}, {"loss": 0.6, "step": 2, "epoch": 1.0},
               {"eval_loss": 0.65, "eval_accuracy": 0.6, "eval_f1": 0.5, "step": 2, "epoch": 1.0}]
    figure = classifier.plot_history(history, title="t")
    left, right = figure.axes
    assert len(left.lines) == 2 and len(right.lines) == 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real fast-mode training run, recorded in a local MLflow store."""
    import mlflow

    output = tmp_path_factory.mktemp("gpt2-run")
    result = reference_classifier.train_classifier({"fast": True, "output_dir": str(output), "report_to": "mlflow",
                                          "train_size": 24, "eval_size": 16})
    mlflow.end_run()
    return result


def test_train_classifier_trains_evaluates_and_saves(trained):
    from transformers import AutoModelForSequenceClassification

    assert trained.backbone == "tiny-gpt2" and trained.rank == 0 and trained.world_size == 1
    assert set(trained.metrics) >= {"eval_accuracy", "eval_precision", "eval_recall", "eval_f1", "eval_loss"}
    assert 0.0 <= trained.metrics["eval_accuracy"] <= 1.0
    assert any("loss" in row for row in trained.log_history)
    assert trained.recipe["train_size"] == 24
    model = AutoModelForSequenceClassification.from_pretrained(trained.model_dir)
    assert model.config.id2label[1] == "POSITIVE" and model.config.pad_token_id == 50256


def test_train_classifier_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown config keys"):
        reference_classifier.train_classifier({"fast": True, "learning_rte": 1e-3})


def test_mlflow_run_has_the_parameters_and_eval_metrics(trained):
    uri = classifier.mlflow_tracking_uri(trained.output_dir)
    assert trained.mlflow_run_id
    run = classifier.read_run(uri, trained.mlflow_run_id)
    assert run["status"] == "FINISHED"
    params = run["params"]
    assert float(params["learning_rate"]) == trained.recipe["learning_rate"]
    assert params["eval_strategy"] == "epoch"
    assert float(params["weight_decay"]) == 0.01
    assert int(params["per_device_train_batch_size"]) == trained.recipe["train_batch_size"]
    for key in ("eval_accuracy", "eval_precision", "eval_recall", "eval_f1"):
        assert run["metrics"][key] == pytest.approx(trained.metrics[key])
    assert "loss" in run["metrics"]


def test_reloaded_model_classifies_like_the_saved_one_and_mlflow_serves_it(trained, tmp_path,
                                                                           mlflow_state):
    mlflow = mlflow_state
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(trained.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(trained.model_dir)
    reviews = ["What a wonderful film.", "Dull, long and badly acted; I left early."]
    direct = classifier.classify(model, tokenizer, reviews, max_length=64)
    assert [p["label"] for p in direct] == [p["label"] for p in classifier.classify(model, tokenizer, reviews)]
    assert all(p["label"] in {"NEGATIVE", "POSITIVE"} and 0.5 <= p["score"] <= 1 for p in direct)

    classifier.configure_mlflow(tmp_path, experiment="log-pipeline")
    with mlflow.start_run():
        info = classifier.log_pipeline(model, tokenizer, max_length=64)
    assert list((tmp_path / "mlruns").rglob("model.safetensors")), "the model is logged beside the store"
    served = mlflow.pyfunc.load_model(info.model_uri).predict(reviews)
    assert list(served["label"]) == [p["label"] for p in direct]
    assert np.allclose(served["score"], [p["score"] for p in direct], atol=1e-4)


DDP_SCRIPT = """
import json, sys
from autograder.reference import classifier as reference_classifier
result = reference_classifier.train_classifier({"fast": True, "output_dir": sys.argv[1], "train_size": 16, "eval_size": 8})
print("RESULT " + json.dumps({"rank": result.rank, "world_size": result.world_size,
                              "model_dir": result.model_dir, "accuracy": result.metrics["eval_accuracy"]}))
"""


def test_train_classifier_trains_data_parallel_on_two_cpu_processes(tmp_path):
    """The same function under torchrun (as under Spark's TorchDistributor): two gloo processes
    train one model together; only rank 0 saves it, and the saved model loads."""
    import json
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from transformers import AutoModelForSequenceClassification

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = dict(os.environ, COURSE_FAST="1", OMP_NUM_THREADS="1")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    import socket

    with socket.socket() as probe:  # a free port for the two processes to meet on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(port), str(script), str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the launcher and both workers
        stdout, stderr = process.communicate()
        pytest.fail(f"torchrun did not finish in 300 s:\n{stderr[-3000:]}")
    assert process.returncode == 0, stderr[-3000:]
    results = sorted((json.loads(line.split("RESULT ", 1)[1]) for line in stdout.splitlines()
                      if line.startswith("RESULT ")), key=lambda r: r["rank"])
    assert [(r["rank"], r["world_size"]) for r in results] == [(0, 2), (1, 2)]
    assert results[0]["model_dir"] and results[1]["model_dir"] is None
    assert results[0]["accuracy"] == results[1]["accuracy"]  # one model, evaluated in both
    model = AutoModelForSequenceClassification.from_pretrained(results[0]["model_dir"])
    assert model.config.id2label[1] == "POSITIVE"
