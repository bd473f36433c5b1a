"""A fine-tuning job request, checked as Azure checks it, and the record the emulator keeps.

Sources: the authoring specs' ``FineTuningJobCreation`` / ``FineTuningJob`` (azure-rest-api-specs
``.../AzureOpenAI/authoring/stable/2024-10-21`` and ``preview/2025-04-01-preview``):

- ``model`` is a versioned base model with ``capabilities.fine_tune`` (else 400
  ``invalidPayload`` "The specified base model does not support fine-tuning.") or, for
  continuous fine-tuning, a fine-tuned model of this resource (Microsoft Learn, "Continuous
  fine-tuning": the job's ``model`` is the fine-tuned model's name);
- the training and validation files must be ``processed`` imports with purpose ``fine-tune``
  ("must point to a completed file import"; the exact wording is not in the specs);
- ``hyperparameters`` left on auto are reported as ``-1`` until the job runs
  (``examples/post_finetuning_job.json``: ``"n_epochs": -1``);
- ``method`` is ``supervised`` or ``dpo`` (``FineTuningMethodType``), DPO adds ``beta``;
- ``integrations`` (``wandb``, ``WandBIntegrationRequestWrapper``) are kept and echoed;
- ``trainingType`` (Standard, GlobalStandard, developer) is the training tier of Microsoft
  Learn's fine-tuning pages; the specs do not list it, so it is optional and recorded.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

from . import catalog, protocol
from .errors import EmulatorError, bad_request
from .store import new_id, now

if TYPE_CHECKING:
    from .app import Emulator

_SUFFIX = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
AUTO = -1  # what Azure shows for a hyperparameter left on auto


def _number(value: Any, name: str, *, integer: bool, low: float, high: float) -> Any:
    if value in ("auto", AUTO, None):
        return "auto"
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise bad_request(f"hyperparameters.{name} must be 'auto' or {kind} between {low} and "
                          f"{high}, got {value!r}.", param=f"hyperparameters.{name}")
    return value


def hyperparameters(raw: Any, method: str = "supervised") -> dict[str, Any]:
    """The requested hyperparameters, ``"auto"`` where left out."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise bad_request("'hyperparameters' must be an object.", param="hyperparameters")
    known = {"n_epochs", "batch_size", "learning_rate_multiplier"}
    if method == "dpo":
        known |= {"beta"}
    unknown = set(raw) - known
    if unknown:
        raise bad_request(f"Unknown hyperparameters {sorted(unknown)}; {method} fine-tuning "
                          f"takes {', '.join(sorted(known))}.", param="hyperparameters")
    out = {
        "n_epochs": _number(raw.get("n_epochs"), "n_epochs", integer=True, low=1, high=50),
        "batch_size": _number(raw.get("batch_size"), "batch_size", integer=True, low=1, high=256),
        "learning_rate_multiplier": _number(raw.get("learning_rate_multiplier"),
                                            "learning_rate_multiplier", integer=False,
                                            low=1e-6, high=10),
    }
    if method == "dpo":
        out["beta"] = _number(raw.get("beta"), "beta", integer=False, low=1e-3, high=2)
    return out


def shown(requested: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as Azure shows them before the job runs: ``-1`` for auto."""
    return {k: (AUTO if v == "auto" else v) for k, v in requested.items()}


def _method(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    method = body.get("method")
    top = hyperparameters(body.get("hyperparameters"))
    if method is None:
        return "supervised", top
    if not isinstance(method, dict) or method.get("type") not in ("supervised", "dpo"):
        kind = method.get("type") if isinstance(method, dict) else method
        raise bad_request(f"method type {kind!r} is not supported; use 'supervised' or 'dpo' "
                          "(method={'type': 'dpo', 'dpo': {'hyperparameters': {'beta': 0.1}}}).",
                          param="method.type", code="invalidPayload")
    kind = method["type"]
    settings = method.get(kind) or {}
    if not isinstance(settings, dict):
        raise bad_request(f"method.{kind} must be an object.", param=f"method.{kind}")
    if settings.get("hyperparameters") is not None:
        return kind, hyperparameters(settings["hyperparameters"], kind)
    return kind, {**top, **({"beta": "auto"} if kind == "dpo" else {})}


def _integrations(raw: Any) -> list[dict] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise bad_request("'integrations' must be a list.", param="integrations")
    for i, item in enumerate(raw):
        wandb = item.get("wandb") if isinstance(item, dict) else None
        if not isinstance(item, dict) or item.get("type") != "wandb" or not isinstance(wandb, dict) \
                or not isinstance(wandb.get("project"), str) or not wandb["project"]:
            raise bad_request(f"integrations[{i}] must be {{'type': 'wandb', 'wandb': "
                              "{'project': <name>}} (the only integration Azure offers).",
                              param=f"integrations[{i}]")
        if "tags" in wandb and not (isinstance(wandb["tags"], list)
                                    and all(isinstance(t, str) for t in wandb["tags"])):
            raise bad_request(f"integrations[{i}].wandb.tags must be a list of strings.",
                              param=f"integrations[{i}].wandb.tags")
    return raw


def _training_type(raw: Any) -> str:
    if raw is None:
        return "Standard"
    canonical = protocol.TRAINING_TYPES.get(str(raw).lower()) if isinstance(raw, str) else None
    if canonical is None:
        raise bad_request(f"trainingType must be one of {', '.join(protocol.TRAINING_TYPES.values())};"
                          f" got {raw!r}.", param="trainingType", code="invalidPayload")
    return canonical


def _base(emulator: Emulator, model: Any) -> tuple[str, str | None]:
    """The job's root base model and, for continuous fine-tuning, the folder it starts from."""
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required: a versioned base model such as "
                          f"'{catalog.DEFAULT_FT_MODEL}'.", param="model")
    if model in catalog.FINE_TUNABLE:
        return model, None
    parsed = catalog.parse_fine_tuned(model)
    if parsed and parsed["step"] is None:
        parent = emulator.store.get("job", parsed["job_id"])
        if parent and not parent.get("_deleted") and parent["status"] == "succeeded" \
                and parent.get("fine_tuned_model") == model:
            return parent["_root_model"], str(emulator.store.job_models_dir(parent["id"])
                                              / "final")
    raise EmulatorError(400, catalog.NOT_FINE_TUNABLE, param="model", code="invalidPayload")


def check_file(emulator: Emulator, file_id: Any, param: str) -> str:
    """A processed ``fine-tune`` file's id, else 400 naming the problem."""
    from .routers.common import settle_file

    if not isinstance(file_id, str) or not file_id:
        raise bad_request(f"'{param}' must be a file id such as 'file-abc123' (the .id of "
                          "client.files.create(...)).", param=param)
    record = emulator.store.get("file", file_id)
    if record is None:
        raise bad_request(f"invalid {param}: no file with id '{file_id}' exists on this "
                          "resource; upload it first with client.files.create(...).",
                          param=param, code="invalidPayload")
    if record["purpose"] != "fine-tune":
        raise bad_request(f"invalid {param}: file '{file_id}' ({record['filename']}) was uploaded "
                          f"with purpose '{record['purpose']}'; a fine-tuning job needs files "
                          "uploaded with purpose='fine-tune'.", param=param,
                          code="invalidPayload")
    record = settle_file(emulator, record)
    if record["status"] != "processed":
        detail = f" ({record['status_details']})" if record.get("status_details") else ""
        raise bad_request(f"The {param.replace('_', ' ')} must point to a completed file import:"
                          f" file '{file_id}' is '{record['status']}'{detail}. Wait until "
                          "client.files.retrieve(id).status is 'processed' "
                          "(helpers.azure.wait_for_files).", param=param, code="invalidPayload")
    return file_id


def new_job(emulator: Emulator, body: dict[str, Any], api_version: str | None) -> dict[str, Any]:
    """The record of a new job, or an :class:`EmulatorError` saying what Azure would refuse."""
    root, init_from = _base(emulator, body.get("model"))
    kind, requested = _method(body)
    if kind == "dpo" and "dpo" not in catalog.FINE_TUNABLE[root].methods:
        raise bad_request(f"DPO is not offered for {root}; it is for "
                          + ", ".join(m.id for m in catalog.FINE_TUNABLE.values()
                                      if "dpo" in m.methods) + ".",
                          param="method.type", code="invalidPayload")
    training_file = check_file(emulator, body.get("training_file"), "training_file")
    validation_file = body.get("validation_file")
    if validation_file is not None:
        validation_file = check_file(emulator, validation_file, "validation_file")
    seed = body.get("seed")
    if seed is None:
        seed = secrets.randbelow(2**31)
    elif isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise bad_request(f"'seed' must be an integer between 0 and 2147483647, got {seed!r}.",
                          param="seed")
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or not _SUFFIX.match(suffix)):
        raise bad_request("'suffix' must be 1-40 letters, digits, '-' or '_'.", param="suffix")
    metadata = body.get("metadata")
    if metadata is not None and not (isinstance(metadata, dict) and
                                     all(isinstance(v, str) for v in metadata.values())):
        raise bad_request("'metadata' must be an object of string values.", param="metadata")

    beta = requested.pop("beta", None)
    public_hp = shown(requested)
    method_hp = {**public_hp, **({"beta": AUTO if beta == "auto" else beta} if kind == "dpo"
                                 else {})}
    return {
        "id": new_id("ftjob"),
        "object": "fine_tuning.job",
        "created_at": now(),
        "error": None,
        "fine_tuned_model": None,
        "finished_at": None,
        "hyperparameters": public_hp,
        "model": body["model"],
        "organization_id": "org-local-emulator",
        "result_files": [],
        "seed": seed,
        "status": "pending",
        "trained_tokens": None,
        "training_file": training_file,
        "validation_file": validation_file,
        "estimated_finish": None,
        "integrations": _integrations(body.get("integrations")),
        "metadata": metadata,
        "method": {"type": kind, kind: {"hyperparameters": method_hp}},
        "suffix": suffix,
        "trainingType": _training_type(body.get("trainingType")),
        "_backend": emulator.backend,
        "_phase": "validating",
        "_method": kind,
        "_beta": 0.1 if beta in (None, "auto") else beta,
        "_root_model": root,
        "_init_from": init_from,
        "_api_version": api_version,
        "_requested_hyperparameters": requested,
    }
