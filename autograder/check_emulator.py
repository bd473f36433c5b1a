"""A fresh Azure OpenAI emulator for one check, served by the checker on a Unix socket.

Assignment 02's job and upload checks call the student's functions with an ``openai.AzureOpenAI``
client whose requests reach an emulator that runs in the checker process, not in the student's
kernel: what reached the "service" (its request log) is what counts, whatever the student's code
looks like, and the kernel can neither read nor change that log. The socket lies in a folder the
grading sandbox binds for this (root-owned: the kernel may connect, not replace it); the kernel
needs no network.

The kernel builds its client with :data:`CLIENT_CODE` (``INPUT["emulator"]`` holds the socket
path, key and API version).
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

#: Kernel code that leaves an AzureOpenAI client on the check's emulator in ``client``.
CLIENT_CODE = r"""
import httpx
import openai
_emu = INPUT["emulator"]
client = openai.AzureOpenAI(
    api_key=_emu["key"], api_version=_emu["api_version"], azure_endpoint="http://emulator.local",
    http_client=httpx.Client(transport=httpx.HTTPTransport(uds=_emu["socket"]), timeout=60),
    max_retries=0)
"""


class SocketEmulator:
    """The emulator app served by uvicorn on a Unix socket in ``socket_dir`` (context manager)."""

    def __init__(self, socket_dir: str | os.PathLike, backend: str = "tiny") -> None:
        import uvicorn

        from helpers.emulator.app import create_app
        from helpers.emulator.client import API_VERSION

        self._state = tempfile.TemporaryDirectory(prefix="check-emulator-")
        self.api_key = f"check-{secrets.token_hex(8)}"
        self.api_version = API_VERSION
        self.app = create_app(state_dir=self._state.name, api_key=self.api_key, backend=backend)
        self.emulator = self.app.state.emulator
        self.socket = str(Path(socket_dir) / f"emulator-{secrets.token_hex(4)}.sock")
        config = uvicorn.Config(self.app, uds=self.socket, log_level="critical", lifespan="off",
                                access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True,
                                        name="check-emulator")
        self._thread.start()
        deadline = time.monotonic() + 30
        while not (os.path.exists(self.socket) and self._server.started):
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.close()
                raise RuntimeError("the check's emulator did not start")
            time.sleep(0.02)
        os.chmod(self.socket, 0o666)  # the kernel runs as another user

    @property
    def inputs(self) -> dict[str, Any]:
        """What the kernel needs to build its client (``INPUT["emulator"]``)."""
        return {"socket": self.socket, "key": self.api_key, "api_version": self.api_version}

    @property
    def requests(self) -> list[Any]:
        with self.emulator.log_lock:
            return list(self.emulator.request_log)

    def http(self):
        """A client on the app itself (in this process), for the check's own set-up."""
        from fastapi.testclient import TestClient

        return TestClient(self.app, base_url="http://emulator.local",
                          headers={"api-key": self.api_key})

    def close(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)
        try:
            self.emulator.close()
        finally:
            self._state.cleanup()
            if os.path.exists(self.socket):
                os.unlink(self.socket)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
