"""The client factory: which Azure OpenAI this notebook talks to (the real service, a server
that speaks its API, or the in-process emulator), and how to reach its management API.

:func:`make_client` reads the environment (the package docstring, ``helpers.azure``, lists the
variables) and returns a :class:`Backend`; :class:`AzureSetupError` says what to set when the
environment is not enough.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import urlparse

if TYPE_CHECKING:  # imported lazily at run time: the SDK is heavy
    from openai import AzureOpenAI

#: Data-plane API version: GA, with fine-tuning events, checkpoints and ``seed``.
DEFAULT_API_VERSION = "2024-10-21"
#: The management API version the upstream lab's deployment call uses.
MANAGEMENT_API_VERSION = "2023-05-01"
DEFAULT_MANAGEMENT_ENDPOINT = "https://management.azure.com"
DEFAULT_FT_DEPLOYMENT = "gpt-4o-ft"
DEFAULT_BASE_DEPLOYMENT = "gpt-4o"
#: The in-process emulator's API key (also the "management token" against it).
EMULATOR_API_KEY = "local-emulator-key"

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
_EMULATOR_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
_EMULATOR_RESOURCE_GROUP = "course-rg"
_EMULATOR_ACCOUNT = "course-emulator"


class AzureSetupError(RuntimeError):
    """The environment does not say enough to reach Azure; the message names what to set."""


@dataclass(frozen=True)
class Management:
    """How to reach Azure's deployments management API (the lab's ``PUT``).

    ``http`` is an ``httpx.Client`` (a ``fastapi.testclient.TestClient`` for the in-process
    emulator), so the same code sends the request to Azure, to an emulator server or in-process.
    """

    endpoint: str
    subscription: str | None
    resource_group: str | None
    account: str | None
    token: str | None = field(repr=False)
    http: Any = field(repr=False, compare=False)
    api_version: str = MANAGEMENT_API_VERSION

    def deployment_url(self, name: str) -> str:
        missing = [
            var
            for var, value in (
                ("AZURE_SUBSCRIPTION_ID", self.subscription),
                ("AZURE_RESOURCE_GROUP", self.resource_group),
                ("AZURE_OPENAI_RESOURCE", self.account),
            )
            if not value
        ]
        if missing:
            raise AzureSetupError(
                "The deployment call needs " + ", ".join(missing) + " in the environment: the "
                "subscription id, resource group and Azure OpenAI resource name shown on the "
                "resource's Overview page in the Azure portal."
            )
        return (
            f"{self.endpoint.rstrip('/')}/subscriptions/{self.subscription}"
            f"/resourceGroups/{self.resource_group}/providers/Microsoft.CognitiveServices"
            f"/accounts/{self.account}/deployments/{name}"
        )

    def headers(self) -> dict[str, str]:
        if not self.token:
            raise AzureSetupError(
                "The deployment call needs TEMP_AUTH_TOKEN: an Azure Resource Manager access "
                "token. Get one with `az account get-access-token --query accessToken -o tsv` "
                "and set it in the environment before starting Jupyter (never in the notebook)."
            )
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}


@dataclass
class Backend:
    """What :func:`make_client` returns: the client and where it leads.

    ``kind`` is ``"azure"`` (an Azure OpenAI endpoint from the environment) or ``"emulator"``
    (the in-process emulator, ``emulator`` is the running instance). ``poll_interval`` is a
    sensible pause between status polls for that backend. Close it (or use ``with``) to stop an
    in-process emulator's worker.
    """

    client: AzureOpenAI
    kind: Literal["azure", "emulator"]
    description: str
    management: Management
    ft_deployment: str = DEFAULT_FT_DEPLOYMENT
    base_deployment: str = DEFAULT_BASE_DEPLOYMENT
    poll_interval: float = 10.0
    emulator: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Close the client's connections and stop an in-process emulator."""
        if self.emulator is not None:
            self.emulator.close()
            self.emulator = None
        else:
            self.client.close()
            self.management.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _is_loopback(url: str) -> bool:
    return (urlparse(url).hostname or "") in _LOOPBACK_HOSTS


def _default_account(endpoint: str) -> str | None:
    """``https://my-res.openai.azure.com`` → ``my-res`` (Azure's endpoint is named after it)."""
    host = urlparse(endpoint).hostname or ""
    if host.endswith((".openai.azure.com", ".cognitiveservices.azure.com")):
        return host.split(".", 1)[0]
    return None


def make_client(
    env: Mapping[str, str] | None = None,
    *,
    state_dir: str | Path | None = None,
    emulator_api_key: str = EMULATOR_API_KEY,
) -> Backend:
    """The Azure OpenAI client this notebook should use, and a description of it.

    ``env`` defaults to ``os.environ``. ``state_dir`` is where an in-process emulator keeps its
    files and models (a temporary folder when omitted).
    """
    env = os.environ if env is None else env
    endpoint = _env(env, "AZURE_OPENAI_ENDPOINT")
    api_key = _env(env, "AZURE_OPENAI_API_KEY")
    ft_deployment = _env(env, "AZURE_OPENAI_FT_DEPLOYMENT") or DEFAULT_FT_DEPLOYMENT
    base_deployment = _env(env, "AZURE_OPENAI_BASE_DEPLOYMENT") or DEFAULT_BASE_DEPLOYMENT
    if bool(endpoint) != bool(api_key):
        have, lack = (
            ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY")
            if endpoint
            else ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT")
        )
        raise AzureSetupError(
            f"{have} is set but {lack} is not. Set both (from the resource's 'Keys and "
            "Endpoint' page in the Azure portal) to use Azure, or neither to use the local "
            "emulator."
        )

    if endpoint and api_key:
        import httpx
        from openai import AzureOpenAI

        api_version = _env(env, "AZURE_OPENAI_API_VERSION") or DEFAULT_API_VERSION
        client = AzureOpenAI(azure_endpoint=endpoint, api_key=api_key, api_version=api_version)
        management = Management(
            endpoint=_env(env, "AZURE_MANAGEMENT_ENDPOINT") or DEFAULT_MANAGEMENT_ENDPOINT,
            subscription=_env(env, "AZURE_SUBSCRIPTION_ID"),
            resource_group=_env(env, "AZURE_RESOURCE_GROUP"),
            account=_env(env, "AZURE_OPENAI_RESOURCE") or _default_account(endpoint),
            token=_env(env, "TEMP_AUTH_TOKEN"),
            http=httpx.Client(timeout=60.0),
        )
        poll = _env(env, "AZURE_OPENAI_POLL_INTERVAL")
        return Backend(
            client=client,
            kind="azure",
            description=f"Azure OpenAI at {endpoint} (api-version {api_version})",
            management=management,
            ft_deployment=ft_deployment,
            base_deployment=base_deployment,
            poll_interval=float(poll) if poll else (1.0 if _is_loopback(endpoint) else 10.0),
        )

    from helpers import platform
    from helpers.emulator.client import InProcessEmulator

    emulator = InProcessEmulator(state_dir=state_dir, api_key=emulator_api_key)
    management = Management(
        endpoint=str(emulator.http.base_url).rstrip("/"),
        subscription=_EMULATOR_SUBSCRIPTION,
        resource_group=_EMULATOR_RESOURCE_GROUP,
        account=_EMULATOR_ACCOUNT,
        token=emulator_api_key,
        http=emulator.http,
    )
    return Backend(
        client=emulator.azure_client(),
        kind="emulator",
        description=(
            f"the local Azure OpenAI emulator, in this process ({platform.mode()} mode); set "
            "AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY to use Azure instead"
        ),
        management=management,
        ft_deployment=ft_deployment,
        base_deployment=base_deployment,
        # fast mode trains for seconds; a real model for minutes, where polls only cost CPU
        poll_interval=0.5 if platform.is_fast() else 2.0,
        emulator=emulator,
    )
