"""The deployments API of Azure Resource Manager (``Microsoft.CognitiveServices``), served on
the emulator's own host: ``PUT|GET|DELETE /subscriptions/{sub}/resourceGroups/{rg}/providers/
Microsoft.CognitiveServices/accounts/{account}/deployments/{name}`` and the list.

Sources: resource-manager spec ``Microsoft.CognitiveServices/stable/2023-05-01``
(``examples/PutDeployment.json``: 201 with ``provisioningState: Accepted``, 200 on an update;
``examples/DeleteDeployment.json``: 200/204), ARM's ``ErrorResponse`` shape
``{"error": {"code", "message"}}``. The state moves ``Accepted`` → ``Creating`` →
``Succeeded`` over ``EMULATOR_DEPLOY_DELAY`` seconds (a fine-tuned deployment takes minutes on
Azure). A deployment's model is a base model, a fine-tuned model, a checkpoint's model name or
a checkpoint's ``ftchkpt-`` id (Microsoft Learn, "Deploy a checkpoint").
"""

from __future__ import annotations

import datetime
import re
import secrets
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .. import catalog
from ..errors import EmulatorError
from ..store import now, public
from .common import emulator_of, json_body, resolve_model, settle_deployment

MANAGEMENT = ("/subscriptions/{subscription}/resourceGroups/{group}/providers/"
              "Microsoft.CognitiveServices/accounts/{account}/deployments")
_DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

router = APIRouter()


def arm_error(status: int, code: str, message: str) -> EmulatorError:
    return EmulatorError(status, message, code=code, arm=True)


def iso(timestamp: int) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def deployment_record(resource_id: str, name: str, sku: dict, model: dict, created: int,
                      state: str = "Succeeded") -> dict:
    stamp = iso(created)
    return {
        "id": name,
        "_resource_id": resource_id,
        "_put_at": time.time(),
        "name": name,
        "type": "Microsoft.CognitiveServices/accounts/deployments",
        "sku": sku,
        "properties": {
            "model": model,
            "provisioningState": state,
            "capabilities": {"chatCompletion": "true"},
            "raiPolicyName": "Microsoft.Default",
        },
        "systemData": {"createdAt": stamp, "createdBy": "emulator", "createdByType": "User",
                       "lastModifiedAt": stamp, "lastModifiedBy": "emulator",
                       "lastModifiedByType": "User"},
        "etag": f'"{secrets.token_hex(8)}"',
        "created_at": created,
    }


def ensure_base_deployments(emulator) -> None:
    """The instructor's base deployments (``gpt-4o`` ...) exist from the start, Succeeded."""
    for name in catalog.BASE_DEPLOYMENTS:
        if emulator.store.get("deployment", name) is None:
            path = MANAGEMENT.format(subscription="local", group="local", account="emulator")
            version = catalog.UNVERSIONED[name].removeprefix(name + "-")
            emulator.store.insert("deployment", deployment_record(
                f"{path}/{name}", name, {"name": "Standard", "capacity": 1},
                {"format": "OpenAI", "name": name, "version": version}, created=now(),
            ))


def arm_view(record: dict, resource_id: str | None = None) -> dict:
    view = public(record)
    view.pop("created_at", None)
    view["id"] = resource_id or record["_resource_id"]
    return view


@router.get(MANAGEMENT)
def list_deployments(subscription: str, group: str, account: str, request: Request):
    emulator = emulator_of(request)
    base = MANAGEMENT.format(subscription=subscription, group=group, account=account)
    return {"value": [arm_view(settle_deployment(emulator, d), f"{base}/{d['name']}")
                      for d in emulator.store.all("deployment")]}


@router.put(MANAGEMENT + "/{name}")
async def put_deployment(subscription: str, group: str, account: str, name: str,
                         request: Request):
    emulator = emulator_of(request)
    if not _DEPLOYMENT_NAME.match(name):
        raise arm_error(400, "InvalidDeploymentName", f"Invalid deployment name {name!r}: use "
                        "1-64 letters, digits, '-', '_' or '.'.")
    try:
        body = await json_body(request)
    except EmulatorError as exc:
        raise arm_error(400, "InvalidRequestContent", exc.message) from None
    properties = body.get("properties") if isinstance(body.get("properties"), dict) else {}
    model = properties.get("model") if isinstance(properties.get("model"), dict) else None
    if not model or not isinstance(model.get("name"), str):
        raise arm_error(400, "InvalidResourceProperties",
                        "The body needs properties.model.name (and format 'OpenAI', version "
                        "'1'): {'sku': {'name': 'standard', 'capacity': 1}, 'properties': "
                        "{'model': {'format': 'OpenAI', 'name': <fine_tuned_model>, "
                        "'version': '1'}}}.")
    if resolve_model(emulator, model["name"]) is None:
        raise arm_error(400, "DeploymentModelNotSupported",
                        f"The model '{model['name']}' cannot be deployed: it is neither a base "
                        "model nor the fine_tuned_model, a checkpoint model or a checkpoint id "
                        "(ftchkpt-...) of a succeeded fine-tuning job on this resource.")
    sku = body.get("sku") if isinstance(body.get("sku"), dict) else {"name": "standard",
                                                                     "capacity": 1}
    resource_id = (f"{MANAGEMENT.format(subscription=subscription, group=group, account=account)}"
                   f"/{name}")
    old = emulator.store.get("deployment", name)
    record = deployment_record(resource_id, name, sku,
                               {"format": model.get("format", "OpenAI"), "name": model["name"],
                                "version": str(model.get("version", "1"))},
                               created=old["created_at"] if old else now(), state="Accepted")
    if old:
        record["systemData"]["createdAt"] = old["systemData"]["createdAt"]
        record["systemData"]["lastModifiedAt"] = iso(now())
    created = emulator.store.upsert("deployment", record)
    return JSONResponse(arm_view(record), status_code=201 if created else 200)


@router.get(MANAGEMENT + "/{name}")
def get_deployment(subscription: str, group: str, account: str, name: str, request: Request):
    emulator = emulator_of(request)
    record = emulator.store.get("deployment", name)
    if record is None:
        raise arm_error(404, "DeploymentNotFound", f"The deployment '{name}' does not exist.")
    base = MANAGEMENT.format(subscription=subscription, group=group, account=account)
    return arm_view(settle_deployment(emulator, record), f"{base}/{name}")


@router.delete(MANAGEMENT + "/{name}")
def delete_deployment(subscription: str, group: str, account: str, name: str,
                      request: Request):
    deleted = emulator_of(request).store.delete("deployment", name)
    return Response(status_code=200 if deleted else 204)
