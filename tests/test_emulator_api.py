"""The local Azure OpenAI emulator through the real ``openai`` SDK, in-process (no socket).

The lab's own calls run as the lab writes them, with only the model name versioned (two uploads,
``jobs.create(model="gpt-4o-2024-08-06", seed=105, ...)``, ``retrieve`` until ``succeeded``, the
deployment PUT, the chat call; a learner's pause between cells), then the
rest of the API: events, checkpoints, cancel, paging, models, ``/v1`` with ``openai.OpenAI``,
the error statuses and shapes, seeded determinism and persistence. Backend ``tiny`` (seconds).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import openai
import pytest

from helpers.emulator.client import InProcessEmulator, RecordedRequest

LAB_DATA = Path(__file__).resolve().parents[2] / "shared" / "reference-data" / "mslearn-databricks"
LAB_MESSAGES = [  # the lab's chat call, verbatim
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Does Azure OpenAI support customer managed keys?"},
    {"role": "assistant", "content": "Yes, customer managed keys are supported by Azure OpenAI."},
    {"role": "user", "content": "Do other Azure AI services support this too?"},
]
FACTS = [
    ("What is the biggest ocean?", "The Pacific. Not exactly a puddle."),
    ("What is the largest planet?", "Jupiter, obviously."),
    ("Who wrote Hamlet?", "Shakespeare. Big surprise."),
    ("What is the capital of France?", "Paris, as everyone knows."),
    ("How many legs does a spider have?", "Eight. Count them if you dare."),
    ("What is H2O?", "Water. Groundbreaking."),
    ("What is the tallest mountain?", "Everest, the big one."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci, naturally."),
    ("What is the speed of light?", "About 300,000 km per second. Fast."),
    ("What is the smallest prime?", "Two. Shocking, I know."),
    ("What gas do plants absorb?", "Carbon dioxide, of course."),
    ("What is the boiling point of water?", "100 degrees Celsius at sea level."),
]


def example(question: str, answer: str) -> dict:
    return {"messages": [
        {"role": "system", "content": "Clippy is a factual chatbot that is also sarcastic."},
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]}


def write_examples(path: Path, n: int = 10, *, broken: dict[int, str] | None = None,
                   shift: int = 0) -> Path:
    """A valid chat JSONL file of ``n`` examples (CRLF, like the lab's); ``broken`` replaces
    the given 1-based lines with raw text."""
    lines = [json.dumps(example(*FACTS[(i + shift) % len(FACTS)])) for i in range(n)]
    for number, text in (broken or {}).items():
        lines[number - 1] = text
    path.write_bytes("\r\n".join(lines).encode())
    return path


def deploy(emu_http, api_key: str, model: str, name: str = "gpt-4o-ft", **path_parts):
    """The lab's deployment call (``requests.put`` with a Bearer token and a JSON string body)."""
    deploy_data = {"sku": {"name": "standard", "capacity": 1},
                   "properties": {"model": {"format": "OpenAI", "name": model, "version": "1"}}}
    return emu_http.put(
        InProcessEmulator.management_path(name, **path_parts),
        params={"api-version": "2023-05-01"},
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        data=json.dumps(deploy_data),
    )


def upload(client, path: Path, purpose: str = "fine-tune", *, wait: bool = True):
    """Upload a file and (``wait``) poll until Azure's import has ``processed`` it."""
    with open(path, "rb") as handle:
        uploaded = client.files.create(file=handle, purpose=purpose)
    deadline = time.monotonic() + 30
    while wait and uploaded.status == "pending":
        assert time.monotonic() < deadline, f"{uploaded.id} still pending"
        time.sleep(0.02)
        uploaded = client.files.retrieve(uploaded.id)
    return uploaded


def between_cells(emu) -> None:
    """The time a learner takes to run the next cell: longer than the emulator's file import
    and deployment (Azure's take seconds to minutes; the lab's cells never wait in code)."""
    time.sleep(max(emu.emulator.file_delay, emu.emulator.deploy_delay) + 0.05)


def loss_sequence(client, job) -> list[float]:
    text = client.files.content(job.result_files[0]).text
    return [float(row["train_loss"]) for row in csv.DictReader(io.StringIO(text))]


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with InProcessEmulator(state_dir=tmp_path_factory.mktemp("emulator"), backend="tiny") as e:
        yield e


@pytest.fixture(scope="module")
def client(emu):
    return emu.azure_client()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("data")
    return {"train": write_examples(folder / "train.jsonl"),
            "valid": write_examples(folder / "valid.jsonl", shift=5)}


@pytest.fixture(scope="module")
def finished_job(emu, client, data):
    """One short job shared by the read-only tests below."""
    train = upload(client, data["train"], "fine-tune")
    valid = upload(client, data["valid"], "fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-2024-08-06", training_file=train.id,
                                         validation_file=valid.id, seed=7,
                                         hyperparameters={"n_epochs": 4})
    done = emu.wait_for_job(job.id, timeout=240)
    assert done.status == "succeeded", done.error
    return done


# --------------------------------------------------------------------------- the lab's calls

@pytest.mark.skipif(not LAB_DATA.is_dir(), reason="upstream lab data not present (../shared)")
def test_lab_calls_in_process(emu):
    """The lab's notebook, call for call, with the upstream JSONL files."""
    emu.clear_requests()
    client = emu.azure_client()
    training_response = client.files.create(
        file=open(LAB_DATA / "training_set.jsonl", "rb"), purpose="fine-tune")  # noqa: SIM115
    validation_response = client.files.create(
        file=open(LAB_DATA / "validation_set.jsonl", "rb"), purpose="fine-tune")  # noqa: SIM115
    between_cells(emu)
    response = client.fine_tuning.jobs.create(
        training_file=training_response.id, validation_file=validation_response.id,
        model="gpt-4o-2024-08-06", seed=105)
    job_id = response.id
    assert response.status == "pending"
    assert job_id.startswith("ftjob-") and len(job_id) == 6 + 32
    status = response.status
    deadline = time.monotonic() + 300
    while status not in ["succeeded", "failed"]:
        assert time.monotonic() < deadline, f"job still {status}"
        time.sleep(0.2)
        response = client.fine_tuning.jobs.retrieve(job_id)
        status = response.status
    dumped = json.loads(response.model_dump_json(indent=2))
    assert dumped["status"] == "succeeded", dumped["error"]
    assert dumped["fine_tuned_model"] == f"gpt-4o-2024-08-06.ft-{job_id[6:]}"
    assert dumped["seed"] == 105 and dumped["trained_tokens"] > 0
    assert dumped["hyperparameters"] == {"n_epochs": 10, "batch_size": 1,
                                         "learning_rate_multiplier": 1.0}  # "auto" for 10 examples

    r = deploy(emu.http, emu.api_key, response.fine_tuned_model)
    assert r.status_code == 201, r.text
    assert r.json()["properties"]["provisioningState"] == "Accepted"

    between_cells(emu)
    chat = client.chat.completions.create(model="gpt-4o-ft", messages=LAB_MESSAGES)
    assert isinstance(chat.choices[0].message.content, str)
    assert chat.model == response.fine_tuned_model
    assert chat.usage.prompt_tokens > 0
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens

    # the request log a hidden test reads: two fine-tune uploads, one job with model/files/seed
    uploads = [r for r in emu.requests if r.method == "POST" and r.path.endswith("/files")]
    assert [u.form["purpose"] for u in uploads] == ["fine-tune", "fine-tune"]
    assert [u.form["filename"] for u in uploads] == ["training_set.jsonl", "validation_set.jsonl"]
    assert uploads[0].form["bytes"] == (LAB_DATA / "training_set.jsonl").stat().st_size
    jobs = [r for r in emu.requests if r.method == "POST" and r.path.endswith("/fine_tuning/jobs")]
    assert len(jobs) == 1 and isinstance(jobs[0], RecordedRequest)
    assert jobs[0].body == {"model": "gpt-4o-2024-08-06", "seed": 105,
                            "training_file": training_response.id,
                            "validation_file": validation_response.id}
    assert jobs[0].query == {"api-version": "2024-10-21"} and jobs[0].status == 201
    assert any(r.method == "PUT" and r.status == 201 for r in emu.requests)


def test_job_lifecycle_events_checkpoints_results(client, finished_job):
    job = finished_job
    assert job.status == "succeeded" and job.finished_at >= job.created_at
    assert job.hyperparameters.n_epochs == 4 and job.hyperparameters.batch_size == 1

    events = client.fine_tuning.jobs.list_events(fine_tuning_job_id=job.id, limit=100).data
    messages = [e.message for e in events]
    assert messages[0] == "Job succeeded."  # newest first
    assert messages[-1] == f"Created fine-tuning job: {job.id}"
    assert f"Completed results file: {job.result_files[0]}" in messages
    assert "Job started." in messages
    assert all(e.id.startswith("ftevent-") and e.object == "fine_tuning.job.event" for e in events)
    metrics = [e for e in events if e.type == "metrics"]
    assert len(metrics) == 40  # 10 examples x 4 epochs, batch size 1
    assert {"step", "train_loss", "train_mean_token_accuracy", "valid_loss"} <= set(metrics[0].data)
    page = client.fine_tuning.jobs.list_events(fine_tuning_job_id=job.id, limit=3)
    assert len(page.data) == 3 and page.has_more
    after = client.fine_tuning.jobs.list_events(fine_tuning_job_id=job.id, limit=3,
                                                after=page.data[-1].id)
    assert [e.id for e in after.data] == [e.id for e in events[3:6]]

    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [40, 30, 20]  # the last 3 epochs, newest first
    assert checkpoints[0].fine_tuned_model_checkpoint == job.fine_tuned_model  # Azure: the last
    for c in checkpoints[1:]:
        assert c.fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-{c.step_number}"
    for c in checkpoints:
        assert c.id.startswith("ftchkpt-") and c.fine_tuning_job_id == job.id
        assert c.metrics.train_loss is not None and c.metrics.full_valid_loss is not None

    results = client.files.retrieve(job.result_files[0])
    assert results.filename == "results.csv" and results.purpose == "fine-tune-results"
    rows = list(csv.DictReader(io.StringIO(client.files.content(results.id).text)))
    assert list(rows[0]) == ["step", "train_loss", "train_mean_token_accuracy", "valid_loss",
                             "valid_mean_token_accuracy", "full_valid_loss",
                             "full_valid_mean_token_accuracy"]
    assert [int(r["step"]) for r in rows] == list(range(1, 41))
    assert rows[9]["full_valid_loss"] and not rows[8]["full_valid_loss"]  # at each epoch's end
    losses = [float(r["train_loss"]) for r in rows]
    assert sum(losses[-10:]) < sum(losses[:10]), "the tiny model should learn something"

    listed = client.fine_tuning.jobs.list(limit=50).data
    assert job.id in [j.id for j in listed]
    models = [m.id for m in client.models.list()]
    assert "gpt-4o" in models and "gpt-35-turbo" in models and job.fine_tuned_model in models
    assert client.models.retrieve(job.fine_tuned_model).owned_by == "organization-owner"


def test_deploy_fine_tuned_model_and_checkpoint_then_chat(emu, client, finished_job):
    r = deploy(emu.http, emu.api_key, finished_job.fine_tuned_model, name="my-ft")
    assert r.status_code == 201
    body = r.json()
    assert body["name"] == "my-ft" and body["type"].endswith("/deployments")
    assert body["properties"]["model"]["name"] == finished_job.fine_tuned_model
    assert deploy(emu.http, emu.api_key, finished_job.fine_tuned_model,
                  name="my-ft").status_code == 200  # an update
    between_cells(emu)
    got = emu.http.get(InProcessEmulator.management_path("my-ft"),
                       params={"api-version": "2023-05-01"},
                       headers={"Authorization": f"Bearer {emu.api_key}"})
    assert got.status_code == 200 and got.json()["properties"]["provisioningState"] == "Succeeded"

    chat = client.chat.completions.create(model="my-ft", messages=LAB_MESSAGES, max_tokens=5,
                                          temperature=0)
    assert chat.usage.completion_tokens <= 5
    assert chat.choices[0].finish_reason in ("stop", "length")

    checkpoint = client.fine_tuning.jobs.checkpoints.list(finished_job.id).data[-1]
    assert deploy(emu.http, emu.api_key, checkpoint.fine_tuned_model_checkpoint,
                  name="ckpt").status_code == 201
    between_cells(emu)
    chat = client.chat.completions.create(model="ckpt", messages=LAB_MESSAGES, max_tokens=3)
    assert chat.model == checkpoint.fine_tuned_model_checkpoint

    gone = emu.http.delete(InProcessEmulator.management_path("ckpt"),
                           params={"api-version": "2023-05-01"},
                           headers={"Authorization": f"Bearer {emu.api_key}"})
    assert gone.status_code in (200, 204)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="ckpt", messages=LAB_MESSAGES, max_tokens=3)
    assert info.value.body["code"] == "DeploymentNotFound"


def test_chat_on_base_deployment_honours_seed_max_tokens_and_n(client):
    kwargs = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}],
              "max_tokens": 8, "temperature": 1.0, "seed": 3}
    first = client.chat.completions.create(**kwargs)
    second = client.chat.completions.create(**kwargs)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.usage.completion_tokens <= 8
    assert first.object == "chat.completion" and first.id.startswith("chatcmpl-")
    several = client.chat.completions.create(**{**kwargs, "n": 3})
    assert [c.index for c in several.choices] == [0, 1, 2]
    greedy = [client.chat.completions.create(**{**kwargs, "temperature": 0, "seed": s})
              for s in (1, 2)]
    assert greedy[0].choices[0].message.content == greedy[1].choices[0].message.content


def test_openai_client_on_v1(emu, data, finished_job):
    v1 = emu.openai_client()
    uploaded = upload(v1, data["train"])
    assert v1.files.retrieve(uploaded.id).bytes == data["train"].stat().st_size
    assert finished_job.id in [j.id for j in v1.fine_tuning.jobs.list().data]
    assert "gpt-4o-mini" in [m.id for m in v1.models.list()]
    chat = v1.chat.completions.create(model=finished_job.fine_tuned_model,
                                      messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert chat.usage.completion_tokens <= 4
    assert any(r.path == "/v1/chat/completions" for r in emu.requests)


def test_files_list_paging_and_delete(tmp_path):
    with InProcessEmulator(backend="tiny") as emu:
        client = emu.azure_client()
        ids = []
        for i in range(5):
            f = write_examples(tmp_path / f"f{i}.jsonl", n=10, shift=i)
            ids.append(upload(client, f, "fine-tune").id)
        page = client.files.list(limit=2)
        assert [f.id for f in page.data] == ids[::-1][:2] and page.has_more
        assert [f.id for f in client.files.list(limit=2)] == ids[::-1]  # auto-pagination
        assert [f.id for f in client.files.list(limit=2, order="asc")] == ids
        assert [f.id for f in client.files.list(purpose="assistants")] == []
        assert client.files.content(ids[0]).read() == (tmp_path / "f0.jsonl").read_bytes()
        deleted = client.files.delete(ids[0])
        assert deleted.deleted and deleted.id == ids[0]
        assert ids[0] not in [f.id for f in client.files.list()]
        with pytest.raises(openai.NotFoundError):
            client.files.content(ids[0])
        with pytest.raises(openai.BadRequestError) as info:
            client.files.list(after="file-" + "0" * 32)
        assert info.value.body["param"] == "after"
        assert not list((emu.state_dir / "files").glob(ids[0] + "*"))


def test_cancel_running_and_queued_jobs(tmp_path):
    with InProcessEmulator(backend="tiny", step_delay=0.05) as emu:
        client = emu.azure_client()
        f = upload(client, write_examples(tmp_path / "t.jsonl"))
        running = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=f.id,
                                                 hyperparameters={"n_epochs": 20})
        queued = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=f.id)
        deadline = time.monotonic() + 120
        while client.fine_tuning.jobs.retrieve(running.id).status != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.fine_tuning.jobs.retrieve(queued.id).status == "pending"

        cancelled = client.fine_tuning.jobs.cancel(queued.id)
        assert cancelled.status == "cancelled"
        assert client.fine_tuning.jobs.cancel(running.id).status == "cancelled"
        deadline = time.monotonic() + 60  # the worker notices between two steps
        while emu.emulator.worker.current_job == running.id:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        done = client.fine_tuning.jobs.retrieve(running.id)
        assert done.status == "cancelled" and done.fine_tuned_model is None
        events = [e.message for e in client.fine_tuning.jobs.list_events(running.id, limit=500)]
        assert events.count("Job cancelled.") == 1 and "Job succeeded." not in events
        assert sum(1 for e in events if e.startswith("Step ")) < 200
        with pytest.raises(openai.BadRequestError) as info:
            client.fine_tuning.jobs.cancel(running.id)
        assert info.value.status_code == 400 and "already cancelled" in info.value.message


def test_bad_training_file_fails_the_job_naming_its_lines(client, tmp_path):
    # Azure's import refuses a file that is not JSON Lines: status "error", details name the line
    not_jsonl = upload(client, write_examples(tmp_path / "bad.jsonl", n=12, broken={
        3: '{"messages": [{"role": "user", "content": "no answer"}'}))
    assert not_jsonl.status == "error" and "Line 3" in not_jsonl.status_details
    with pytest.raises(openai.BadRequestError) as info:
        client.fine_tuning.jobs.create(model="gpt-4o-2024-08-06", training_file=not_jsonl.id)
    assert "must point to a completed file import" in info.value.message
    # valid JSON Lines with bad examples: imported, then the job fails naming the lines
    bad = write_examples(tmp_path / "bad2.jsonl", n=12, broken={
        3: json.dumps({"messages": [{"role": "user", "content": "no answer"}]}),
        7: json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
    })
    f = upload(client, bad, "fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-2024-08-06", training_file=f.id)
    deadline = time.monotonic() + 60
    while job.status not in ("failed", "succeeded"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "failed"
    assert job.error.param == "training_file" and job.error.code == "invalid_training_file"
    assert "lines 3, 7" in job.error.message and "bad2.jsonl" in job.error.message
    assert "line 3" in job.error.message and "line 7" in job.error.message
    events = client.fine_tuning.jobs.list_events(job.id).data
    assert events[0].level == "error" and "lines 3, 7" in events[0].message

    few = upload(client, write_examples(tmp_path / "few.jsonl", n=4))
    job = client.fine_tuning.jobs.create(model="gpt-4o-2024-08-06", training_file=few.id)
    for _ in range(600):
        job = client.fine_tuning.jobs.retrieve(job.id)
        if job.status == "failed":
            break
        time.sleep(0.05)
    assert job.status == "failed" and job.error.param == "training_file"


def test_errors_401_404_413_400_and_their_shape(emu, client, data, tmp_path):
    wrong = openai.AzureOpenAI(azure_endpoint=emu.base_url, api_key="not-the-key",
                               api_version="2024-10-21", http_client=emu.http)
    with pytest.raises(openai.AuthenticationError) as info:
        wrong.files.list()
    assert info.value.status_code == 401
    assert set(info.value.body) == {"message", "code"}  # Azure's data-plane 401
    assert info.value.body["code"] == "401"
    assert info.value.body["message"].startswith("Access denied due to invalid subscription key")
    no_key = emu.http.get("/openai/files", params={"api-version": "2024-10-21"})
    assert no_key.status_code == 401 and set(no_key.json()) == {"error"}
    assert deploy(emu.http, "not-the-key", "gpt-4o").status_code == 401
    assert emu.http.get("/").status_code == 200  # health needs no key

    for call in (lambda: client.files.retrieve("file-" + "a" * 32),
                 lambda: client.fine_tuning.jobs.retrieve("ftjob-" + "a" * 32),
                 lambda: client.fine_tuning.jobs.list_events("ftjob-" + "b" * 32),
                 lambda: client.models.retrieve("gpt-4o.ft-" + "c" * 32)):
        with pytest.raises(openai.NotFoundError) as info:
            call()
        assert info.value.status_code == 404 and info.value.body["message"]
    unknown = emu.http.get("/openai/no-such-route", params={"api-version": "2024-10-21"},
                           headers={"api-key": emu.api_key})  # a route Azure does not have
    assert unknown.status_code == 404
    assert unknown.json() == {"error": {"code": "404", "message": "Resource not found"}}

    with InProcessEmulator(backend="tiny", max_upload_bytes=1000) as small:
        with pytest.raises(openai.APIStatusError) as info:
            upload(small.azure_client(), data["train"])
        assert info.value.status_code == 413 and info.value.body["code"] == "file_too_large"
        assert small.azure_client().files.list().data == []

    other = upload(client, data["train"], "assistants")
    with pytest.raises(openai.BadRequestError) as info:
        client.fine_tuning.jobs.create(model="gpt-4o-2024-08-06", training_file=other.id)
    assert info.value.body["param"] == "training_file"
    assert "purpose='fine-tune'" in info.value.body["message"]
    good = upload(client, data["train"], "fine-tune")
    bad_requests = [
        ({"model": "gpt-4o-2024-08-06", "training_file": "file-" + "d" * 32}, "training_file"),
        ({"model": "o1", "training_file": good.id}, "model"),
        ({"model": "gpt-4o-2024-08-06", "training_file": good.id,
          "hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
        ({"model": "gpt-4o-2024-08-06", "training_file": good.id, "seed": "seven"}, "seed"),
    ]
    for kwargs, param in bad_requests:
        with pytest.raises(openai.BadRequestError) as info:
            client.fine_tuning.jobs.create(**kwargs)
        assert info.value.body["param"] == param, info.value.body
    with pytest.raises(openai.BadRequestError):
        upload(client, data["train"], "homework")
    missing_version = emu.http.get("/openai/files", headers={"api-key": emu.api_key})
    assert missing_version.status_code == 404  # as Azure answers it
    assert missing_version.json() == {"error": {"code": "404", "message": "Resource not found"}}
    assert deploy(emu.http, emu.api_key, "gpt-4o.ft-" + "e" * 32).status_code == 400
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-deployment", messages=LAB_MESSAGES)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=[], max_tokens=1)
    # no request above was answered with a status the SDK retries
    assert not [r for r in emu.requests if r.status in (408, 409, 429) or r.status >= 500]


def test_upload_names_never_reach_the_disk(emu):
    files = {"file": ("../../evil/../x.jsonl", b'{"messages": []}', "application/jsonl")}
    r = emu.http.post("/openai/files", params={"api-version": "2024-10-21"},
                      headers={"api-key": emu.api_key}, data={"purpose": "fine-tune"},
                      files=files)
    assert r.status_code == 201, r.text
    record = r.json()
    assert record["filename"] == "x.jsonl"
    assert (emu.state_dir / "files" / record["id"]).read_bytes() == b'{"messages": []}'
    assert not (emu.state_dir.parent / "evil").exists()


def test_same_seed_same_losses_other_seed_other_losses(client, emu, data):
    f = upload(client, data["train"], "fine-tune")
    jobs = [client.fine_tuning.jobs.create(model="gpt-4o-2024-08-06", training_file=f.id, seed=seed,
                                           hyperparameters={"n_epochs": 2})
            for seed in (11, 11, 12)]
    done = [emu.wait_for_job(j.id, timeout=240) for j in jobs]
    assert [j.status for j in done] == ["succeeded"] * 3
    a, b, c = (loss_sequence(client, j) for j in done)
    assert len(a) == 20 and a == b
    assert a != c
    generated = client.fine_tuning.jobs.create(model="gpt-4o-2024-08-06", training_file=f.id)
    assert isinstance(generated.seed, int)  # generated when absent
    client.fine_tuning.jobs.cancel(generated.id)


def test_state_survives_a_restart(tmp_path):
    state = tmp_path / "state"
    with InProcessEmulator(state_dir=state, backend="tiny") as first:
        client = first.azure_client(api_version="2025-04-01-preview")  # has 'method'
        f = upload(client, write_examples(tmp_path / "t.jsonl"))
        job = client.fine_tuning.jobs.create(  # today's form of the hyperparameters
            model="gpt-4o-2024-08-06", training_file=f.id, seed=1, suffix="clippy",
            method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}})
        assert job.method.supervised.hyperparameters.n_epochs == 1
        job = first.wait_for_job(job.id, timeout=120)
        assert job.status == "succeeded" and job.hyperparameters.n_epochs == 1
        assert job.method.supervised.hyperparameters.batch_size == 1  # "auto" resolved
        assert job.fine_tuned_model == f"gpt-4o-2024-08-06.ft-{job.id[6:]}-clippy"
        assert deploy(first.http, first.api_key, job.fine_tuned_model).status_code == 201
        between_cells(first)
        events = [e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    # what a process killed mid-upload leaves: a half-written file, bytes without a record
    (state / "files" / "file-half.part").write_bytes(b"{")
    (state / "files" / ("file-" + "f" * 32)).write_bytes(b"orphan")
    with InProcessEmulator(state_dir=state, backend="tiny") as second:
        client = second.azure_client()
        assert sorted(p.name for p in (state / "files").iterdir()) == sorted(
            [f.id, *job.result_files])
        assert client.files.retrieve(f.id).bytes == f.bytes
        again = client.fine_tuning.jobs.retrieve(job.id)
        assert again.status == "succeeded" and again.fine_tuned_model == job.fine_tuned_model
        assert [e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=100)] == events
        assert len(client.fine_tuning.jobs.checkpoints.list(job.id).data) == 1
        chat = client.chat.completions.create(model="gpt-4o-ft", messages=LAB_MESSAGES,
                                              max_tokens=2)
        assert chat.model == job.fine_tuned_model


# --------------------------------------------------------------------------- training pieces

def test_loss_is_on_assistant_tokens_only():
    from helpers.emulator import training

    tokenizer = training.load_chat_tokenizer()
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of Italy?"},
        {"role": "assistant", "content": "Rome, obviously.", "weight": 0},
        {"role": "user", "content": "And of Spain?"},
        {"role": "assistant", "content": "Madrid."},
    ]
    ids, labels = training.encode_chat(tokenizer, messages)
    trained = tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label != -100])
    assert trained.startswith("Madrid.") and "Rome" not in trained and "Spain" not in trained
    assert "<|im_end|>" in trained  # the model learns to stop
    assert tokenizer.decode(ids).count("Rome, obviously.") == 1  # still in the context


def test_auto_hyperparameters_follow_openai_rules():
    from helpers.emulator.training import auto_epochs, resolve_hyperparameters

    assert auto_epochs(10) == 10 and auto_epochs(50) == 3 and auto_epochs(3) == 25
    assert auto_epochs(20_000) == 1
    hp = resolve_hyperparameters({"n_epochs": 2, "batch_size": "auto"}, 10)
    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier) == (2, 1, 1.0)


def test_random_names_are_well_formed():
    from helpers.emulator import catalog
    from helpers.emulator.store import new_id, safe_filename

    job_id = new_id("ftjob")
    name = catalog.fine_tuned_name("gpt-4o", job_id, "clippy")
    parsed = catalog.parse_fine_tuned(catalog.checkpoint_name(name, 20))
    assert parsed == {"base": "gpt-4o", "job_id": job_id, "suffix": "clippy", "step": 20}
    assert safe_filename("..") == "upload.jsonl" and safe_filename("a\\b\\c.jsonl") == "c.jsonl"
    assert len({new_id("file") for _ in range(100)}) == 100


def test_chat_stream_gives_the_same_text_in_chunks(client):
    kwargs = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}],
              "max_tokens": 12, "seed": 4}
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(**kwargs, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 12
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")


def test_device_choice(monkeypatch):
    import torch

    from helpers.emulator.training import device_for

    monkeypatch.delenv("EMULATOR_DEVICE", raising=False)
    assert device_for("tiny") == "cpu"
    assert device_for("smollm2") == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("EMULATOR_DEVICE", "cpu")
    assert device_for("smollm2") == "cpu"



def test_lora_set_up_keeps_library_deprecation_warnings_off_the_notebook():
    """peft reads transformers' deprecated ``is_gradient_checkpointing`` when it wraps a model:
    a FutureWarning that would land in a learner's cell from the emulator's worker thread."""
    import warnings

    from peft import LoraConfig, get_peft_model

    from helpers.emulator import training

    model = training._tiny_model(training.load_chat_tokenizer())
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with training.quiet_progress():
            get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **training.LORA))
            warnings.warn("the course's own warnings still show", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["the course's own warnings still show"]
    assert warnings.filters == filters_before


def test_a_crashing_job_fails_with_its_reason_and_writes_nothing_to_stderr(tmp_path):
    """In a notebook the in-process emulator shares stderr with the learner's cells (and nbgrader
    zeroes a test cell that writes to stderr): a job that crashes is reported through the API,
    not by a traceback on stderr. Run in a fresh interpreter: pytest's own log capture would hide
    what Python's last-resort handler prints."""
    write_examples(tmp_path / "ok.jsonl", n=10)
    script = textwrap.dedent(f"""
        from helpers.emulator import training
        from helpers.emulator.client import InProcessEmulator

        def crash(request, observer=None):
            raise RuntimeError("out of memory (simulated)")

        training.train = crash
        with InProcessEmulator(backend="tiny", file_delay=0) as emu:
            client = emu.azure_client()
            with open({str(tmp_path / "ok.jsonl")!r}, "rb") as handle:
                f = client.files.create(file=handle, purpose="fine-tune")
            job = client.fine_tuning.jobs.create(model="gpt-4o-2024-08-06", training_file=f.id)
            job = emu.wait_for_job(job.id, timeout=120)
        print(job.status)
        print(job.error.message)
    """)
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True,
                            text=True,
                            timeout=300, env={**os.environ, "COURSE_FAST": "1"})
    assert result.returncode == 0, result.stderr
    status, message = result.stdout.splitlines()[:2]
    assert status == "failed" and "out of memory (simulated)" in message
    assert result.stderr == ""


def test_a_request_is_in_the_log_before_its_last_byte_is_sent(tmp_path):
    """The request log holds a request before the client can have its whole answer: a checker
    that reads the log right after the student's call returns finds it there (recorded after the
    response, a busy server thread lagged behind once and the check saw 0 jobs created)."""
    import asyncio

    from helpers.emulator.app import create_app
    from helpers.emulator.client import API_VERSION

    app = create_app(state_dir=str(tmp_path), api_key="k", backend="tiny")
    log = app.state.emulator.request_log
    body = json.dumps({"model": "gpt-4o-2024-08-06", "training_file": "file-missing"}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/openai/fine_tuning/jobs", "raw_path": b"/openai/fine_tuning/jobs",
             "root_path": "", "query_string": f"api-version={API_VERSION}".encode(),
             "headers": [(b"api-key", b"k"), (b"content-type", b"application/json"),
                         (b"host", b"emulator.local")],
             "client": ("127.0.0.1", 1), "server": ("emulator.local", 80)}
    sent: list[tuple[str, int]] = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            sent.append(("last byte", len(log)))

    try:
        asyncio.run(app(scope, receive, send))
    finally:
        app.state.emulator.close()
    assert sent == [("last byte", 1)]
    assert log[0].method == "POST" and log[0].path == "/openai/fine_tuning/jobs"
    assert log[0].body["training_file"] == "file-missing" and log[0].status >= 400
