"""What the routers share: the app's :class:`~helpers.emulator.app.Emulator`, request parsing,
list pages, and the lazy state changes Azure makes over time (a file going from ``pending`` to
``processed``, a deployment from ``Accepted`` through ``Creating`` to ``Succeeded``)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from fastapi import Request

from .. import catalog
from ..errors import bad_request
from ..store import public

if TYPE_CHECKING:
    from ..app import Emulator
    from ..generation import ModelRef

DEPLOYMENT_NOT_READY = ("The API deployment for this resource does not exist. If you created the "
                        "deployment within the last 5 minutes, please wait a moment and try "
                        "again.")


def emulator_of(request: Request) -> Emulator:
    return request.app.state.emulator


def api_version(request: Request) -> str | None:
    return request.query_params.get("api-version")


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}", code="invalid_json") \
            from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    return body


def int_query(request: Request, name: str, default: int, low: int = 1, high: int = 10_000) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise bad_request(f"'{name}' must be an integer, got {value!r}.", param=name) from None
    if not low <= number <= high:
        raise bad_request(f"'{name}' must be between {low} and {high}, got {number}.", param=name)
    return number


def page(items: list[dict], has_more: bool) -> dict[str, Any]:
    data = [public(item) for item in items]
    return {"object": "list", "data": data, "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


# --------------------------------------------------------------------------- files

def _import_problem(data: bytes) -> str | None:
    """Azure's import check of a fine-tune file: UTF-8 JSON Lines, one object a line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "The file is not UTF-8 encoded JSON Lines."
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return "The file is empty."
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            return f"Line {number} is not valid JSON; each line must be one JSON object."
        if not isinstance(value, dict):
            return f"Line {number} is not a JSON object."
    return None


def settle_file(emulator: Emulator, record: dict) -> dict:
    """A ``pending`` upload becomes ``processed`` (or ``error``) once its import time is up."""
    if record.get("status") != "pending" or time.time() < record.get("_ready_at", 0):
        return record
    problem = None
    if record["purpose"] == "fine-tune":
        problem = _import_problem(emulator.store.read_file_bytes(record["id"]))
    change = {"status": "error", "status_details": problem} if problem else \
        {"status": "processed"}

    def apply(current: dict) -> dict:
        if current.get("status") == "pending":
            current.update(change)
        return current

    return emulator.store.update("file", record["id"], apply)


# --------------------------------------------------------------------------- deployments

def settle_deployment(emulator: Emulator, record: dict) -> dict:
    """``Accepted`` → ``Creating`` → ``Succeeded`` as the deployment's time passes."""
    properties = record["properties"]
    if properties["provisioningState"] == "Succeeded":
        return record
    elapsed = time.time() - record.get("_put_at", 0)
    state = "Succeeded" if elapsed >= emulator.deploy_delay else "Creating"
    if state != properties["provisioningState"]:
        def apply(current: dict) -> dict:
            if current["properties"]["provisioningState"] != "Succeeded":
                current["properties"]["provisioningState"] = state
            return current

        record = emulator.store.update("deployment", record["name"], apply)
    return record


def ready_deployment(emulator: Emulator, name: str) -> dict | None:
    record = emulator.store.get("deployment", name)
    if record is None:
        return None
    record = settle_deployment(emulator, record)
    return record if record["properties"]["provisioningState"] == "Succeeded" else None


# --------------------------------------------------------------------------- models

def fine_tuned_models(emulator: Emulator) -> dict[str, dict]:
    return {job["fine_tuned_model"]: job for job in emulator.store.all("job")
            if job["status"] == "succeeded" and job.get("fine_tuned_model")
            and not job.get("_deleted")}


def resolve_model(emulator: Emulator, name: str) -> ModelRef | None:
    """What answers for a base model, a fine-tuned model, a checkpoint's model name or a
    checkpoint's ``ftchkpt-`` id."""
    from ..generation import ModelRef

    if catalog.is_base_model(name):
        return ModelRef(emulator.backend)
    if name.startswith("ftchkpt-"):
        for job in emulator.store.all("job"):
            if job.get("_deleted"):
                continue
            for checkpoint in emulator.store.all("checkpoint", parent=job["id"]):
                if checkpoint["id"] == name:
                    folder = emulator.store.job_models_dir(job["id"]) / checkpoint["_folder"]
                    return ModelRef(job["_backend"], str(folder))
        return None
    parsed = catalog.parse_fine_tuned(name)
    if parsed is None:
        return None
    job = emulator.store.get("job", parsed["job_id"])
    if job is None or job["status"] != "succeeded" or job.get("_deleted"):
        return None
    folder = emulator.store.job_models_dir(job["id"])
    if parsed["step"] is None and job.get("fine_tuned_model") == name:
        return ModelRef(job["_backend"], str(folder / "final"))
    for checkpoint in emulator.store.all("checkpoint", parent=job["id"]):
        if checkpoint["fine_tuned_model_checkpoint"] == name:
            return ModelRef(job["_backend"], str(folder / checkpoint["_folder"]))
    return None
