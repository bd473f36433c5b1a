"""Which models the emulator knows, what Azure says about each (can it be fine-tuned, until
when), which local backend serves them, and how fine-tuned models and checkpoints are named.

Sources (see ``helpers/emulator/README.md`` for the full list):

- Azure fine-tunes *versioned* base models only: the bare ``gpt-4o`` is refused with
  ``{"code": "invalidPayload", "message": "The specified base model does not support
  fine-tuning."}`` (learn.microsoft.com/answers/questions/1599638; mslearn-databricks #121).
- The model object (``capabilities``, ``lifecycle_status``, ``deprecation`` with ``fine_tune``
  and ``inference`` unix times, ``created_at``; a fine-tuned model adds ``model`` and
  ``fine_tune``): azure-rest-api-specs, ``.../AzureOpenAI/authoring/preview/2025-04-01-preview/
  azureopenai.json`` definitions ``Model``, ``Capabilities``, ``LifeCycleStatus`` and
  ``examples/get_models.json``.
- Retirement dates: Azure's model retirement table, "Fine-tuned models" section
  (learn.microsoft.com/azure/ai-foundry/openai/concepts/model-retirements, late 2025): training
  retires with the base model; deployments of models fine-tuned since gpt-4o-2024-08-06 retire
  one year after training does.
- Checkpoint names ``{fine_tuned_model}:ckpt-step-{N}`` and ``ftchkpt-`` ids: the same spec's
  ``examples/get_finetuning_job_checkpoints.json`` and Microsoft Learn's fine-tuning tutorial
  (``tutorials/fine-tune.md``: the last checkpoint is the fine-tuned model itself, without
  ``:ckpt-step``).

Every Azure model name is served by one small local model: ``smollm2`` (SmolLM2-135M-Instruct,
LoRA) in full mode, ``tiny`` (a two-layer model, seconds per job) in fast mode.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass

from helpers import platform

BACKENDS = ("tiny", "smollm2")

#: The model the emulator's notebook path fine-tunes when nothing else is configured.
DEFAULT_FT_MODEL = "gpt-4o-2024-08-06"


@dataclass(frozen=True)
class BaseModel:
    """One base model as Azure's models list describes it."""
    id: str
    fine_tune: bool  # capabilities.fine_tune: a versioned, fine-tunable model
    created_at: int
    #: last day fine-tuning of this model is offered (Azure's retirement table), if known
    fine_tune_retires: datetime.date | None = None
    #: last day deployments of this model (or its fine-tunes) answer, if known
    inference_retires: datetime.date | None = None
    methods: tuple[str, ...] = ("supervised",)


def _d(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


_LAUNCH = {  # release dates of the versions (their version string), as unix times
    "gpt-4o-2024-08-06": 1722902400,
    "gpt-4o-mini-2024-07-18": 1721260800,
    "gpt-4.1-2025-04-14": 1744588800,
    "gpt-4.1-mini-2025-04-14": 1744588800,
    "gpt-4.1-nano-2025-04-14": 1744588800,
    "gpt-35-turbo-0125": 1706140800,
}

#: Fine-tunable (versioned) base models with Azure's fine-tuning retirement dates. DPO is
#: offered for gpt-4o (2024-08-06) and the gpt-4.1 family (Microsoft Learn, "Direct preference
#: optimization": supported models).
FINE_TUNABLE: dict[str, BaseModel] = {
    m.id: m for m in (
        BaseModel("gpt-4o-2024-08-06", True, _LAUNCH["gpt-4o-2024-08-06"],
                  _d("2026-03-31"), _d("2027-03-31"), ("supervised", "dpo")),
        BaseModel("gpt-4o-mini-2024-07-18", True, _LAUNCH["gpt-4o-mini-2024-07-18"],
                  _d("2026-03-31"), _d("2027-03-31")),
        BaseModel("gpt-4.1-2025-04-14", True, _LAUNCH["gpt-4.1-2025-04-14"],
                  _d("2026-10-14"), _d("2027-10-14"), ("supervised", "dpo")),
        BaseModel("gpt-4.1-mini-2025-04-14", True, _LAUNCH["gpt-4.1-mini-2025-04-14"],
                  _d("2026-10-14"), _d("2027-10-14"), ("supervised", "dpo")),
        BaseModel("gpt-4.1-nano-2025-04-14", True, _LAUNCH["gpt-4.1-nano-2025-04-14"],
                  _d("2026-10-14"), _d("2027-10-14"), ("supervised", "dpo")),
        # In Azure's fine-tuning table; no fine-tuning retirement date in the late-2025 table.
        BaseModel("gpt-35-turbo-0125", True, _LAUNCH["gpt-35-turbo-0125"]),
    )
}

#: Unversioned names: deployable (the instructor's base deployments), never fine-tunable.
UNVERSIONED: dict[str, str] = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-35-turbo": "gpt-35-turbo-0125",
}

#: Every base model name the models list shows, versioned ones first.
BASE_MODELS: tuple[str, ...] = (*FINE_TUNABLE, *UNVERSIONED)

#: Deployments that exist from the start (name = model), like a fresh Azure OpenAI resource
#: on which the instructor deployed the usual chat models.
BASE_DEPLOYMENTS = ("gpt-4o", "gpt-4o-mini", "gpt-35-turbo", "gpt-4.1")

NOT_FINE_TUNABLE = "The specified base model does not support fine-tuning."

_FT_NAME = re.compile(r"^(?P<base>.+?)\.ft-(?P<hex>[0-9a-f]{32})(?:-(?P<suffix>[A-Za-z0-9_-]+))?"
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
    return name in FINE_TUNABLE or name in UNVERSIONED


def today() -> datetime.date:
    """Today's date in UTC (the model clock); ``EMULATOR_TODAY=YYYY-MM-DD`` overrides it."""
    forced = os.environ.get("EMULATOR_TODAY", "").strip()
    if forced:
        return datetime.date.fromisoformat(forced)
    return datetime.datetime.now(datetime.UTC).date()


def _unix(day: datetime.date) -> int:
    return int(datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp())


def fine_tune_retired(model: BaseModel, on: datetime.date | None = None) -> bool:
    """Whether Azure no longer fine-tunes ``model`` (its retirement date has passed)."""
    on = on or today()
    return model.fine_tune_retires is not None and on > model.fine_tune_retires


def lifecycle_status(model: BaseModel, on: datetime.date | None = None) -> str:
    """``deprecated`` once fine-tuning has retired, ``deprecating`` within 90 days of it,
    ``generally-available`` otherwise (Azure documents the values, not when each applies)."""
    on = on or today()
    if model.fine_tune_retires is None:
        return "generally-available"
    if on > model.fine_tune_retires:
        return "deprecated"
    if (model.fine_tune_retires - on).days <= 90:
        return "deprecating"
    return "generally-available"


def retirement_note(model_id: str, on: datetime.date | None = None) -> str | None:
    """What Azure does with a fine-tuning job on ``model_id`` today, when that differs from the
    lab's time (a retired model), else ``None``."""
    model = FINE_TUNABLE.get(model_id)
    if model is None or model.fine_tune_retires is None:
        return None
    on = on or today()
    if fine_tune_retired(model, on):
        return (f"Azure retired fine-tuning of {model_id} on {model.fine_tune_retires.isoformat()}:"
                f" today Azure refuses this job ('{NOT_FINE_TUNABLE}'). The emulator trains it "
                "anyway because it stands in for Azure as the lab knew it; on Azure, choose a "
                "model whose models-list entry has capabilities.fine_tune true and a "
                "deprecation.fine_tune date still ahead.")
    days = (model.fine_tune_retires - on).days
    if days <= 90:
        return (f"Azure retires fine-tuning of {model_id} on "
                f"{model.fine_tune_retires.isoformat()} ({days} days from now); after that day "
                "Azure refuses new jobs on it.")
    return None


def model_object(model_id: str) -> dict:
    """A base model as ``GET /openai/models`` shows it (Azure's ``Model`` definition)."""
    model = FINE_TUNABLE.get(model_id)
    if model is None:
        versioned = FINE_TUNABLE[UNVERSIONED[model_id]]
        model = BaseModel(model_id, False, versioned.created_at, None,
                          versioned.inference_retires)
    deprecation = {}
    if model.fine_tune_retires is not None:
        deprecation["fine_tune"] = _unix(model.fine_tune_retires)
    if model.inference_retires is not None:
        deprecation["inference"] = _unix(model.inference_retires)
    return {
        "id": model_id, "object": "model", "created_at": model.created_at,
        "status": "succeeded", "owned_by": "system",
        "lifecycle_status": lifecycle_status(model),
        "capabilities": {"fine_tune": model.fine_tune, "inference": True,
                         "completion": False, "chat_completion": True, "embeddings": False},
        "deprecation": deprecation,
    }


def fine_tuned_object(name: str, job: dict) -> dict:
    """A succeeded job's model as the models list shows it (``model`` and ``fine_tune`` set)."""
    base = FINE_TUNABLE.get(job["_root_model"])
    deprecation = {}
    if base is not None and base.inference_retires is not None:
        deprecation["inference"] = _unix(base.inference_retires)
    return {
        "id": name, "object": "model", "created_at": job.get("finished_at") or job["created_at"],
        "status": "succeeded", "owned_by": "organization-owner",
        "model": job["_root_model"], "fine_tune": job["id"],
        "lifecycle_status": "generally-available",
        "capabilities": {"fine_tune": True, "inference": True, "completion": False,
                         "chat_completion": True, "embeddings": False},
        "deprecation": deprecation,
    }


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
