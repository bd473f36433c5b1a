"""Chat completions: ``/deployments/{name}/chat/completions`` (Azure), ``/chat/completions`` on
Azure's v1 route (``model`` is a *deployment* name there, as on every Azure route) and on the
OpenAI-style ``/v1`` route (a deployment or a model name).

Replies carry Azure's content-filter annotations: ``prompt_filter_results`` and each choice's
``content_filter_results``; a stream starts with a chunk whose ``choices`` is empty and that
holds only ``prompt_filter_results`` (see ``helpers.emulator.protocol``).
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from .. import catalog, protocol
from ..errors import EmulatorError, bad_request, not_found
from ..store import now
from .common import DEPLOYMENT_NOT_READY, emulator_of, json_body, ready_deployment, resolve_model

router = APIRouter()


def _deployment_not_found(name: str) -> EmulatorError:
    return EmulatorError(404, DEPLOYMENT_NOT_READY, code="DeploymentNotFound", arm=True,
                         headers={"x-emulator-hint": f"no deployment named {name!r} is ready; "
                                  "create it with the deployment PUT and wait for Succeeded"})


@router.post("/deployments/{deployment}/chat/completions")
async def deployment_chat(deployment: str, request: Request):
    emulator = emulator_of(request)
    record = ready_deployment(emulator, deployment)
    if record is None:
        raise _deployment_not_found(deployment)
    body = await json_body(request)
    return await complete(request, record["properties"]["model"]["name"], body)


@router.post("/chat/completions")
async def chat(request: Request):
    emulator = emulator_of(request)
    body = await json_body(request)
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise bad_request("'model' is required: the name of a deployment.", param="model")
    record = ready_deployment(emulator, name)
    if record is not None:
        return await complete(request, record["properties"]["model"]["name"], body)
    if request.url.path.startswith("/openai/"):  # Azure's v1 route: deployments only
        raise _deployment_not_found(name)
    return await complete(request, name, body)


def _number(body: dict, name: str, default, low, high, integer=False):
    value = body.get(name)
    if value is None:
        return default
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not low <= value <= high:
        raise bad_request(f"'{name}' must be between {low} and {high}, got {value!r}.",
                          param=name)
    return value


async def complete(request: Request, model_name: str, body: dict[str, Any]):
    emulator = emulator_of(request)
    ref = resolve_model(emulator, model_name)
    if ref is None:
        raise not_found(f"The model '{model_name}' does not exist on this resource (base models: "
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
    max_tokens = _number(body, "max_completion_tokens", None, 1, 100_000, integer=True)
    if max_tokens is None:
        max_tokens = _number(body, "max_tokens", None, 1, 100_000, integer=True)
    temperature = float(_number(body, "temperature", 1.0, 0, 2))
    top_p = float(_number(body, "top_p", 1.0, 0, 1))
    n = _number(body, "n", 1, 1, 8, integer=True)
    seed = _number(body, "seed", None, -(2**63), 2**63 - 1, integer=True)
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
        # Azure names the model that answered, versioned for a base deployment
        "model": catalog.UNVERSIONED.get(model_name, model_name),
        "prompt_filter_results": protocol.prompt_filter_results(),
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": text, "refusal": None},
             "finish_reason": reason, "logprobs": None,
             "content_filter_results": protocol.choice_filter_results()}
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
    Azure's prompt-filter chunk (``choices: []``), then per choice the role, the content in a
    few pieces, the finish reason with its filter results; usage if asked; ``[DONE]``."""
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"

    def event(choices: list[dict], **extra: Any) -> str:
        return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n"

    yield ("data: " + json.dumps({"id": "", "object": "", "created": 0, "model": "",
                                  "choices": [],
                                  "prompt_filter_results": protocol.prompt_filter_results()})
           + "\n\n")
    for choice in completion["choices"]:
        i, text = choice["index"], choice["message"]["content"]
        yield event([{"index": i, "delta": {"role": "assistant", "content": ""},
                      "finish_reason": None, "logprobs": None, "content_filter_results": {}}])
        pieces = re.findall(r"\S*\s*", text) or [text]
        for piece in (p for p in pieces if p):
            yield event([{"index": i, "delta": {"content": piece}, "finish_reason": None,
                          "logprobs": None,
                          "content_filter_results": protocol.choice_filter_results()}])
        yield event([{"index": i, "delta": {}, "finish_reason": choice["finish_reason"],
                      "logprobs": None, "content_filter_results": {}}])
    options = body.get("stream_options") or {}
    if isinstance(options, dict) and options.get("include_usage"):
        yield event([], usage=completion["usage"])
    yield "data: [DONE]\n\n"
