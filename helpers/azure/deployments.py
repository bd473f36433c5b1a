"""Deployments, through Azure's management API (another host and credential than the data
plane): the lab's ``PUT`` prepared and sent, its provisioning waited for, read and deleted."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .backend import Backend


class DeploymentError(RuntimeError):
    """The management API refused or failed a deployment call; the message holds its answer."""

    def __init__(self, message: str, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


@dataclass(frozen=True)
class DeploymentRequest:
    """The lab's management call, ready to send. Its ``repr`` hides the token."""

    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    body: dict[str, Any] | None

    def redacted_headers(self) -> dict[str, str]:
        return {k: ("Bearer ***" if k == "Authorization" else v) for k, v in self.headers.items()}


def deployment_request(
    backend: Backend,
    model: str,
    name: str | None = None,
    *,
    sku: str = "standard",
    capacity: int = 1,
) -> DeploymentRequest:
    """The ``PUT`` that deploys ``model`` (a fine-tuned model's name) as deployment ``name``."""
    management = backend.management
    name = name or backend.ft_deployment
    return DeploymentRequest(
        method="PUT",
        url=management.deployment_url(name),
        params={"api-version": management.api_version},
        headers=management.headers(),
        body={
            "sku": {"name": sku, "capacity": capacity},
            "properties": {"model": {"format": "OpenAI", "name": model, "version": "1"}},
        },
    )


def _management_error(response: Any, action: str) -> DeploymentError:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    error = body.get("error", {}) if isinstance(body, dict) else {}
    message = error.get("message") if isinstance(error, dict) else None
    hint = ""
    if response.status_code == 401:
        hint = (
            " TEMP_AUTH_TOKEN is missing, wrong or expired (tokens last about an hour): "
            "get a fresh one with `az account get-access-token`."
        )
    elif response.status_code == 404:
        hint = " Check AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZURE_OPENAI_RESOURCE."
    return DeploymentError(
        f"{action} failed with HTTP {response.status_code}: {message or body}.{hint}",
        status_code=response.status_code,
        body=body,
    )


def send(backend: Backend, request: DeploymentRequest) -> Any:
    """Send a prepared management request; return the response (an ``httpx.Response``)."""
    return backend.management.http.request(
        request.method,
        request.url,
        params=request.params,
        headers=request.headers,
        json=request.body,
    )


def get_deployment(backend: Backend, name: str | None = None) -> dict[str, Any] | None:
    """The deployment's management record, or ``None`` when it does not exist."""
    management = backend.management
    response = management.http.get(
        management.deployment_url(name or backend.ft_deployment),
        params={"api-version": management.api_version},
        headers=management.headers(),
    )
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        raise _management_error(response, "Reading the deployment")
    return response.json()


def deploy(
    backend: Backend,
    model: str,
    name: str | None = None,
    *,
    wait: bool = True,
    timeout: float = 1800.0,
    poll_interval: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Deploy a fine-tuned model, a checkpoint's model or a checkpoint's ``ftchkpt-`` id (the
    lab's ``PUT``) and, with ``wait``, poll until its ``provisioningState`` goes from
    ``Accepted`` through ``Creating`` to ``Succeeded``. Returns the deployment record. Azure
    takes minutes to provision a fine-tuned deployment (the emulator a fraction of a second),
    and answers chat calls to it with 404 ``DeploymentNotFound`` until then."""
    name = name or backend.ft_deployment
    response = send(backend, deployment_request(backend, model, name))
    if response.status_code >= 400:
        raise _management_error(response, f"Deploying {model} as {name!r}")
    record = response.json()
    deadline = time.monotonic() + timeout
    interval = backend.poll_interval if poll_interval is None else poll_interval
    while wait:
        state = (record.get("properties") or {}).get("provisioningState", "Succeeded")
        if state == "Succeeded":
            break
        if state in {"Failed", "Canceled"}:
            raise DeploymentError(f"Deployment {name!r} ended {state}: {record}", body=record)
        if time.monotonic() > deadline:
            raise TimeoutError(f"Deployment {name!r} still {state} after {timeout:.0f} s")
        sleep(interval)
        record = get_deployment(backend, name) or record
    return record


def delete_deployment(backend: Backend, name: str | None = None) -> bool:
    """Delete a deployment (a deployed fine-tuned model is billed per hour while it exists).
    Returns ``False`` when there was nothing to delete."""
    management = backend.management
    response = management.http.delete(
        management.deployment_url(name or backend.ft_deployment),
        params={"api-version": management.api_version},
        headers=management.headers(),
    )
    if response.status_code >= 400 and response.status_code != 404:
        raise _management_error(response, "Deleting the deployment")
    # Azure Resource Manager answers 200/202 when it deletes, 204 when there was nothing.
    return response.status_code in {200, 202}
