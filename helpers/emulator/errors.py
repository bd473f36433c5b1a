"""The emulator's API errors in Azure's shapes.

- Data plane (``/openai/...``): OpenAI's shape ``{"error": {"message", "type", "param",
  "code"}}`` with Azure's codes where Azure documents them (``invalidPayload``,
  ``DeploymentNotFound``); an unknown route or ``api-version`` is Azure's bare
  ``{"error": {"code": "404", "message": "Resource not found"}}``.
- Management plane (``/subscriptions/...``, Azure Resource Manager): ``{"error": {"code",
  "message"}}`` (ARM's ``ErrorResponse``; 401 codes ``AuthenticationFailed`` and
  ``InvalidAuthenticationToken``).

Deterministic errors use 400/401/404/405/413 only: the openai SDK retries 408, 409, 429 and
5xx, so answering a bad request with one of those would make a learner wait for nothing.
"""

from __future__ import annotations

from typing import Any


class EmulatorError(Exception):
    """An error answered to the client as JSON with ``status``; ``arm`` selects ARM's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        arm: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.arm = arm
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        if self.arm:
            return {"error": {"code": self.code or str(self.status), "message": self.message}}
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


def resource_not_found(hint: str = "") -> EmulatorError:
    """Azure's answer to an unknown route or api-version: 404 ``Resource not found``. The
    emulator's hint goes in the ``x-emulator-hint`` header, never in Azure's body."""
    return EmulatorError(404, "Resource not found", code="404", arm=True,
                         headers={"x-emulator-hint": hint} if hint else None)
