"""``python -m helpers azure-smoke``: run assignment 02's Azure calls against the configured
resource, with the smallest valid data, and report each step.

Steps: ``models`` (the base model choice, :func:`helpers.azure.choose_base_model`), ``upload``
(10 tiny chat examples), ``file processed``, ``job`` (one epoch), ``events``, ``deploy``,
``chat``, ``clean up`` (the deployment, the files, the job where the api-version allows).
It reads the same environment as the notebook (``helpers.azure.make_client``); with no Azure
variables it runs against the in-process emulator. On a real resource the job and the
deployment cost money and take many minutes: ``--timeout`` bounds each wait.

This command has been tested against the course's emulator (in-process and ``python -m helpers
emulator serve``); it has not been run against real Azure from the course's machines.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SMOKE_EXAMPLES = [
    ("What is 2 + 2?", "4."), ("What colour is the sky?", "Blue, on a clear day."),
    ("Capital of France?", "Paris."), ("Largest planet?", "Jupiter."),
    ("Who wrote Hamlet?", "Shakespeare."), ("Boiling point of water?", "100 °C at sea level."),
    ("What is H2O?", "Water."), ("Smallest prime?", "2."),
    ("Speed of light?", "About 300,000 km/s."), ("Tallest mountain?", "Everest."),
]


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    seconds: float


def smoke_data(folder: Path) -> tuple[Path, Path]:
    """The smallest valid training (10 examples) and validation (1 example) files."""
    def write(path: Path, pairs) -> Path:
        lines = [json.dumps({"messages": [
            {"role": "system", "content": "You answer in one short sentence."},
            {"role": "user", "content": q}, {"role": "assistant", "content": a}]})
            for q, a in pairs]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return (write(folder / "smoke_training.jsonl", SMOKE_EXAMPLES),
            write(folder / "smoke_validation.jsonl", SMOKE_EXAMPLES[:1]))


def run_smoke(backend, *, timeout: float = 3600.0,
              report: Callable[[Step], None] = lambda step: None) -> list[Step]:
    """Run the steps in order, stopping at the first failure (later steps need earlier ones);
    clean-up always runs. Returns every step run."""
    from helpers import azure

    steps: list[Step] = []
    state: dict[str, Any] = {"files": []}
    client = backend.client

    def step(name: str, action: Callable[[], str]) -> bool:
        began = time.monotonic()
        try:
            detail, ok = action(), True
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reported step
            detail, ok = f"{type(exc).__name__}: {exc}", False
        result = Step(name, ok, detail, time.monotonic() - began)
        steps.append(result)
        report(result)
        return ok

    def models() -> str:
        state["choice"] = azure.choose_base_model(backend)
        return state["choice"].description

    def upload() -> str:
        folder = Path(tempfile.mkdtemp(prefix="azure-smoke-"))
        for path in smoke_data(folder):
            state["files"].append(azure.upload_file(client, path).id)
        return f"uploaded {', '.join(state['files'])}"

    def processed() -> str:
        done = azure.wait_for_files(client, state["files"], poll_interval=backend.poll_interval,
                                    timeout=timeout)
        return ", ".join(f"{f.id}: {f.status}" for f in done)

    def job() -> str:
        created = azure.create_job(client, state["files"][0], state["files"][1],
                                   model=state["choice"].model, seed=7,
                                   hyperparameters={"n_epochs": 1})
        state["job"] = created.id
        final = azure.wait_for_job(client, created.id, poll_interval=backend.poll_interval,
                                   timeout=timeout, progress=False)
        state["model"] = final.fine_tuned_model
        return f"{created.id} created {created.status}, ended {final.status}: {final.fine_tuned_model}"

    def events() -> str:
        frame = azure.job_events(client, state["job"], limit=20)
        levels = sorted(set(frame["level"]))
        return f"{len(frame)} events (levels {', '.join(levels)}); last: {frame['message'].iloc[-1]}"

    def deploy() -> str:
        record = azure.deploy(backend, state["model"], backend.ft_deployment, timeout=timeout)
        state["deployment"] = backend.ft_deployment
        return f"{backend.ft_deployment}: {record['properties']['provisioningState']}"

    def chat() -> str:
        reply = azure.chat(client, backend.ft_deployment,
                           [{"role": "user", "content": SMOKE_EXAMPLES[0][0]}], max_tokens=20)
        return f"{reply!r}"

    def clean_up() -> str:
        done = azure.clean_up(backend, deployment=state.get("deployment"),
                              file_ids=state["files"],
                              job_ids=[state["job"]] if "job" in state else [])
        return f"deleted {len(done['deleted'])}, already gone {len(done['already_gone'])}"

    for name, action in (("models", models), ("upload", upload), ("file processed", processed),
                         ("job", job), ("events", events), ("deploy", deploy), ("chat", chat)):
        if not step(name, action):
            break
    step("clean up", clean_up)
    return steps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds each wait (file import, job, deployment) may take")
    parser.add_argument("--json", action="store_true", help="print the steps as JSON")


def run(args: argparse.Namespace) -> int:
    from helpers import azure

    def show(step: Step) -> None:
        if not args.json:
            mark = "ok  " if step.ok else "FAIL"
            print(f"{mark} {step.name:<15} {step.seconds:7.1f} s  {step.detail}", flush=True)

    try:
        backend = azure.make_client()
    except azure.AzureSetupError as exc:
        print(f"azure-smoke: {exc}", file=sys.stderr)
        return 2
    with backend:
        if not args.json:
            print(f"azure-smoke against {backend.description}", flush=True)
        steps = run_smoke(backend, timeout=args.timeout, report=show)
    if args.json:
        print(json.dumps([step.__dict__ for step in steps], indent=2))
    return 0 if all(step.ok for step in steps) and len(steps) == 8 else 1
