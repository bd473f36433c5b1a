"""The base model assignment 02 fine-tunes, chosen by Azure's model clock.

:func:`choose_base_model` is the one place the assignment takes its model from:
``AZURE_OPENAI_FT_MODEL``, else the first fine-tunable, non-retired model the resource lists,
else the emulator's versioned gpt-4o. Retirement dates of the emulator's models come from its
catalog (``helpers.emulator.catalog``), the one place they are written.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from helpers.emulator import catalog

from .backend import AzureSetupError, Backend, _env, _is_loopback

#: What the emulator fine-tunes when nothing else is configured: Azure fine-tunes *versioned*
#: models only (the lab's bare "gpt-4o" is refused: "The specified base model does not support
#: fine-tuning").
EMULATOR_FT_MODEL = catalog.DEFAULT_FT_MODEL


@dataclass(frozen=True)
class BaseModelChoice:
    """The base model assignment 02 fine-tunes and why.

    ``source`` is ``"AZURE_OPENAI_FT_MODEL"``, ``"models list"`` (the resource's first
    fine-tunable, non-retired model) or ``"emulator default"``; ``retires`` is the last day
    Azure fine-tunes it, when known; ``description`` is one sentence for the notebook to print.
    """

    model: str
    source: Literal["AZURE_OPENAI_FT_MODEL", "models list", "emulator default"]
    retires: datetime.date | None
    description: str


def _retirement(model: Any) -> datetime.date | None:
    deprecation = getattr(model, "deprecation", None)
    if isinstance(deprecation, dict):
        stamp = deprecation.get("fine_tune")
    else:
        stamp = getattr(deprecation, "fine_tune", None)
    if not isinstance(stamp, int | float):
        return None
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).date()


def _can_fine_tune(model: Any) -> bool:
    capabilities = getattr(model, "capabilities", None)
    if isinstance(capabilities, dict):
        return bool(capabilities.get("fine_tune"))
    return bool(getattr(capabilities, "fine_tune", False))


def _until(day: datetime.date | None) -> str:
    return f"Azure fine-tunes it until {day.isoformat()}" if day else \
        "the resource lists no retirement date for its fine-tuning"


def choose_base_model(
    backend: Backend,
    env: Mapping[str, str] | None = None,
    *,
    today: datetime.date | None = None,
) -> BaseModelChoice:
    """The one place assignment 02 takes its base model from.

    1. ``AZURE_OPENAI_FT_MODEL`` when set (used as given; Azure will say if it is refused);
    2. on Azure, the first model of ``client.models.list()`` whose ``capabilities.fine_tune`` is
       true and whose ``deprecation.fine_tune`` date (the model clock) is still ahead;
    3. the emulator's versioned gpt-4o (``gpt-4o-2024-08-06``): in-process, or for a server on
       this machine (``python -m helpers emulator serve``, a loopback endpoint) that lists it.

    Raises :class:`AzureSetupError` when an Azure resource lists no model it can fine-tune
    today."""
    env = os.environ if env is None else env
    today = today or datetime.datetime.now(datetime.UTC).date()
    configured = _env(env, "AZURE_OPENAI_FT_MODEL")
    if configured:
        retires = None
        if backend.kind == "azure" or backend.emulator is not None:
            try:
                retires = _retirement(backend.client.models.retrieve(configured))
            except Exception:  # noqa: BLE001 - the date is a nicety; the name stays the choice
                retires = None
        return BaseModelChoice(configured, "AZURE_OPENAI_FT_MODEL", retires,
                               f"Fine-tuning {configured} (set by AZURE_OPENAI_FT_MODEL); "
                               f"{_until(retires)}.")
    if backend.kind == "azure":
        listed = list(backend.client.models.list())
        local = _is_loopback(str(backend.client.base_url))
        if local and any(m.id == EMULATOR_FT_MODEL and _can_fine_tune(m) for m in listed):
            listed = []  # the course's emulator server: the same model as in-process
        for model in listed:
            retires = _retirement(model)
            if _can_fine_tune(model) and (retires is None or retires >= today):
                return BaseModelChoice(model.id, "models list", retires,
                                       f"Fine-tuning {model.id}, the first model this resource "
                                       f"can fine-tune today; {_until(retires)}.")
        if not local:
            raise AzureSetupError(
                f"No model on this Azure OpenAI resource can be fine-tuned on {today}: every "
                "model with capabilities.fine_tune has a deprecation.fine_tune date in the past. "
                "Pick a model and region from Microsoft Learn's fine-tuning model table and set "
                "AZURE_OPENAI_FT_MODEL to its versioned name (for example gpt-4.1-2025-04-14).")
    retires = catalog.FINE_TUNABLE[EMULATOR_FT_MODEL].fine_tune_retires  # Azure's table
    if retires is None:
        return BaseModelChoice(EMULATOR_FT_MODEL, "emulator default", None,
                               f"Fine-tuning {EMULATOR_FT_MODEL} on the local emulator; "
                               f"{_until(None)}.")
    when = ("Azure retired its fine-tuning on" if retires < today else
            "Azure fine-tunes it until")
    return BaseModelChoice(EMULATOR_FT_MODEL, "emulator default", retires,
                           f"Fine-tuning {EMULATOR_FT_MODEL} on the local emulator, which still "
                           f"trains it as Azure did when the lab was written; {when} "
                           f"{retires.isoformat()}.")
