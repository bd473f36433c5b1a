"""Assignment 01's reference answers (instructor-only): the tokenizer (step 2), the model
(step 4), the training arguments (step 6) and the whole training step as one function of a plain
``dict`` (``train_classifier``), which runs in a notebook, a script, or each process of Spark's
``TorchDistributor`` (``helpers.distributed``). The benchmarks and the instructor's tests use it;
students write these steps themselves."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import platform
from helpers.classifier import (
    ID2LABEL,
    LABEL2ID,
    Backbone,
    Recipe,
    choose_backbone,
    configure_mlflow,
    default_recipe,
    freeze_lower_layers,
)


def load_tokenizer(backbone: Backbone):
    """The backbone's tokenizer, ready to pad: a tokenizer without a pad token (GPT-2) gets its
    end-of-text token as pad token. Right padding, right truncation (the tokenizer's defaults)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(backbone.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_model(backbone: Backbone, tokenizer, num_labels: int = 2, seed: int = 42):
    """A sequence-classification model on ``backbone``: ``num_labels`` outputs, ``id2label`` /
    ``label2id`` and the tokenizer's ``pad_token_id`` in its config. The new head's random
    initialisation is seeded."""
    import torch
    from transformers import AutoModelForSequenceClassification

    labels = {"id2label": dict(ID2LABEL), "label2id": dict(LABEL2ID)} if num_labels == 2 else {}
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_pretrained(
        backbone.path, num_labels=num_labels, pad_token_id=tokenizer.pad_token_id,
        dtype=torch.float32, **labels,
    )


def training_arguments(recipe: Recipe, output_dir: str | Path, report_to: str | list[str] = "mlflow",
                       **overrides):
    """The reference ``TrainingArguments`` for ``recipe`` (what the notebook asks the student to
    write): evaluation every epoch, ``report_to`` MLflow, the recipe's sizes and seed."""
    from transformers import TrainingArguments

    arguments = {
        "output_dir": str(output_dir),
        "eval_strategy": "epoch",
        "save_strategy": "no",
        "learning_rate": recipe.learning_rate,
        "weight_decay": recipe.weight_decay,
        "per_device_train_batch_size": recipe.train_batch_size,
        "per_device_eval_batch_size": recipe.eval_batch_size,
        "num_train_epochs": recipe.epochs,
        "logging_steps": max(1, recipe.train_size // recipe.train_batch_size // 20),
        "report_to": report_to,
        "seed": recipe.seed,
        "disable_tqdm": False,
    }
    if recipe.device == "cpu":
        # On a CPU, transformers only trains data-parallel (torchrun, TorchDistributor) when told
        # so: use_cpu and the gloo backend; otherwise each process would train alone.
        arguments["use_cpu"] = True
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            arguments["ddp_backend"] = "gloo"
    arguments.update(overrides)
    return TrainingArguments(**arguments)


@dataclass
class TrainResult:
    """What `train_classifier` returns (picklable: plain values only)."""

    metrics: dict[str, float]
    output_dir: str
    model_dir: str | None
    backbone: str
    recipe: dict[str, Any]
    rank: int = 0  # this process's index in data-parallel training
    world_size: int = 1  # how many processes trained together
    train_runtime: float = 0.0
    log_history: list[dict[str, Any]] = field(default_factory=list)
    mlflow_run_id: str | None = None


def train_classifier(config: dict[str, Any] | None = None) -> TrainResult:
    """The training step of assignment 01, end to end, as one function of a plain ``dict``:
    load IMDB, take the seeded subsets, tokenize, build the model, train with the ``Trainer``,
    evaluate, save (rank 0 only) and return a `TrainResult`.

    Keys (all optional): ``output_dir``, ``fast`` (bool), ``backbone`` (a `Backbone` as dict),
    any `Recipe` field (``max_length``, ``train_size``, ``eval_size``, ``epochs``,
    ``learning_rate``, ``trainable_layers``, ...), ``report_to`` (default ``"none"``;
    ``"mlflow"`` records a run in `configure_mlflow`'s store), ``save`` (default True).

    Under ``torchrun`` or Spark's ``TorchDistributor`` every process calls this function; the
    ``Trainer`` reads ``RANK``/``WORLD_SIZE`` from the environment and trains data-parallel."""
    from dataclasses import replace

    from transformers import DataCollatorWithPadding, Trainer

    from autograder.reference import imdb as reference_imdb
    from autograder.reference import metrics
    from helpers import imdb

    config = dict(config or {})
    fast = config.pop("fast", None)
    backbone = Backbone(**config.pop("backbone")) if "backbone" in config else choose_backbone(fast=fast)
    recipe = default_recipe(backbone, fast=fast)
    recipe_fields = {k: config.pop(k) for k in list(config) if k in Recipe.__dataclass_fields__}
    recipe = replace(recipe, **recipe_fields)
    output_dir = config.pop("output_dir", None)
    report_to = config.pop("report_to", "none")
    save = config.pop("save", True)
    if config:  # before anything is written
        raise ValueError(f"train_classifier: unknown config keys {sorted(config)}")
    output_dir = Path(output_dir or platform.output_dir("gpt2-imdb"))

    rank = int(os.environ.get("RANK", "0"))
    data = imdb.load_imdb().dataset
    train, evaluation = reference_imdb.seed_subsets(data, recipe.train_size, recipe.eval_size, seed=recipe.seed)
    tokenizer = load_tokenizer(backbone)
    tokenizer.truncation_side = recipe.truncation_side
    train = reference_imdb.tokenize_dataset(train, tokenizer, recipe.max_length)
    evaluation = reference_imdb.tokenize_dataset(evaluation, tokenizer, recipe.max_length)
    model = build_model(backbone, tokenizer, seed=recipe.seed)
    freeze_lower_layers(model, recipe.trainable_layers)

    use_mlflow = "mlflow" in ([report_to] if isinstance(report_to, str) else list(report_to))
    args = training_arguments(recipe, output_dir / "checkpoints", report_to=report_to)
    trainer = Trainer(
        model=model, args=args, train_dataset=train, eval_dataset=evaluation,
        processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics.compute_metrics,
    )
    run_id = None
    if use_mlflow and rank == 0:
        import mlflow

        # Our own run: the Trainer's callback would end its run after training, and the final
        # evaluation would then land in a new, parameterless run.
        configure_mlflow(output_dir)
        with mlflow.start_run(run_name=f"gpt2-imdb-{backbone.name}") as run:
            mlflow.log_params({"backbone": backbone.name, "max_length": recipe.max_length,
                               "trainable_layers": str(recipe.trainable_layers),
                               "truncation_side": recipe.truncation_side})
            train_output = trainer.train()
            scores = trainer.evaluate()
            run_id = run.info.run_id
    else:
        train_output = trainer.train()
        scores = trainer.evaluate()
    model_dir = None
    if save and trainer.is_world_process_zero():
        model_dir = str(output_dir / "model")
        trainer.save_model(model_dir)
    return TrainResult(
        metrics={k: float(v) for k, v in scores.items() if isinstance(v, int | float)},
        output_dir=str(output_dir),
        model_dir=model_dir,
        backbone=backbone.name,
        recipe=recipe.as_dict(),
        rank=trainer.args.process_index,
        world_size=trainer.args.world_size,
        train_runtime=float(train_output.metrics.get("train_runtime", 0.0)),
        log_history=list(trainer.state.log_history),
        mlflow_run_id=run_id,
    )
