"""``/fine_tuning/jobs``: create (201 + ``Location``), list, retrieve, cancel, pause, resume,
delete, events and checkpoints.

Sources (azure-rest-api-specs, ``.../AzureOpenAI/authoring/preview/2025-04-01-preview``):
``examples/post_finetuning_job.json`` (201, ``location`` header, ``status: pending``),
``examples/pause_finetuning_job.json`` and ``resume_finetuning_job.json`` (200 with the job),
``examples/delete_finetuning_job.json`` (204, also in GA 2024-10-21). Pause and resume exist
from api-version 2025-04-01-preview on; an older one answers 404 ``Resource not found`` as
Azure does for a route its version lacks. ``method`` needs 2025-02-01-preview or later; an older
version answers 400 (Azure's answer is undocumented; the emulator never drops a field
silently). Azure does not document deleting a job that is still active; the emulator refuses it
(400) and says to cancel it first.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .. import catalog, protocol
from ..errors import bad_request, not_found, resource_not_found
from ..jobs import new_job
from ..store import now, public
from ..worker import TERMINAL, add_event
from .common import api_version, emulator_of, int_query, json_body, page

router = APIRouter()


def _job(request: Request, job_id: str) -> dict:
    record = emulator_of(request).store.get("job", job_id)
    if record is None or record.get("_deleted"):
        raise not_found(f"No fine-tuning job with id '{job_id}' exists on this resource.",
                        param="fine_tuning_job_id")
    return record


def _needs_pause(request: Request, what: str) -> None:
    if not protocol.has_pause(api_version(request)) and request.url.path.startswith("/openai/"):
        raise resource_not_found(f"{what} needs api-version {protocol.FIRST_WITH_PAUSE} or later "
                                 "(AzureOpenAI(api_version=...)).")


@router.post("/fine_tuning/jobs")
async def create_job(request: Request):
    emulator = emulator_of(request)
    body = await json_body(request)
    if body.get("method") is not None and request.url.path.startswith("/openai/") \
            and not protocol.has_method(api_version(request)):
        raise bad_request(f"'method' needs api-version {protocol.FIRST_WITH_METHOD} or later; "
                          f"this request uses {api_version(request)} "
                          "(AzureOpenAI(api_version='2025-04-01-preview')).", param="method")
    job = new_job(emulator, body, api_version(request))
    emulator.store.insert("job", job)
    add_event(emulator.store, job["id"], f"Created fine-tuning job: {job['id']}")
    if job["_init_from"]:
        add_event(emulator.store, job["id"], f"Continuing to fine-tune {job['model']} "
                  "(continuous fine-tuning): training starts from its weights.")
    note = catalog.retirement_note(job["_root_model"])
    if note:
        add_event(emulator.store, job["id"], note, level="warning")
    add_event(emulator.store, job["id"], f"Validating training file: {job['training_file']}"
              + (f" and validation file: {job['validation_file']}"
                 if job.get("validation_file") else ""))
    emulator.worker.notify()
    location = str(request.url.replace(query=None)).rstrip("/") + f"/{job['id']}"
    if request.url.query:
        location += f"?{request.url.query}"
    return JSONResponse(public(job), status_code=201, headers={"Location": location})


@router.get("/fine_tuning/jobs")
def list_jobs(request: Request):
    emulator = emulator_of(request)
    items, more = emulator.store.page("job", after=request.query_params.get("after"),
                                      limit=int_query(request, "limit", 20),
                                      where=lambda j: not j.get("_deleted"))
    return page(items, more)


@router.get("/fine_tuning/jobs/{job_id}")
def retrieve_job(job_id: str, request: Request):
    return public(_job(request, job_id))


@router.delete("/fine_tuning/jobs/{job_id}")
def delete_job(job_id: str, request: Request):
    emulator = emulator_of(request)
    job = _job(request, job_id)
    if job["status"] not in TERMINAL:
        raise bad_request(f"Job {job_id} is {job['status']}; only a job that has succeeded, "
                          "failed or been cancelled can be deleted. Cancel it first "
                          "(client.fine_tuning.jobs.cancel).", code="invalidPayload")
    emulator.store.update("job", job_id, {"_deleted": True})
    return Response(status_code=204)


@router.post("/fine_tuning/jobs/{job_id}/cancel")
def cancel_job(job_id: str, request: Request):
    emulator = emulator_of(request)
    job = _job(request, job_id)
    if job["status"] in TERMINAL:
        raise bad_request(f"Job {job_id} has already {job['status']}; only a job that is "
                          "pending, running or paused can be cancelled.",
                          code="job_not_cancellable")

    def cancel(record: dict) -> dict:
        if record["status"] not in TERMINAL:
            record.update(status="cancelled", finished_at=now(), estimated_finish=None)
            if record.get("_phase") != "running":
                record["_phase"] = "done"
        return record

    job = emulator.store.update("job", job_id, cancel)
    if emulator.worker.current_job != job_id:
        add_event(emulator.store, job_id, "Job cancelled.")
    emulator.worker.notify()
    return public(job)


@router.post("/fine_tuning/jobs/{job_id}/pause")
def pause_job(job_id: str, request: Request):
    _needs_pause(request, "Pausing a fine-tuning job")
    emulator = emulator_of(request)
    _job(request, job_id)

    def pause(record: dict) -> dict:
        if record["status"] == "running":
            record["status"] = "pausing"
        return record

    job = emulator.store.update("job", job_id, pause)
    if job["status"] != "pausing":
        raise bad_request(f"Job {job_id} is {job['status']}; only a running job can be paused.",
                          code="invalidPayload")
    return public(job)


@router.post("/fine_tuning/jobs/{job_id}/resume")
def resume_job(job_id: str, request: Request):
    _needs_pause(request, "Resuming a fine-tuning job")
    emulator = emulator_of(request)
    _job(request, job_id)

    def resume(record: dict) -> dict:
        if record["status"] == "paused":
            record.update(status="resuming", _phase="queued")
        return record

    job = emulator.store.update("job", job_id, resume)
    if job["status"] != "resuming":
        raise bad_request(f"Job {job_id} is {job['status']}; only a paused job can be resumed.",
                          code="invalidPayload")
    emulator.worker.notify()
    return public(job)


@router.get("/fine_tuning/jobs/{job_id}/events")
def list_events(job_id: str, request: Request):
    store = emulator_of(request).store
    _job(request, job_id)
    items, more = store.page("event", parent=job_id, after=request.query_params.get("after"),
                             limit=int_query(request, "limit", 20))
    return page(items, more)


@router.get("/fine_tuning/jobs/{job_id}/checkpoints")
def list_checkpoints(job_id: str, request: Request):
    store = emulator_of(request).store
    _job(request, job_id)
    items, more = store.page("checkpoint", parent=job_id,
                             after=request.query_params.get("after"),
                             limit=int_query(request, "limit", 10))
    return page(items, more)
