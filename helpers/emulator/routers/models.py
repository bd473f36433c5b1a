"""``/models``: the base models with Azure's capabilities, lifecycle and retirement dates, and
the resource's succeeded fine-tuned models (``Model`` in the authoring spec 2025-04-01-preview,
``examples/get_models.json``; dates from Azure's retirement table, see ``catalog``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from .. import catalog
from ..errors import not_found
from .common import emulator_of, fine_tuned_models

router = APIRouter()


@router.get("/models")
def list_models(request: Request):
    emulator = emulator_of(request)
    data = [catalog.model_object(name) for name in catalog.BASE_MODELS]
    data += [catalog.fine_tuned_object(name, job)
             for name, job in fine_tuned_models(emulator).items()]
    return {"object": "list", "data": data, "has_more": False}


@router.get("/models/{model_id:path}")
def retrieve_model(model_id: str, request: Request):
    if catalog.is_base_model(model_id):
        return catalog.model_object(model_id)
    job = fine_tuned_models(emulator_of(request)).get(model_id)
    if job is None:
        raise not_found(f"The model '{model_id}' does not exist on this resource.",
                        param="model", code="model_not_found")
    return catalog.fine_tuned_object(model_id, job)
