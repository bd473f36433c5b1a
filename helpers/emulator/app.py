"""The emulator's FastAPI app: Azure OpenAI's fine-tuning, files, models, chat and deployment
routes, in the shapes the ``openai`` SDK reads and Azure documents (DESIGN.md, "The local Azure
OpenAI emulator"; sources in ``helpers/emulator/README.md``).

Data-plane routes (``helpers.emulator.routers``) are served three ways: Azure-style under
``/openai`` (``?api-version=`` required and one Azure serves, ``api-key`` header or
``Authorization: Bearer``), Azure's ``/openai/v1`` (no api-version needed; ``model`` is a
deployment name) and OpenAI-style under ``/v1`` (Bearer). The Azure Resource Manager
deployments API (``/subscriptions/.../deployments/{name}``, Bearer token) and the health check
``GET /`` are on the same host. The app can be served in-process
(:class:`helpers.emulator.client.InProcessEmulator`), by uvicorn on a port
(``python -m helpers emulator serve``) or on a Unix domain socket.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
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
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import helpers

from . import catalog, protocol
from .errors import EmulatorError, bad_request, resource_not_found
from .routers import chat, deployments, files, jobs, models
from .store import Store
from .worker import Worker

log = logging.getLogger("helpers.emulator")

NAME = "helpers.emulator (local Azure OpenAI emulator)"
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # Azure OpenAI's limit for a fine-tuning file
MANAGEMENT = deployments.MANAGEMENT
_LOG_BODY_LIMIT = 1024 * 1024
#: Azure's data-plane 401 body (the SDK raises ``openai.AuthenticationError``).
ACCESS_DENIED = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                 "to provide a valid key for an active subscription and use a correct regional "
                 "API endpoint for your resource.")
V1_API_VERSIONS = ("preview", "latest", "v1")


@dataclass
class Emulator:
    """Everything one app holds: its store, worker, models, key, delays and request log."""
    store: Store
    api_key: str
    backend: str
    max_upload_bytes: int
    worker: Worker
    file_delay: float = 0.0
    deploy_delay: float = 0.0
    temporary_dir: Path | None = None
    request_log: deque = field(default_factory=lambda: deque(maxlen=100_000))
    log_lock: threading.Lock = field(default_factory=threading.Lock)
    _models: Any = None
    closed: bool = False

    @property
    def models(self):
        if self._models is None:
            from .generation import ModelServer

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
    file_delay: float | None = None,
    deploy_delay: float | None = None,
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
      to watch a job's progress or to test what happens while a job runs;
    - ``file_delay``: seconds an upload stays ``pending`` before it is ``processed``
      (``EMULATOR_FILE_DELAY``; 0.1 in fast mode, 1 otherwise);
    - ``deploy_delay``: seconds a deployment takes from ``Accepted`` to ``Succeeded``
      (``EMULATOR_DEPLOY_DELAY``; 0.2 in fast mode, 2 otherwise).
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
        file_delay=protocol.file_delay(file_delay),
        deploy_delay=protocol.deploy_delay(deploy_delay),
        temporary_dir=temporary,
    )
    deployments.ensure_base_deployments(emulator)

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

    data = APIRouter()
    for module in (files, jobs, models, chat):
        data.include_router(module.router)
    app.include_router(data, prefix="/openai/v1", dependencies=[Depends(authorize_v1)])
    app.include_router(data, prefix="/openai", dependencies=[Depends(authorize_azure)])
    app.include_router(data, prefix="/v1", dependencies=[Depends(authorize_openai)])
    app.include_router(deployments.router, dependencies=[Depends(authorize_management)])

    @app.get("/")
    def health() -> dict:
        return {"name": NAME, "version": helpers.__version__, "status": "ok",
                "backend": emulator.backend}

    emulator.worker.start()
    return app


# --------------------------------------------------------------------------- auth, errors, log

def _given_key(request: Request) -> str | None:
    given = request.headers.get("api-key")
    bearer = request.headers.get("authorization", "")
    if not given and bearer.lower().startswith("bearer "):
        given = bearer[7:].strip()
    return given or None


def _check_key(request: Request) -> None:
    emulator = request.app.state.emulator
    given = _given_key(request)
    if not given or not secrets.compare_digest(given.encode(), emulator.api_key.encode()):
        raise EmulatorError(401, ACCESS_DENIED, code="401", arm=True, headers={
            "x-emulator-hint": "send the emulator's key in the 'api-key' header "
                               "(AzureOpenAI(api_key=...)) or as 'Authorization: Bearer <key>'"})


async def authorize_azure(request: Request) -> None:
    """``/openai/...``: the key, and an api-version Azure serves (else 404, as Azure answers)."""
    _check_key(request)
    version = request.query_params.get("api-version")
    if version not in protocol.DATA_PLANE_API_VERSIONS:
        raise resource_not_found(
            "missing api-version" if version is None else
            f"api-version {version!r} is not one Azure serves; e.g. 2024-10-21 (GA) or "
            "2025-04-01-preview")


async def authorize_v1(request: Request) -> None:
    """``/openai/v1/...``: the key; api-version optional (``preview`` for preview features)."""
    _check_key(request)
    version = request.query_params.get("api-version")
    if version is not None and version not in V1_API_VERSIONS:
        raise bad_request(f"api-version {version!r} is not supported on the v1 route; leave it "
                          "out or use 'preview'.", param="api-version")


async def authorize_openai(request: Request) -> None:
    _check_key(request)


async def authorize_management(request: Request) -> None:
    """Azure Resource Manager: a Bearer token (locally, the emulator's key) and a provider
    api-version; errors in ARM's shape."""
    emulator = request.app.state.emulator
    header = request.headers.get("authorization")
    if not header:
        raise deployments.arm_error(401, "AuthenticationFailed",
                                    "Authentication failed. The 'Authorization' header is "
                                    "missing.")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token or not secrets.compare_digest(token.encode(), emulator.api_key.encode()):
        raise deployments.arm_error(401, "InvalidAuthenticationToken",
                                    "The access token is invalid.")
    version = request.query_params.get("api-version")
    if not version:
        raise deployments.arm_error(400, "MissingApiVersionParameter",
                                    "The api-version query parameter (?api-version=) is required "
                                    "for all requests.")
    if version not in protocol.MANAGEMENT_API_VERSIONS:
        raise deployments.arm_error(
            400, "NoRegisteredProviderFound",
            f"No registered resource provider found for location 'local' and API version "
            f"'{version}' for type 'accounts/deployments'. The supported api-versions are "
            f"'{', '.join(protocol.MANAGEMENT_API_VERSIONS)}'.")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EmulatorError)
    async def _emulator_error(request: Request, exc: EmulatorError):
        if request.url.path.startswith("/subscriptions/") and not exc.arm:
            exc = EmulatorError(exc.status, exc.message, code=exc.code, arm=True,
                                headers=exc.headers)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

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
            error = resource_not_found(f"{request.method} {request.url.path} is not a route of "
                                       "the local Azure OpenAI emulator (see GET /docs)")
        else:
            error = EmulatorError(exc.status_code, str(exc.detail), code=str(exc.status_code),
                                  arm=True)
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


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

        recorded = False

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            body = None
            if keep_body and chunks and size <= _LOG_BODY_LIMIT:
                try:
                    body = json.loads(b"".join(chunks) or b"null")
                except ValueError:  # not JSON (a form, text): not recorded
                    body = None
                if not isinstance(body, dict):
                    body = None
            from .client import RecordedRequest

            entry = RecordedRequest(
                method=scope["method"],
                path=scope["path"],
                query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
                body=body,
                form=scope.get("emulator.form"),
                status=status["code"],
            )
            with self.emulator.log_lock:
                self.emulator.request_log.append(entry)

        async def send_and_see(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Recorded before the last byte leaves: a client that has its answer finds its
                # request in the log (recorded after, a busy server thread could lag behind the
                # client that reads the log next: a checker once saw 0 jobs created).
                record()
            await send(message)

        try:
            await self.app(scope, receive_and_keep, send_and_see)
        finally:
            record()
