"""The emulator in-process: no socket, no port, the official ``openai`` clients on top.

::

    from helpers.emulator.client import InProcessEmulator

    with InProcessEmulator() as emu:
        client = emu.azure_client()                 # openai.AzureOpenAI
        f = client.files.create(file=open("training_set.jsonl", "rb"), purpose="fine-tune")
        ...
        emu.http.put(emu.management_path("gpt-4o-ft"), params={"api-version": "2023-05-01"},
                     headers={"Authorization": f"Bearer {emu.api_key}"}, json={...})
        [r for r in emu.requests if r.path.endswith("/files")]   # what the client sent

The SDK's ``http_client`` is a ``fastapi.testclient.TestClient`` on the app, so every call goes
through the same routes, validation and error shapes as the real server.
"""

from __future__ import annotations

import atexit
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    import openai
    from openai.types.fine_tuning import FineTuningJob

BASE_URL = "http://emulator.local"
API_VERSION = "2024-10-21"
DEFAULT_API_KEY = "local-emulator-key"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator answered: ``body`` is the parsed JSON body (else ``None``);
    ``form`` summarises a multipart upload as ``{"purpose", "filename", "bytes"}``."""
    method: str
    path: str
    query: dict
    body: dict | None
    form: dict | None
    status: int


class InProcessEmulator:
    """The emulator app served through a ``TestClient`` (context manager; ``close()`` stops its
    worker and removes a temporary state dir).

    - ``state_dir``: records, files and models (default: a temporary folder);
    - ``api_key``: the key clients send (default ``"local-emulator-key"``);
    - ``backend``: ``"tiny"`` or ``"smollm2"`` (default: ``EMULATOR_BACKEND``, else by mode);
    - ``max_upload_bytes``, ``step_delay``, ``file_delay``, ``deploy_delay``: see
      :func:`helpers.emulator.app.create_app`.
    """

    base_url = BASE_URL
    api_version = API_VERSION

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        api_key: str = DEFAULT_API_KEY,
        backend: str | None = None,
        *,
        max_upload_bytes: int | None = None,
        step_delay: float | None = None,
        file_delay: float | None = None,
        deploy_delay: float | None = None,
    ) -> None:
        from fastapi.testclient import TestClient

        from .app import create_app

        self.app = create_app(state_dir=state_dir, api_key=api_key, backend=backend,
                              max_upload_bytes=max_upload_bytes, step_delay=step_delay,
                              file_delay=file_delay, deploy_delay=deploy_delay)
        self.emulator = self.app.state.emulator
        self.api_key = self.emulator.api_key
        self.backend = self.emulator.backend
        self.state_dir = self.emulator.store.root
        # raise_server_exceptions=False: a server bug answers 500 like a real server would.
        self.http = TestClient(self.app, base_url=BASE_URL, raise_server_exceptions=False)
        # An emulator nobody closed still stops its worker and removes its temporary state
        # when the interpreter exits (a notebook kernel restart, the end of a script).
        atexit.register(self.emulator.close)

    # ------------------------------------------------------------------ clients

    def azure_client(self, api_version: str = API_VERSION, **kwargs: Any) -> openai.AzureOpenAI:
        """``openai.AzureOpenAI`` on this emulator (endpoint ``http://emulator.local``)."""
        import openai

        return openai.AzureOpenAI(azure_endpoint=BASE_URL, api_key=self.api_key,
                                  api_version=api_version, http_client=self.http, **kwargs)

    def openai_client(self, **kwargs: Any) -> openai.OpenAI:
        """``openai.OpenAI`` on this emulator's OpenAI-style routes (``/v1``)."""
        import openai

        return openai.OpenAI(base_url=f"{BASE_URL}/v1", api_key=self.api_key,
                             http_client=self.http, **kwargs)

    @staticmethod
    def management_path(deployment: str, subscription: str = "local",
                        resource_group: str = "local", account: str = "emulator") -> str:
        """The path of the deployment management API (served by the emulator itself)."""
        return (f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
                f"Microsoft.CognitiveServices/accounts/{account}/deployments/{deployment}")

    # ------------------------------------------------------------------ inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered so far, oldest first."""
        with self.emulator.log_lock:
            return list(self.emulator.request_log)

    def clear_requests(self) -> None:
        with self.emulator.log_lock:
            self.emulator.request_log.clear()

    def job(self, job_id: str) -> FineTuningJob:
        from openai.types.fine_tuning import FineTuningJob

        from .store import public

        record = self.emulator.store.get("job", job_id)
        if record is None:
            raise KeyError(f"no fine-tuning job {job_id!r} on this emulator")
        # construct, as the SDK does: Azure statuses (pending, paused...) are not in its Literal
        return FineTuningJob.construct(**public(record))

    def wait_for_job(self, job_id: str, timeout: float = 300, poll: float = 0.05) -> FineTuningJob:
        """The job once it has ``succeeded``, ``failed`` or been ``cancelled`` (read from the
        store, so waiting adds nothing to :attr:`requests`); ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job.status in ("succeeded", "failed", "cancelled"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"fine-tuning job {job_id} is still {job.status} after "
                                   f"{timeout:g} s")
            time.sleep(poll)

    # ------------------------------------------------------------------ life cycle

    def close(self) -> None:
        self.http.close()
        self.emulator.close()
        atexit.unregister(self.emulator.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
