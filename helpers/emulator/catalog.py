"""Which model names the emulator knows, which local backend serves them, and how fine-tuned
models are named.

Every Azure base model name is served by one small local model: ``smollm2`` (the packaged
SmolLM2-135M-Instruct, LoRA fine-tuning) in full mode, ``tiny`` (a randomly initialised
two-layer model, seconds per job) in fast mode. ``EMULATOR_BACKEND`` or ``create_app(backend=)``
picks one explicitly.
"""

from __future__ import annotations

import os
import re

from helpers import platform

BACKENDS = ("tiny", "smollm2")

#: Base models listed by ``models.list`` (Azure spells gpt-3.5 ``gpt-35``), fine-tunable ones.
BASE_MODELS = (
    "gpt-4o",
    "gpt-4o-2024-08-06",
    "gpt-4o-mini",
    "gpt-4o-mini-2024-07-18",
    "gpt-4.1",
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano",
    "gpt-4.1-nano-2025-04-14",
    "gpt-35-turbo",
    "gpt-35-turbo-0125",
)

#: Deployments that exist from the start (name = model), like a fresh Azure OpenAI resource
#: on which the instructor deployed the usual chat models.
BASE_DEPLOYMENTS = ("gpt-4o", "gpt-4o-mini", "gpt-35-turbo", "gpt-4.1")

_FT_NAME = re.compile(r"^(?P<base>.+)\.ft-(?P<hex>[0-9a-f]{32})(?:-(?P<suffix>[A-Za-z0-9_.-]+))?"
                      r"(?::ckpt-step-(?P<step>\d+))?$")


def default_backend(requested: str | None = None) -> str:
    """The backend for base models: ``requested``, else ``EMULATOR_BACKEND``, else ``tiny`` in
    fast mode and ``smollm2`` otherwise."""
    name = (requested or os.environ.get("EMULATOR_BACKEND") or "").strip().lower()
    if not name:
        name = "tiny" if platform.is_fast() else "smollm2"
    if name not in BACKENDS:
        raise ValueError(
            f"Unknown emulator backend {name!r}; choose one of {', '.join(BACKENDS)} "
            "(EMULATOR_BACKEND or --backend)."
        )
    return name


def is_base_model(name: str) -> bool:
    return name in BASE_MODELS


def fine_tuned_name(base: str, job_id: str, suffix: str | None = None) -> str:
    """Azure's name for a fine-tuned model: ``{base}.ft-{job hex}`` (``-{suffix}`` appended)."""
    name = f"{base}.ft-{job_id.split('-', 1)[1]}"
    return f"{name}-{suffix}" if suffix else name


def checkpoint_name(fine_tuned: str, step: int) -> str:
    return f"{fine_tuned}:ckpt-step-{step}"


def parse_fine_tuned(name: str) -> dict | None:
    """``{"base", "job_id", "suffix", "step"}`` for a fine-tuned (or checkpoint) model name."""
    match = _FT_NAME.match(name)
    if not match:
        return None
    step = match.group("step")
    return {
        "base": match.group("base"),
        "job_id": f"ftjob-{match.group('hex')}",
        "suffix": match.group("suffix"),
        "step": int(step) if step else None,
    }
