"""The emulator's FastAPI app: Azure OpenAI's fine-tuning, files, models, chat and deployment
routes, in the shapes the ``openai`` SDK reads (DESIGN.md, "The local Azure OpenAI emulator").

Data-plane routes are served three ways: Azure-style under ``/openai`` (``?api-version=``
required, ``api-key`` header or ``Authorization: Bearer``), Azure's new ``/openai/v1`` and
OpenAI-style under ``/v1`` (Bearer). The deployment management API
(``/subscriptions/.../deployments/{name}``) and the health check ``GET /`` are on the same host.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

import helpers

from . import catalog
from .errors import EmulatorError, bad_request, not_found
from .store import Store, new_id, now, public, safe_filename
from .worker import TERMINAL, Worker, add_event

log = logging.getLogger("helpers.emulator")

NAME = "helpers.emulator (local Azure OpenAI emulator)"
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # Azure OpenAI's limit for a fine-tuning file
FILE_PURPOSES = ("fine-tune", "assistants", "batch", "vision", "user_data", "evals")
MANAGEMENT = ("/subscriptions/{subscription}/resourceGroups/{group}/providers/"
              "Microsoft.CognitiveServices/accounts/{account}/deployments")
_DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SUFFIX = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_LOG_BODY_LIMIT = 1024 * 1024


@dataclass
class Emulator:
    """Everything one app holds: its store, worker, models, key and request log."""
    store: Store
    api_key: str
    backend: str
    max_upload_bytes: int
    worker: Worker
    temporary_dir: Path | None = None
    request_log: deque = field(default_factory=lambda: deque(maxlen=100_000))
    log_lock: threading.Lock = field(default_factory=threading.Lock)
    _models: Any = None
    closed: bool = False

    @property
    def models(self):
        if self._models is None:
            from .training import ModelServer

            self._models = ModelServer()
        return self._models

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.worker.stop()
        self.store.close()
        if self.temporary_dir is not None:
            shutil.rmtree(self.temporary_dir, ignore_errors=True)


def create_app(
    state_dir: str | os.PathLike[str] | None = None,
    api_key: str | None = None,
    backend: str | None = None,
    *,
    max_upload_bytes: int | None = None,
    step_delay: float | None = None,
) -> FastAPI:
    """Build the emulator app and start its training worker.

    - ``state_dir``: where records, files and models live (``EMULATOR_STATE_DIR``, else a
      temporary folder removed by ``app.state.emulator.close()``);
    - ``api_key``: the key clients must send (``EMULATOR_API_KEY``, else a random one, readable
      as ``app.state.emulator.api_key``);
    - ``backend``: ``"tiny"`` or ``"smollm2"`` for base models (``EMULATOR_BACKEND``, else
      ``tiny`` in fast mode, ``smollm2`` otherwise);
    - ``max_upload_bytes``: largest accepted upload (``EMULATOR_MAX_UPLOAD_BYTES``, 512 MiB);
    - ``step_delay``: seconds to sleep after each training step (``EMULATOR_STEP_DELAY``, 0),
      to watch a job's progress or to test what happens while a job runs.
    """
    temporary = None
    if state_dir is None and os.environ.get("EMULATOR_STATE_DIR"):
        state_dir = os.environ["EMULATOR_STATE_DIR"]
    if state_dir is None:
        temporary = Path(tempfile.mkdtemp(prefix="emulator-state-"))
        state_dir = temporary
    api_key = api_key or os.environ.get("EMULATOR_API_KEY") or f"emu-{secrets.token_hex(16)}"
    if max_upload_bytes is None:
        max_upload_bytes = int(os.environ.get("EMULATOR_MAX_UPLOAD_BYTES") or
                               DEFAULT_MAX_UPLOAD_BYTES)
    store = Store(state_dir)
    for name in store.sweep():
        log.warning("emulator: removed %s, left half-written by an earlier process", name)
    emulator = Emulator(
        store=store, api_key=api_key, backend=catalog.default_backend(backend),
        max_upload_bytes=max_upload_bytes, worker=Worker(store, step_delay=step_delay),
        temporary_dir=temporary,
    )
    _ensure_base_deployments(emulator)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        emulator.close()  # uvicorn's shutdown; InProcessEmulator.close() does the same

    app = FastAPI(title="Local Azure OpenAI emulator", version=helpers.__version__,
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json",
                  lifespan=lifespan)
    app.state.emulator = emulator
    _install_error_handlers(app)
    app.add_middleware(RequestLogMiddleware, emulator=emulator)

    data = _data_plane_router()
    app.include_router(data, prefix="/openai", dependencies=[Depends(authorize)])
    app.include_router(data, prefix="/openai/v1", dependencies=[Depends(authorize)])
    app.include_router(data, prefix="/v1", dependencies=[Depends(authorize)])
    app.include_router(_management_router(), dependencies=[Depends(authorize)])

    @app.get("/")
    def health() -> dict:
        return {"name": NAME, "version": helpers.__version__, "status": "ok",
                "backend": emulator.backend}

    emulator.worker.start()
    return app


def _emulator(request: Request) -> Emulator:
    return request.app.state.emulator


# --------------------------------------------------------------------------- auth, errors, log

async def authorize(request: Request) -> None:
    """401 unless the ``api-key`` header or ``Authorization: Bearer`` carries the key; 400 when
    an Azure-style route misses ``api-version``."""
    emulator = _emulator(request)
    given = request.headers.get("api-key")
    bearer = request.headers.get("authorization", "")
    if not given and bearer.lower().startswith("bearer "):
        given = bearer[7:].strip()
    if not given or not secrets.compare_digest(given.encode(), emulator.api_key.encode()):
        raise EmulatorError(
            401,
            "Access denied due to invalid subscription key or wrong API endpoint. Send the "
            "emulator's key in the 'api-key' header (AzureOpenAI(api_key=...)) or as "
            "'Authorization: Bearer <key>'; the local emulator's key is the one it printed at "
            "start (or EMULATOR_API_KEY).",
            type="invalid_request_error", code="invalid_api_key",
        )
    path = request.url.path
    azure_style = (path.startswith("/openai/") and not path.startswith("/openai/v1/")) or \
        path.startswith("/subscriptions/")
    if azure_style and not request.query_params.get("api-version"):
        raise bad_request(
            "Missing the required query parameter 'api-version' (for example "
            "?api-version=2024-10-21); AzureOpenAI(api_version=...) sets it.",
            param="api-version", code="missing_api_version",
        )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EmulatorError)
    async def _emulator_error(request: Request, exc: EmulatorError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        error = bad_request(f"Invalid request: {where or 'body'}: {first.get('msg', exc)}",
                            param=where or None)
        return JSONResponse(error.body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            message = (f"Resource not found: {request.method} {request.url.path} is not a route "
                       "of the local Azure OpenAI emulator (see GET /docs).")
        else:
            message = str(exc.detail)
        error = EmulatorError(exc.status_code, message,
                              code="not_found" if exc.status_code == 404 else None)
        return JSONResponse(error.body(), status_code=exc.status_code)


class RequestLogMiddleware:
    """Records every request (method, path, query, JSON body or upload summary, status) in
    ``emulator.request_log``; :class:`helpers.emulator.client.InProcessEmulator` exposes it as
    ``.requests``."""

    def __init__(self, app, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        content_type = headers.get("content-type", "")
        keep_body = "multipart/" not in content_type  # uploads are summarised by the route
        chunks: list[bytes] = []
        size = 0
        status = {"code": 500}

        async def receive_and_keep():
            nonlocal size
            message = await receive()
            if keep_body and message["type"] == "http.request" and size <= _LOG_BODY_LIMIT:
                body = message.get("body", b"")
                size += len(body)
                chunks.append(body)
            return message

        async def send_and_see(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive_and_keep, send_and_see)
        finally:
            body = None
            if keep_body and chunks and size <= _LOG_BODY_LIMIT:
                try:
                    body = json.loads(b"".join(chunks) or b"null")
                except ValueError:  # not JSON (a form, text): not recorded
                    body = None
                if not isinstance(body, dict):
                    body = None
            from .client import RecordedRequest

            record = RecordedRequest(
                method=scope["method"],
                path=scope["path"],
                query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
                body=body,
                form=scope.get("emulator.form"),
                status=status["code"],
            )
            with self.emulator.log_lock:
                self.emulator.request_log.append(record)


# --------------------------------------------------------------------------- helpers

async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}", code="invalid_json") \
            from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    return body


def _int_query(request: Request, name: str, default: int, low: int = 1, high: int = 10_000) -> int:
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


def _page(items: list[dict], has_more: bool) -> dict[str, Any]:
    data = [public(item) for item in items]
    return {"object": "list", "data": data, "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


def _fine_tuned_models(emulator: Emulator) -> dict[str, dict]:
    return {job["fine_tuned_model"]: job for job in emulator.store.all("job")
            if job["status"] == "succeeded" and job.get("fine_tuned_model")}


def _model_object(model_id: str, created: int, owned_by: str, fine_tuned: bool) -> dict:
    return {
        "id": model_id, "object": "model", "created": created, "owned_by": owned_by,
        "status": "succeeded", "lifecycle_status": "generally-available",
        "capabilities": {"fine_tune": not fine_tuned, "inference": True,
                         "chat_completion": True, "completion": False, "embeddings": False},
    }


def _resolve_model(emulator: Emulator, name: str):
    """The :class:`ModelRef` that answers for a base, fine-tuned or checkpoint model name."""
    from .training import ModelRef

    if catalog.is_base_model(name):
        return ModelRef(emulator.backend)
    parsed = catalog.parse_fine_tuned(name)
    if parsed:
        job = emulator.store.get("job", parsed["job_id"])
        if job and job["status"] == "succeeded":
            folder = emulator.store.job_models_dir(job["id"])
            if parsed["step"] is None and job.get("fine_tuned_model") == name:
                return ModelRef(job["_backend"], str(folder / "final"))
            for checkpoint in emulator.store.all("checkpoint", parent=job["id"]):
                if checkpoint["fine_tuned_model_checkpoint"] == name:
                    return ModelRef(job["_backend"], str(folder / checkpoint["_folder"]))
    return None


def _ensure_base_deployments(emulator: Emulator) -> None:
    for name in catalog.BASE_DEPLOYMENTS:
        if emulator.store.get("deployment", name) is None:
            path = MANAGEMENT.format(subscription="local", group="local", account="emulator")
            emulator.store.insert("deployment", _deployment_record(
                f"{path}/{name}", name, {"name": "standard", "capacity": 1},
                {"format": "OpenAI", "name": name, "version": "1"}, created=now(),
            ))


def _deployment_record(resource_id: str, name: str, sku: dict, model: dict, created: int) -> dict:
    stamp = _iso(created)
    return {
        "id": name,
        "_resource_id": resource_id,
        "name": name,
        "type": "Microsoft.CognitiveServices/accounts/deployments",
        "sku": sku,
        "properties": {
            "model": model,
            "provisioningState": "Succeeded",
            "capabilities": {"chatCompletion": "true"},
            "raiPolicyName": "Microsoft.Default",
        },
        "systemData": {"createdAt": stamp, "createdBy": "emulator", "createdByType": "User",
                       "lastModifiedAt": stamp, "lastModifiedBy": "emulator",
                       "lastModifiedByType": "User"},
        "etag": f'"{secrets.token_hex(8)}"',
        "created_at": created,
    }


def _iso(timestamp: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def _arm_view(record: dict, resource_id: str | None = None) -> dict:
    view = public(record)
    view.pop("created_at", None)
    view["id"] = resource_id or record["_resource_id"]
    return view


# --------------------------------------------------------------------------- data plane

def _data_plane_router() -> APIRouter:
    router = APIRouter()

    # ---------------------------------------------------------------- files
    @router.post("/files")
    async def create_file(request: Request):
        emulator = _emulator(request)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > emulator.max_upload_bytes + 65_536:
            raise _too_large(emulator, int(declared))
        try:
            form = await request.form(max_files=1, max_fields=20)
        except Exception as exc:  # noqa: BLE001 - malformed multipart, python-multipart's errors vary
            raise bad_request(f"Could not read the multipart upload: {exc}. Send the file as "
                              "multipart field 'file' with a 'purpose' field.",
                              param="file") from None
        upload = form.get("file")
        purpose = form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise bad_request("The upload has no file: send it as the multipart field 'file' "
                              "(client.files.create(file=open(path, 'rb'), purpose='fine-tune')).",
                              param="file", code="missing_file")
        if not isinstance(purpose, str) or purpose not in FILE_PURPOSES:
            raise bad_request(f"'purpose' must be one of {', '.join(FILE_PURPOSES)}; got "
                              f"{purpose!r}. Fine-tuning data uses purpose='fine-tune'.",
                              param="purpose")
        filename = safe_filename(upload.filename)
        size = upload.size if upload.size is not None else None
        request.scope["emulator.form"] = {"purpose": purpose, "filename": filename,
                                          "bytes": size}
        if size is not None and size > emulator.max_upload_bytes:
            raise _too_large(emulator, size)
        file_id = new_id("file")

        def copy(handle) -> int:
            upload.file.seek(0)
            total = 0
            while chunk := upload.file.read(1024 * 1024):
                total += len(chunk)
                if total > emulator.max_upload_bytes:
                    raise _too_large(emulator, total)
                handle.write(chunk)
            return total

        written = await run_in_threadpool(emulator.store.write_file_bytes, file_id, copy)
        request.scope["emulator.form"]["bytes"] = written
        record = {
            "id": file_id, "object": "file", "bytes": written, "created_at": now(),
            "filename": filename, "purpose": purpose, "status": "processed",
            "status_details": None, "expires_at": None,
        }
        emulator.store.insert("file", record)
        return record

    @router.get("/files")
    def list_files(request: Request):
        emulator = _emulator(request)
        order = request.query_params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise bad_request(f"'order' must be 'asc' or 'desc', got {order!r}.", param="order")
        purpose = request.query_params.get("purpose")
        items, more = emulator.store.page(
            "file", after=request.query_params.get("after"),
            limit=_int_query(request, "limit", 10_000), newest_first=order == "desc",
            where=(lambda f: f["purpose"] == purpose) if purpose else None,
        )
        return _page(items, more)

    @router.get("/files/{file_id}")
    def retrieve_file(file_id: str, request: Request):
        return public(_emulator(request).store.require("file", file_id, "file"))

    @router.delete("/files/{file_id}")
    def delete_file(file_id: str, request: Request):
        store = _emulator(request).store
        store.require("file", file_id, "file")
        store.delete("file", file_id)
        store.remove_file_bytes(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    @router.get("/files/{file_id}/content")
    def file_content(file_id: str, request: Request):
        store = _emulator(request).store
        record = store.require("file", file_id, "file")
        media = "text/csv" if record["filename"].endswith(".csv") else "application/octet-stream"
        return Response(store.read_file_bytes(file_id), media_type=media)

    # ---------------------------------------------------------------- fine-tuning jobs
    @router.post("/fine_tuning/jobs")
    async def create_job(request: Request):
        emulator = _emulator(request)
        body = await _json_body(request)
        job = _new_job(emulator, body)
        emulator.store.insert("job", job)
        add_event(emulator.store, job["id"], f"Created fine-tuning job: {job['id']}")
        add_event(emulator.store, job["id"], f"Validating training file: {job['training_file']}"
                  + (f" and validation file: {job['validation_file']}"
                     if job.get("validation_file") else ""))
        emulator.worker.notify()
        return public(job)

    @router.get("/fine_tuning/jobs")
    def list_jobs(request: Request):
        emulator = _emulator(request)
        items, more = emulator.store.page("job", after=request.query_params.get("after"),
                                          limit=_int_query(request, "limit", 20))
        return _page(items, more)

    @router.get("/fine_tuning/jobs/{job_id}")
    def retrieve_job(job_id: str, request: Request):
        return public(_emulator(request).store.require("job", job_id, "fine-tuning job"))

    @router.post("/fine_tuning/jobs/{job_id}/cancel")
    def cancel_job(job_id: str, request: Request):
        emulator = _emulator(request)
        job = emulator.store.require("job", job_id, "fine-tuning job")
        if job["status"] in TERMINAL:
            raise bad_request(f"Job {job_id} has already {job['status']}; only a job that is "
                              "validating_files, queued or running can be cancelled.",
                              code="job_not_cancellable")

        def cancel(record: dict) -> dict:
            if record["status"] not in TERMINAL:
                record.update(status="cancelled", finished_at=now(), estimated_finish=None)
            return record

        job = emulator.store.update("job", job_id, cancel)
        if emulator.worker.current_job != job_id:
            add_event(emulator.store, job_id, "Job cancelled.")
        emulator.worker.notify()
        return public(job)

    @router.get("/fine_tuning/jobs/{job_id}/events")
    def list_events(job_id: str, request: Request):
        store = _emulator(request).store
        store.require("job", job_id, "fine-tuning job")
        items, more = store.page("event", parent=job_id, after=request.query_params.get("after"),
                                 limit=_int_query(request, "limit", 20))
        return _page(items, more)

    @router.get("/fine_tuning/jobs/{job_id}/checkpoints")
    def list_checkpoints(job_id: str, request: Request):
        store = _emulator(request).store
        store.require("job", job_id, "fine-tuning job")
        items, more = store.page("checkpoint", parent=job_id,
                                 after=request.query_params.get("after"),
                                 limit=_int_query(request, "limit", 10))
        return _page(items, more)

    # ---------------------------------------------------------------- models
    @router.get("/models")
    def list_models(request: Request):
        emulator = _emulator(request)
        data = [_model_object(name, 1_700_000_000, "system", False) for name in catalog.BASE_MODELS]
        for name, job in _fine_tuned_models(emulator).items():
            data.append(_model_object(name, job.get("finished_at") or job["created_at"],
                                      "organization-owner", True))
        return {"object": "list", "data": data, "has_more": False}

    @router.get("/models/{model_id:path}")
    def retrieve_model(model_id: str, request: Request):
        emulator = _emulator(request)
        if catalog.is_base_model(model_id):
            return _model_object(model_id, 1_700_000_000, "system", False)
        job = _fine_tuned_models(emulator).get(model_id)
        if job is None:
            raise not_found(f"The model '{model_id}' does not exist on this emulator.",
                            param="model", code="model_not_found")
        return _model_object(model_id, job.get("finished_at") or job["created_at"],
                             "organization-owner", True)

    # ---------------------------------------------------------------- chat
    @router.post("/deployments/{deployment}/chat/completions")
    async def deployment_chat(deployment: str, request: Request):
        emulator = _emulator(request)
        record = emulator.store.get("deployment", deployment)
        if record is None:
            raise EmulatorError(
                404, f"The API deployment '{deployment}' does not exist. Create it with the "
                "deployment PUT (see the lab's deployment step) or use one of: "
                + ", ".join(d["name"] for d in emulator.store.all("deployment")) + ".",
                code="DeploymentNotFound")
        body = await _json_body(request)
        return await _chat(emulator, record["properties"]["model"]["name"], body)

    @router.post("/chat/completions")
    async def chat(request: Request):
        emulator = _emulator(request)
        body = await _json_body(request)
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise bad_request("'model' is required: a deployment or model name.", param="model")
        record = emulator.store.get("deployment", name)
        return await _chat(emulator, record["properties"]["model"]["name"] if record else name,
                           body)

    return router


def _too_large(emulator: Emulator, size: int) -> EmulatorError:
    return EmulatorError(
        413, f"The upload is {size} bytes; this emulator accepts files up to "
        f"{emulator.max_upload_bytes} bytes (EMULATOR_MAX_UPLOAD_BYTES). Split the data or "
        "remove examples.", code="file_too_large", param="file")


def _number(value: Any, name: str, *, integer: bool, low: float, high: float) -> Any:
    if value == "auto":
        return value
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise bad_request(f"hyperparameters.{name} must be 'auto' or {kind} between {low} and "
                          f"{high}, got {value!r}.", param=f"hyperparameters.{name}")
    return value


def _hyperparameters(raw: Any) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise bad_request("'hyperparameters' must be an object.", param="hyperparameters")
    unknown = set(raw) - {"n_epochs", "batch_size", "learning_rate_multiplier"}
    if unknown:
        raise bad_request(f"Unknown hyperparameters {sorted(unknown)}; supervised fine-tuning "
                          "takes n_epochs, batch_size and learning_rate_multiplier.",
                          param="hyperparameters")
    return {
        "n_epochs": _number(raw.get("n_epochs", "auto"), "n_epochs", integer=True, low=1, high=50),
        "batch_size": _number(raw.get("batch_size", "auto"), "batch_size", integer=True, low=1,
                              high=256),
        "learning_rate_multiplier": _number(raw.get("learning_rate_multiplier", "auto"),
                                            "learning_rate_multiplier", integer=False,
                                            low=1e-6, high=10),
    }


def _check_file(emulator: Emulator, file_id: Any, param: str) -> str:
    if not isinstance(file_id, str) or not file_id:
        raise bad_request(f"'{param}' must be a file id such as 'file-abc123' (the .id of "
                          "client.files.create(...)).", param=param)
    record = emulator.store.get("file", file_id)
    if record is None:
        raise bad_request(f"invalid {param}: no file with id '{file_id}' exists on this "
                          "emulator; upload it first with client.files.create(...).",
                          param=param, code="invalid_file")
    if record["purpose"] != "fine-tune":
        raise bad_request(f"invalid {param}: file '{file_id}' ({record['filename']}) was uploaded "
                          f"with purpose '{record['purpose']}'; a fine-tuning job needs files "
                          "uploaded with purpose='fine-tune'.", param=param,
                          code="invalid_file_purpose")
    return file_id


def _new_job(emulator: Emulator, body: dict[str, Any]) -> dict[str, Any]:
    from helpers import tokens

    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required, e.g. model='gpt-4o'.", param="model")
    if catalog.parse_fine_tuned(model):
        raise bad_request(f"Continuing to fine-tune '{model}' is not supported by the local "
                          "emulator; start from a base model such as 'gpt-4o'.", param="model",
                          code="model_not_supported")
    try:
        tokens.training_token_limit(model)
    except ValueError as exc:
        raise bad_request(f"The model '{model}' cannot be fine-tuned: {exc}", param="model",
                          code="model_not_supported") from None
    training_file = _check_file(emulator, body.get("training_file"), "training_file")
    validation_file = body.get("validation_file")
    if validation_file is not None:
        validation_file = _check_file(emulator, validation_file, "validation_file")

    requested = _hyperparameters(body.get("hyperparameters"))
    method = body.get("method")
    if method is not None:
        if not isinstance(method, dict) or method.get("type", "supervised") != "supervised":
            kind = method.get("type") if isinstance(method, dict) else method
            raise bad_request(f"method type {kind!r} is not supported by the local emulator; "
                              "use method={'type': 'supervised'}.", param="method",
                              code="method_not_supported")
        supervised = method.get("supervised") or {}
        if supervised.get("hyperparameters") is not None:
            requested = _hyperparameters(supervised["hyperparameters"])
        method = {"type": "supervised", "supervised": {"hyperparameters": dict(requested)}}

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

    job_id = new_id("ftjob")
    return {
        "id": job_id,
        "object": "fine_tuning.job",
        "created_at": now(),
        "error": None,
        "fine_tuned_model": None,
        "finished_at": None,
        "hyperparameters": dict(requested),
        "model": model,
        "organization_id": "org-local-emulator",
        "result_files": [],
        "seed": seed,
        "status": "validating_files",
        "trained_tokens": None,
        "training_file": training_file,
        "validation_file": validation_file,
        "estimated_finish": None,
        "integrations": None,
        "metadata": metadata,
        "method": method,
        "suffix": suffix,
        "user_provided_suffix": suffix,
        "_backend": emulator.backend,
        "_requested_hyperparameters": requested,
    }


async def _chat(emulator: Emulator, model_name: str, body: dict[str, Any]) -> dict[str, Any]:
    ref = _resolve_model(emulator, model_name)
    if ref is None:
        raise not_found(f"The model '{model_name}' does not exist on this emulator (base models: "
                        f"{', '.join(catalog.BASE_MODELS)}, or a succeeded job's "
                        "fine_tuned_model).", param="model", code="model_not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise bad_request("'messages' must be a non-empty list of {'role', 'content'} objects.",
                          param="messages")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be true or false.", param="stream")

    def number(name: str, default, low, high, integer=False):
        value = body.get(name)
        if value is None:
            return default
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or not low <= value <= high:
            raise bad_request(f"'{name}' must be between {low} and {high}, got {value!r}.",
                              param=name)
        return value

    max_tokens = number("max_completion_tokens", None, 1, 100_000, integer=True)
    if max_tokens is None:
        max_tokens = number("max_tokens", None, 1, 100_000, integer=True)
    temperature = float(number("temperature", 1.0, 0, 2))
    top_p = float(number("top_p", 1.0, 0, 1))
    n = number("n", 1, 1, 8, integer=True)
    seed = number("seed", None, -(2**63), 2**63 - 1, integer=True)
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop):
        raise bad_request("'stop' must be a string or a list of up to 4 strings.", param="stop")

    try:
        result = await run_in_threadpool(
            emulator.models.complete, ref, messages, max_tokens=max_tokens,
            temperature=temperature, top_p=top_p, seed=seed, n=n, stop=stop,
        )
    except ValueError as exc:
        raise bad_request(str(exc), param="messages", code="context_length_exceeded") from None
    completion = {
        "id": f"chatcmpl-{secrets.token_hex(14)}",
        "object": "chat.completion",
        "created": now(),
        "model": model_name,
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": text, "refusal": None},
             "finish_reason": reason, "logprobs": None}
            for i, (text, reason) in enumerate(zip(result.texts, result.finish_reasons,
                                                   strict=True))
        ],
        "usage": {"prompt_tokens": result.prompt_tokens,
                  "completion_tokens": result.completion_tokens,
                  "total_tokens": result.prompt_tokens + result.completion_tokens},
        "system_fingerprint": f"fp_emulator_{ref.backend}",
    }
    if stream:
        return StreamingResponse(_sse_chunks(completion, body), media_type="text/event-stream")
    return completion


def _sse_chunks(completion: dict[str, Any], body: dict[str, Any]):
    """A finished completion as server-sent ``chat.completion.chunk`` events (``stream=True``):
    the role, the content in a few pieces, the finish reason, usage if asked, ``[DONE]``."""
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"

    def event(choices: list[dict], **extra: Any) -> str:
        return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n"

    for choice in completion["choices"]:
        i, text = choice["index"], choice["message"]["content"]
        yield event([{"index": i, "delta": {"role": "assistant", "content": ""},
                      "finish_reason": None, "logprobs": None}])
        pieces = re.findall(r"\S*\s*", text) or [text]
        for piece in (p for p in pieces if p):
            yield event([{"index": i, "delta": {"content": piece}, "finish_reason": None,
                          "logprobs": None}])
        yield event([{"index": i, "delta": {}, "finish_reason": choice["finish_reason"],
                      "logprobs": None}])
    options = body.get("stream_options") or {}
    if isinstance(options, dict) and options.get("include_usage"):
        yield event([], usage=completion["usage"])
    yield "data: [DONE]\n\n"


# --------------------------------------------------------------------------- management plane

def _management_router() -> APIRouter:
    router = APIRouter()

    @router.get(MANAGEMENT)
    def list_deployments(subscription: str, group: str, account: str, request: Request):
        base = MANAGEMENT.format(subscription=subscription, group=group, account=account)
        return {"value": [_arm_view(d, f"{base}/{d['name']}")
                          for d in _emulator(request).store.all("deployment")]}

    @router.put(MANAGEMENT + "/{name}")
    async def put_deployment(subscription: str, group: str, account: str, name: str,
                             request: Request):
        emulator = _emulator(request)
        if not _DEPLOYMENT_NAME.match(name):
            raise bad_request(f"Invalid deployment name {name!r}: use 1-64 letters, digits, "
                              "'-', '_' or '.'.", param="name", code="InvalidDeploymentName")
        body = await _json_body(request)
        properties = body.get("properties") if isinstance(body.get("properties"), dict) else {}
        model = properties.get("model") if isinstance(properties.get("model"), dict) else None
        if not model or not isinstance(model.get("name"), str):
            raise bad_request("The body needs properties.model.name (and format 'OpenAI', "
                              "version '1'): {'sku': {'name': 'standard', 'capacity': 1}, "
                              "'properties': {'model': {'format': 'OpenAI', 'name': "
                              "<fine_tuned_model>, 'version': '1'}}}.",
                              param="properties.model", code="InvalidResourceProperties")
        if _resolve_model(emulator, model["name"]) is None:
            raise bad_request(
                f"The model '{model['name']}' cannot be deployed: it is neither a base model nor "
                "the fine_tuned_model (or a checkpoint) of a succeeded fine-tuning job on this "
                "emulator.", param="properties.model.name", code="DeploymentModelNotSupported")
        sku = body.get("sku") if isinstance(body.get("sku"), dict) else {"name": "standard",
                                                                         "capacity": 1}
        resource_id = f"{MANAGEMENT.format(subscription=subscription, group=group, account=account)}/{name}"
        old = emulator.store.get("deployment", name)
        record = _deployment_record(resource_id, name, sku,
                                    {"format": model.get("format", "OpenAI"),
                                     "name": model["name"], "version": str(model.get("version", "1"))},
                                    created=old["created_at"] if old else now())
        if old:
            record["systemData"]["createdAt"] = old["systemData"]["createdAt"]
            record["systemData"]["lastModifiedAt"] = _iso(now())
        created = emulator.store.upsert("deployment", record)
        return JSONResponse(_arm_view(record), status_code=201 if created else 200)

    @router.get(MANAGEMENT + "/{name}")
    def get_deployment(subscription: str, group: str, account: str, name: str, request: Request):
        record = _emulator(request).store.get("deployment", name)
        if record is None:
            raise EmulatorError(404, f"The deployment '{name}' does not exist.",
                                code="DeploymentNotFound")
        base = MANAGEMENT.format(subscription=subscription, group=group, account=account)
        return _arm_view(record, f"{base}/{name}")

    @router.delete(MANAGEMENT + "/{name}")
    def delete_deployment(subscription: str, group: str, account: str, name: str,
                          request: Request):
        deleted = _emulator(request).store.delete("deployment", name)
        return Response(status_code=200 if deleted else 204)

    return router
