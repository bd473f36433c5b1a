"""``/files``: upload (multipart), list, retrieve, delete, content.

An upload answers 201 with ``status: pending``; Azure imports it (``processed``, or ``error``
with ``status_details`` when it is not JSON Lines) a little later: the authoring spec's
``FileState`` and ``examples/upload_file.json`` (azure-rest-api-specs, 2024-10-21 and
2025-04-01-preview). A job on a file that is not ``processed`` yet is refused.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from ..errors import EmulatorError, bad_request
from ..store import new_id, now, public, safe_filename
from .common import emulator_of, int_query, page, settle_file

FILE_PURPOSES = ("fine-tune", "assistants", "batch", "vision", "user_data", "evals")

router = APIRouter()


def too_large(max_bytes: int, size: int) -> EmulatorError:
    return EmulatorError(
        413, f"The upload is {size} bytes; this emulator accepts files up to "
        f"{max_bytes} bytes (EMULATOR_MAX_UPLOAD_BYTES). Split the data or "
        "remove examples.", code="file_too_large", param="file")


@router.post("/files")
async def create_file(request: Request):
    emulator = emulator_of(request)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > emulator.max_upload_bytes + 65_536:
        raise too_large(emulator.max_upload_bytes, int(declared))
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
    request.scope["emulator.form"] = {"purpose": purpose, "filename": filename, "bytes": size}
    if size is not None and size > emulator.max_upload_bytes:
        raise too_large(emulator.max_upload_bytes, size)
    file_id = new_id("file")

    def copy(handle) -> int:
        upload.file.seek(0)
        total = 0
        while chunk := upload.file.read(1024 * 1024):
            total += len(chunk)
            if total > emulator.max_upload_bytes:
                raise too_large(emulator.max_upload_bytes, total)
            handle.write(chunk)
        return total

    written = await run_in_threadpool(emulator.store.write_file_bytes, file_id, copy)
    request.scope["emulator.form"]["bytes"] = written
    record = {
        "id": file_id, "object": "file", "bytes": written, "created_at": now(),
        "filename": filename, "purpose": purpose, "status": "pending",
        "status_details": None, "expires_at": None,
        "_ready_at": time.time() + emulator.file_delay,
    }
    emulator.store.insert("file", record)
    return JSONResponse(public(record), status_code=201)


@router.get("/files")
def list_files(request: Request):
    emulator = emulator_of(request)
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request(f"'order' must be 'asc' or 'desc', got {order!r}.", param="order")
    purpose = request.query_params.get("purpose")
    items, more = emulator.store.page(
        "file", after=request.query_params.get("after"),
        limit=int_query(request, "limit", 10_000), newest_first=order == "desc",
        where=(lambda f: f["purpose"] == purpose) if purpose else None,
    )
    return page([settle_file(emulator, item) for item in items], more)


@router.get("/files/{file_id}")
def retrieve_file(file_id: str, request: Request):
    emulator = emulator_of(request)
    return public(settle_file(emulator, emulator.store.require("file", file_id, "file")))


@router.delete("/files/{file_id}")
def delete_file(file_id: str, request: Request):
    store = emulator_of(request).store
    store.require("file", file_id, "file")
    store.delete("file", file_id)
    store.remove_file_bytes(file_id)
    return {"id": file_id, "object": "file", "deleted": True}


@router.get("/files/{file_id}/content")
def file_content(file_id: str, request: Request):
    store = emulator_of(request).store
    record = store.require("file", file_id, "file")
    media = "text/csv" if record["filename"].endswith(".csv") else "application/octet-stream"
    return Response(store.read_file_bytes(file_id), media_type=media)
