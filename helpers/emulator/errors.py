"""The emulator's API errors, in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Deterministic errors use 400/401/404/413/422 only: the openai SDK retries 408, 409, 429 and
5xx, so answering a bad request with one of those would make a learner wait for nothing.
"""

from __future__ import annotations

from typing import Any


class EmulatorError(Exception):
    """An error answered to the client as JSON with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: str | None = None, code: str | None = "invalid_value"):
    return EmulatorError(400, message, param=param, code=code)


def not_found(message: str, param: str | None = None, code: str = "not_found"):
    return EmulatorError(404, message, param=param, code=code)
