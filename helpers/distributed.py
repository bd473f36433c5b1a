"""Run a training function across several processes (or GPUs) with Spark's ``TorchDistributor``.

Assignment 01's training step, put together as one function of a plain ``dict`` (``train_fn``;
the course's own is ``autograder.reference.classifier.train_classifier``, instructor-only), runs
in one process in a notebook; on a
Databricks cluster (or locally with ``pyspark`` installed) `run_distributed` runs the same
function in ``num_processes`` processes, data-parallel: ``TorchDistributor`` starts them with
``torchrun``, which sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``, and the ``Trainer`` wraps the
model in ``DistributedDataParallel`` (NCCL on GPUs, gloo on CPUs), so each process trains on
its share of every batch and the gradients are averaged.

``TorchDistributor`` hands back what one process returned; `run_distributed` also has every
process write a small record of what it did, so the caller can see that each one trained.

    from helpers import distributed
    result = distributed.run_distributed({"fast": True}, train_fn=my_training_step,
                                         num_processes=2)
    result.ranks        # one record per process: rank, world_size, steps, loss, ...
    result.model_dir    # the model saved by rank 0

Locally ``local_mode=True`` runs every process on this machine (the Spark driver); on a
multi-node Databricks cluster ``local_mode=False`` spreads them over the workers.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from helpers import platform

RECORDS = "ranks"


@dataclass
class DistributedResult:
    """What `run_distributed` returns: rank 0's result and one record per process."""

    result: Any
    ranks: list[dict[str, Any]]
    num_processes: int
    local_mode: bool
    use_gpu: bool

    @property
    def model_dir(self) -> str | None:
        for record in self.ranks:
            if record.get("model_dir"):
                return record["model_dir"]
        return getattr(self.result, "model_dir", None)


def _summary(result: Any) -> dict[str, Any]:
    """A JSON-safe summary of what one process returned (``log_history`` shortened to counts)."""
    data = asdict(result) if is_dataclass(result) else (dict(result) if isinstance(result, dict) else {})
    history = data.pop("log_history", None) or []
    losses = [entry["loss"] for entry in history if "loss" in entry]
    steps = [entry.get("step", 0) for entry in history]
    data["logged_losses"] = losses
    data["global_step"] = max(steps) if steps else 0
    return json.loads(json.dumps(data, default=str))


def _train_and_record(train_fn: Callable[[dict[str, Any]], Any], config: dict[str, Any],
                      records: str, use_gpu: bool) -> Any:
    """Runs in every process: call ``train_fn(config)``, then write this process's record."""
    if not use_gpu:
        # Without it the Trainer (through accelerate) sees no GPU, takes each CPU process for a
        # single-process run and trains the whole data set in every one: no DDP, no speed-up.
        # With it accelerate sets up MULTI_CPU with the gloo backend from torchrun's variables.
        os.environ["ACCELERATE_USE_CPU"] = "true"
    result = train_fn(dict(config))
    record = {
        "rank": int(os.environ.get("RANK", "0")),
        "local_rank": int(os.environ.get("LOCAL_RANK", "0")),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "pid": os.getpid(),
        **_summary(result),
    }
    path = Path(records) / f"rank-{record['rank']}.json"
    path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return result


def spark_session(num_processes: int = 2) -> Any:
    """The active Spark session (Databricks has one), else a local one with ``num_processes``
    cores bound to the loopback address (works without a network)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return (
        SparkSession.builder.master(f"local[{max(2, num_processes)}]")
        .appName("fine-tuning-course")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )


def run_distributed(
    config: dict[str, Any] | None = None,
    *,
    train_fn: Callable[[dict[str, Any]], Any] | None = None,
    num_processes: int = 2,
    local_mode: bool = True,
    use_gpu: bool | None = None,
    records_dir: str | Path | None = None,
) -> DistributedResult:
    """Run ``train_fn(config)`` (your training step; in the instructor's repository it defaults
    to the course's own, ``autograder.reference.classifier.train_classifier``) in
    ``num_processes`` processes with ``TorchDistributor``; returns rank 0's result and every
    process's record.

    ``use_gpu`` defaults to whether CUDA is available (one GPU per process). ``records_dir``:
    where the per-process records go (a temporary folder under the output folder by default;
    it must be reachable from every process, so on a multi-node cluster use the volume)."""
    from pyspark.ml.torch.distributor import TorchDistributor

    if train_fn is None:
        try:  # the instructor's repository has the course's own training step
            from autograder.reference.classifier import train_classifier as train_fn
        except ImportError as exc:
            raise ValueError(
                "run_distributed needs train_fn: a function of a plain dict that runs your "
                "training step (steps 2-7 of assignment 01 put together) and returns plain values "
                "(course/databricks.md, 'Training on several processes')") from exc
    if use_gpu is None:
        import torch

        use_gpu = torch.cuda.is_available()
    if num_processes < 1:
        raise ValueError(f"num_processes must be at least 1, got {num_processes}")
    spark_session(num_processes)
    records = Path(records_dir) if records_dir else Path(
        tempfile.mkdtemp(prefix=f"{RECORDS}-", dir=platform.output_dir("distributed")))
    records.mkdir(parents=True, exist_ok=True)
    for old in records.glob("rank-*.json"):
        old.unlink()
    distributor = TorchDistributor(num_processes=num_processes, local_mode=local_mode, use_gpu=use_gpu)
    # The processes unpickle `train_fn` by reference: they must import this package even when it
    # runs from a clone that is not pip-installed (PYTHONPATH is restored afterwards).
    package_parent = str(Path(__file__).resolve().parent.parent)
    saved = os.environ.get("PYTHONPATH")
    if package_parent not in (saved or "").split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, saved) if p)
    try:
        result = distributor.run(_train_and_record, train_fn, dict(config or {}), str(records),
                                  use_gpu)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    ranks = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(records.glob("rank-*.json"))]
    if len(ranks) != num_processes:
        raise RuntimeError(
            f"{len(ranks)} of {num_processes} processes reported back in {records}; see the output "
            "of the processes above for the one that failed"
        )
    return DistributedResult(result=result, ranks=sorted(ranks, key=lambda r: r["rank"]),
                             num_processes=num_processes, local_mode=local_mode, use_gpu=use_gpu)
