"""The emulator as a real server: ``python -m helpers emulator serve`` on a free 127.0.0.1 port,
reached by the official ``openai.AzureOpenAI`` over HTTP and by ``requests`` (the lab's
deployment call). Also: a SIGKILL during training loses nothing, and 20 concurrent clients
upload and list without an error or a lost file."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import requests

from tests.test_emulator_api import LAB_DATA, LAB_MESSAGES, upload, write_examples

REPO = Path(__file__).resolve().parents[1]
KEY = "test-server-key"
FILE_DELAY, DEPLOY_DELAY = 0.1, 0.2  # seconds a file stays pending, a deployment provisions


def between_cells() -> None:
    """A learner's pause before the next cell (Azure's file import and deployment take that)."""
    time.sleep(max(FILE_DELAY, DEPLOY_DELAY) + 0.1)


class Server:
    """A ``python -m helpers emulator serve`` subprocess on a free port."""

    def __init__(self, state_dir: Path, *, step_delay: float = 0.0) -> None:
        env = {**os.environ, "EMULATOR_STEP_DELAY": str(step_delay), "PYTHONUNBUFFERED": "1",
               "EMULATOR_FILE_DELAY": str(FILE_DELAY), "EMULATOR_DEPLOY_DELAY": str(DEPLOY_DELAY)}
        env.pop("EMULATOR_API_KEY", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "helpers", "emulator", "serve", "--host", "127.0.0.1",
             "--port", "0", "--state-dir", str(state_dir), "--api-key", KEY,
             "--backend", "tiny"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.output: list[str] = []
        self.endpoint = self._wait_for_endpoint(timeout=120)
        # keep draining the pipe so the server never blocks on a full one
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_for_endpoint(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the emulator server exited:\n" + "".join(self.output)
                                   + self.process.stdout.read())
            ready, _, _ = select.select([self.process.stdout], [], [], 0.5)
            if ready:
                line = self.process.stdout.readline()
                self.output.append(line)
                if "listening on " in line:
                    return line.split("listening on ", 1)[1].strip()
        self.process.kill()
        raise RuntimeError("the emulator server did not start:\n" + "".join(self.output))

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)

    def client(self) -> openai.AzureOpenAI:
        return openai.AzureOpenAI(azure_endpoint=self.endpoint, api_key=KEY,
                                  api_version="2024-10-21")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("server-state"))
    yield running
    running.stop()


def wait_status(client, job_id: str, statuses: tuple[str, ...], timeout: float = 300):
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status}"
        time.sleep(0.1)


@pytest.mark.skipif(not LAB_DATA.is_dir(), reason="upstream lab data not present (../shared)")
def test_lab_calls_against_a_real_server(server):
    client = server.client()
    training_response = client.files.create(
        file=open(LAB_DATA / "training_set.jsonl", "rb"), purpose="fine-tune")  # noqa: SIM115
    validation_response = client.files.create(
        file=open(LAB_DATA / "validation_set.jsonl", "rb"), purpose="fine-tune")  # noqa: SIM115
    between_cells()
    response = client.fine_tuning.jobs.create(
        training_file=training_response.id, validation_file=validation_response.id,
        model="gpt-4o-2024-08-06", seed=105)
    job_id = response.id
    response = wait_status(client, job_id, ("succeeded", "failed"))
    assert json.loads(response.model_dump_json())["status"] == "succeeded", response.error

    # the lab's deployment cell, with the management host taken from configuration
    token = KEY  # locally the lab's TEMP_AUTH_TOKEN is the emulator's key
    subscription, resource_group, resource_name = "sub-123", "rg-course", "my-openai"
    model_deployment_name = "gpt-4o-ft"
    deploy_params = {"api-version": "2023-05-01"}
    deploy_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    deploy_data = json.dumps({
        "sku": {"name": "standard", "capacity": 1},
        "properties": {"model": {"format": "OpenAI", "name": response.fine_tuned_model,
                                 "version": "1"}},
    })
    request_url = (f"{server.endpoint}/subscriptions/{subscription}/resourceGroups/"
                   f"{resource_group}/providers/Microsoft.CognitiveServices/accounts/"
                   f"{resource_name}/deployments/{model_deployment_name}")
    r = requests.put(request_url, params=deploy_params, headers=deploy_headers,
                     data=deploy_data, timeout=60)
    assert r.status_code == 201, r.text
    assert r.json()["id"].startswith(f"/subscriptions/{subscription}/resourceGroups/")
    assert r.json()["properties"]["provisioningState"] == "Accepted"

    between_cells()
    chat = client.chat.completions.create(model="gpt-4o-ft", messages=LAB_MESSAGES)
    assert chat.model == response.fine_tuned_model and chat.usage.total_tokens > 0

    events = client.fine_tuning.jobs.list_events(fine_tuning_job_id=job_id, limit=10)
    assert events.data[0].message == "Job succeeded."
    assert len(client.fine_tuning.jobs.checkpoints.list(job_id).data) == 3
    assert response.fine_tuned_model in [m.id for m in client.models.list()]


def test_wrong_key_and_unknown_ids_over_http(server):
    bad = openai.AzureOpenAI(azure_endpoint=server.endpoint, api_key="nope",
                             api_version="2024-10-21", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.fine_tuning.jobs.list()
    with pytest.raises(openai.NotFoundError):
        server.client().fine_tuning.jobs.retrieve("ftjob-" + "0" * 32)
    health = requests.get(server.endpoint + "/", timeout=30).json()
    assert health["status"] == "ok" and health["backend"] == "tiny"
    v1 = openai.OpenAI(base_url=server.endpoint + "/v1", api_key=KEY)
    assert "gpt-4o" in [m.id for m in v1.models.list()]


def test_twenty_concurrent_clients_upload_and_list(server, tmp_path):
    paths = [write_examples(tmp_path / f"client{i}.jsonl", n=10, shift=i) for i in range(20)]
    start = threading.Barrier(20)

    def one(path: Path) -> tuple[str, set[str]]:
        client = server.client()
        start.wait(timeout=60)
        uploaded = upload(client, path)
        listed = {f.id for f in client.files.list()}
        return uploaded.id, listed

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, paths))  # re-raises any client's error
    ids = [file_id for file_id, _ in results]
    assert len(set(ids)) == 20
    for file_id, listed in results:
        assert file_id in listed  # each client sees its own upload at once
    client = server.client()
    everything = {f.id: f for f in client.files.list()}
    assert set(ids) <= set(everything)
    for file_id, path in zip(ids, paths, strict=True):
        assert everything[file_id].bytes == path.stat().st_size
        assert everything[file_id].filename == path.name
    assert client.files.content(ids[7]).read() == paths[7].read_bytes()


def test_sigkill_during_training_loses_nothing(tmp_path):
    state = tmp_path / "state"
    first = Server(state, step_delay=0.1)
    try:
        client = first.client()
        train = upload(client, write_examples(tmp_path / "train.jsonl"))
        valid = upload(client, write_examples(tmp_path / "valid.jsonl", shift=3))
        job = client.fine_tuning.jobs.create(model="gpt-4o-2024-08-06", training_file=train.id,
                                             validation_file=valid.id, seed=5,
                                             hyperparameters={"n_epochs": 2})
        wait_status(client, job.id, ("running",), timeout=120)
        deadline = time.monotonic() + 120
        while not any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id)):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        first.kill()
    finally:
        first.stop()
    assert first.process.returncode == -signal.SIGKILL

    second = Server(state)
    try:
        client = second.client()
        assert client.files.retrieve(train.id).bytes == train.bytes
        assert client.files.content(valid.id).read() == (tmp_path / "valid.jsonl").read_bytes()
        after = client.fine_tuning.jobs.retrieve(job.id)
        assert after.status in ("queued", "running", "succeeded")  # re-queued, not dropped
        done = wait_status(client, job.id, ("succeeded", "failed", "cancelled"))
        assert done.status == "succeeded", done.error
        events = client.fine_tuning.jobs.list_events(job.id, limit=1000).data
        assert any("re-queued" in e.message for e in events)
        steps = [e.data["step"] for e in events if e.type == "metrics"]
        assert sorted(steps) == list(range(1, 21))  # the interrupted run's metrics are gone
        assert sum(e.message.startswith("Checkpoint created") for e in events) == 2
        assert len(client.fine_tuning.jobs.checkpoints.list(job.id).data) == 2
        assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]
    finally:
        second.stop()


def test_create_answers_201_with_a_location_that_retrieves_the_job_over_http(server, tmp_path):
    client = server.client()
    train = upload(client, write_examples(tmp_path / "t.jsonl"))
    raw = client.fine_tuning.jobs.with_raw_response.create(model="gpt-4o-2024-08-06",
                                                           training_file=train.id)
    job = raw.parse()
    assert raw.status_code == 201 and job.status == "pending"
    location = raw.headers["location"]
    assert location.startswith(f"{server.endpoint}/openai/fine_tuning/jobs/{job.id}")
    assert "api-version=2024-10-21" in location
    fetched = requests.get(location, headers={"api-key": KEY}, timeout=30)
    assert fetched.status_code == 200 and fetched.json()["id"] == job.id
    client.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(openai.BadRequestError):  # the lab's bare name, as Azure answers it
        client.fine_tuning.jobs.create(model="gpt-4o", training_file=train.id)


def test_streaming_over_http_starts_with_the_prompt_filter_chunk(server):
    client = server.client()
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=LAB_MESSAGES,
                                                 max_tokens=5, stream=True))
    assert chunks[0].choices == [] and chunks[0].model_dump()["prompt_filter_results"]
    assert all(c.choices for c in chunks[1:])
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    raw = requests.post(f"{server.endpoint}/openai/deployments/gpt-4o/chat/completions",
                        params={"api-version": "2024-10-21"}, headers={"api-key": KEY},
                        json={"messages": LAB_MESSAGES, "max_tokens": 3, "stream": True},
                        timeout=60, stream=True)
    lines = [line for line in raw.iter_lines() if line]
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert json.loads(lines[0][len(b"data: "):])["choices"] == []
    assert lines[-1] == b"data: [DONE]"


def test_azure_smoke_runs_every_step_against_the_server(server):
    env = {**os.environ, "AZURE_OPENAI_ENDPOINT": server.endpoint, "AZURE_OPENAI_API_KEY": KEY,
           "TEMP_AUTH_TOKEN": KEY, "AZURE_MANAGEMENT_ENDPOINT": server.endpoint,
           "AZURE_SUBSCRIPTION_ID": "sub", "AZURE_RESOURCE_GROUP": "rg",
           "AZURE_OPENAI_RESOURCE": "res", "AZURE_OPENAI_FT_DEPLOYMENT": "smoke-ft",
           "AZURE_OPENAI_POLL_INTERVAL": "0.1"}
    env.pop("AZURE_OPENAI_FT_MODEL", None)
    result = subprocess.run([sys.executable, "-m", "helpers", "azure-smoke", "--json",
                             "--timeout", "300"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = json.loads(result.stdout)
    assert [s["name"] for s in steps] == ["models", "upload", "file processed", "job", "events",
                                         "deploy", "chat", "clean up"]
    assert all(s["ok"] for s in steps), steps
    assert "gpt-4o-2024-08-06" in steps[0]["detail"]
    assert "processed" in steps[2]["detail"] and "Succeeded" in steps[5]["detail"]
    assert steps[7]["detail"] == "deleted 4, already gone 0"  # deployment, 2 files, the job


def test_azure_smoke_reports_the_failing_step(tmp_path):
    env = {**os.environ, "AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:9",
           "AZURE_OPENAI_API_KEY": "k", "AZURE_OPENAI_POLL_INTERVAL": "0.1"}
    result = subprocess.run([sys.executable, "-m", "helpers", "azure-smoke", "--json"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1
    steps = json.loads(result.stdout)
    assert steps[0]["name"] == "models" and not steps[0]["ok"]
    assert [s["name"] for s in steps] == ["models", "clean up"]  # clean-up always runs


def test_the_app_serves_on_a_unix_domain_socket(tmp_path):
    """How the grader serves it: ``create_app(...)`` under uvicorn on a Unix socket."""
    import httpx
    import uvicorn

    from helpers.emulator import create_app

    app = create_app(state_dir=tmp_path / "state", api_key=KEY, backend="tiny", file_delay=0)
    socket_path = str(tmp_path / "emulator.sock")
    server = uvicorn.Server(uvicorn.Config(app, uds=socket_path, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        http = httpx.Client(transport=httpx.HTTPTransport(uds=socket_path),
                            base_url="http://emulator")
        client = openai.AzureOpenAI(azure_endpoint="http://emulator", api_key=KEY,
                                    api_version="2024-10-21", http_client=http)
        train = upload(client, write_examples(tmp_path / "t.jsonl"))
        raw = client.fine_tuning.jobs.with_raw_response.create(model="gpt-4o-2024-08-06",
                                                               training_file=train.id)
        assert raw.status_code == 201
        assert next(m.id for m in client.models.list()) == "gpt-4o-2024-08-06"
        logged = [r for r in app.state.emulator.request_log if r.path.endswith("/jobs")]
        assert [(r.method, r.status) for r in logged] == [("POST", 201)]
    finally:
        server.should_exit = True
        thread.join(30)
    assert app.state.emulator.closed  # uvicorn's shutdown closed it
