"""Azure OpenAI protocol facts the routes share: API versions, content-filter annotations,
deployment provisioning states and timings.

Sources:

- API versions: the data-plane authoring and inference specs published in
  azure-rest-api-specs (``specification/cognitiveservices/data-plane/AzureOpenAI/``, folders
  ``stable/*`` and ``preview/*``) and Microsoft Learn's "API version lifecycle"; management
  versions from ``specification/cognitiveservices/resource-manager/Microsoft.CognitiveServices``.
  An api-version Azure does not serve answers 404 ``Resource not found`` (seen by many users,
  e.g. MicrosoftDocs/azure-docs#114602 for a missing one).
- ``method`` (supervised | dpo) first appears in the 2025-02-01-preview authoring spec
  (``examples/post_finetuning_job.json``; 2024-12-01-preview has none); pause and resume in
  2025-04-01-preview (``examples/pause_finetuning_job.json``; 2025-03-01-preview has none).
  Deleting a job is in every current version, GA 2024-10-21 included
  (``stable/2024-10-21/examples/delete_finetuning_job.yaml``).
- Content filtering: every chat reply carries ``prompt_filter_results`` and each choice
  ``content_filter_results``; when streaming, the first chunk has ``choices: []`` and only the
  prompt's results (inference spec ``createChatCompletionResponse`` /
  ``createChatCompletionStreamResponse``; e.g. openai-python users' IndexError reports,
  AbanteAI/mentat#429).
- ARM deployments: ``PUT`` answers 201 with ``provisioningState: Accepted`` (resource-manager
  ``stable/2023-05-01/examples/PutDeployment.json``);
  the state moves through ``Creating`` to ``Succeeded`` (poll the deployment with GET; the
  emulator sends no ``Azure-AsyncOperation`` header). Until then the data plane answers 404
  ``DeploymentNotFound``.
"""

from __future__ import annotations

import os

from helpers import platform

#: Data-plane api-versions Azure serves (GA and preview), oldest first.
DATA_PLANE_API_VERSIONS: tuple[str, ...] = (
    "2022-12-01", "2023-03-15-preview", "2023-05-15", "2023-06-01-preview",
    "2023-07-01-preview", "2023-08-01-preview", "2023-09-01-preview", "2023-10-01-preview",
    "2023-12-01-preview", "2024-02-01", "2024-02-15-preview", "2024-03-01-preview",
    "2024-04-01-preview", "2024-05-01-preview", "2024-06-01", "2024-07-01-preview",
    "2024-08-01-preview", "2024-09-01-preview", "2024-10-01-preview", "2024-10-21",
    "2024-12-01-preview", "2025-01-01-preview", "2025-02-01-preview", "2025-03-01-preview",
    "2025-04-01-preview",
)
#: The first api-version with the ``method`` (supervised | dpo) field of a job.
FIRST_WITH_METHOD = "2025-02-01-preview"
#: The first api-version with ``/fine_tuning/jobs/{id}/pause`` and ``/resume``.
FIRST_WITH_PAUSE = "2025-04-01-preview"
#: api-versions of the Microsoft.CognitiveServices resource provider (deployments).
MANAGEMENT_API_VERSIONS: tuple[str, ...] = (
    "2021-10-01", "2022-03-01", "2022-10-01", "2022-12-01", "2023-05-01",
    "2023-10-01-preview", "2024-04-01-preview", "2024-06-01-preview", "2024-10-01",
    "2025-04-01-preview", "2025-06-01",
)
#: Training tiers (``trainingType``), as Microsoft Learn's fine-tuning pages spell them.
TRAINING_TYPES: dict[str, str] = {"standard": "Standard", "globalstandard": "GlobalStandard",
                                  "developer": "developer"}

_SAFE = {"filtered": False, "severity": "safe"}


def _at_least(api_version: str | None, first: str) -> bool:
    """Whether a preview ``api_version`` is ``first`` or newer (the v1 route, which has no
    api-version, has everything)."""
    if api_version is None:
        return True
    return api_version.endswith("-preview") and api_version >= first


def has_method(api_version: str | None) -> bool:
    return _at_least(api_version, FIRST_WITH_METHOD)


def has_pause(api_version: str | None) -> bool:
    return _at_least(api_version, FIRST_WITH_PAUSE)


def prompt_filter_results() -> list[dict]:
    return [{"prompt_index": 0, "content_filter_results": {
        "hate": dict(_SAFE), "jailbreak": {"filtered": False, "detected": False},
        "self_harm": dict(_SAFE), "sexual": dict(_SAFE), "violence": dict(_SAFE)}}]


def choice_filter_results() -> dict:
    return {"hate": dict(_SAFE), "protected_material_code": {"filtered": False, "detected": False},
            "protected_material_text": {"filtered": False, "detected": False},
            "self_harm": dict(_SAFE), "sexual": dict(_SAFE), "violence": dict(_SAFE)}


def _seconds(name: str, fast: float, full: float) -> float:
    value = os.environ.get(name, "").strip()
    if value:
        return max(0.0, float(value))
    return fast if platform.is_fast() else full


def file_delay(value: float | None = None) -> float:
    """Seconds an upload stays ``pending`` (``EMULATOR_FILE_DELAY``; 0.1 fast, 1 full)."""
    return _seconds("EMULATOR_FILE_DELAY", 0.1, 1.0) if value is None else max(0.0, value)


def deploy_delay(value: float | None = None) -> float:
    """Seconds a deployment takes from ``Accepted`` to ``Succeeded`` (``EMULATOR_DEPLOY_DELAY``;
    0.2 fast, 2 full); it is ``Creating`` for the second half."""
    return _seconds("EMULATOR_DEPLOY_DELAY", 0.2, 2.0) if value is None else max(0.0, value)
