"""The emulator behaves as documented Azure does (issue 15): one test per difference the probe
through the real ``openai`` SDK found, each of which failed on the emulator before, plus the
operations newer api-versions add. In-process, backend ``tiny`` (seconds a job).

Sources for each expectation are in ``helpers/emulator/README.md``.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import time
from pathlib import Path

import httpx
import openai
import pytest

from helpers.emulator import catalog
from helpers.emulator.client import InProcessEmulator
from tests.test_emulator_api import LAB_MESSAGES, deploy, upload, write_examples

PREVIEW = "2025-04-01-preview"
MODEL = "gpt-4o-2024-08-06"
ARM = {"api-version": "2023-05-01"}


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with InProcessEmulator(state_dir=tmp_path_factory.mktemp("azure"), backend="tiny",
                           file_delay=0.3, deploy_delay=0.3) as e:
        yield e


@pytest.fixture(scope="module")
def client(emu):
    return emu.azure_client()


@pytest.fixture(scope="module")
def preview(emu):
    return emu.azure_client(api_version=PREVIEW)


@pytest.fixture(scope="module")
def train_file(client, tmp_path_factory):
    return upload(client, write_examples(tmp_path_factory.mktemp("d") / "train.jsonl"))


def wait(client, job_id: str, statuses=("succeeded", "failed", "cancelled"), timeout=180):
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        assert time.monotonic() < deadline, f"{job_id} still {job.status}"
        time.sleep(0.05)


def wait_deployment(emu, name: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        record = emu.http.get(emu.management_path(name), params=ARM,
                              headers={"Authorization": f"Bearer {emu.api_key}"}).json()
        if record["properties"]["provisioningState"] == "Succeeded":
            return record
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.fixture(scope="module")
def done_job(client, train_file):
    job = client.fine_tuning.jobs.create(model=MODEL, training_file=train_file.id, seed=5,
                                         hyperparameters={"n_epochs": 3})
    job = wait(client, job.id)
    assert job.status == "succeeded", job.error
    return job


# --------------------------------------------------------------------------- 1. model names

@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-2099-01-01", "gpt-4o-mini", "gpt-4.1",
                                   "o1", "gpt-4o-2024-08-06:ckpt-step-1"])
def test_unversioned_or_unknown_base_models_are_refused_as_azure_refuses_them(
        client, train_file, model):
    with pytest.raises(openai.BadRequestError) as info:
        client.fine_tuning.jobs.create(model=model, training_file=train_file.id)
    assert info.value.status_code == 400
    assert info.value.body["code"] == "invalidPayload"
    assert info.value.body["message"] == "The specified base model does not support fine-tuning."
    assert "encoding" not in json.dumps(info.value.body)  # no parameter the API does not have


@pytest.mark.parametrize("model", sorted(catalog.FINE_TUNABLE))
def test_every_versioned_fine_tunable_model_is_accepted(client, train_file, model):
    job = client.fine_tuning.jobs.create(model=model, training_file=train_file.id)
    assert job.model == model and job.status == "pending"
    client.fine_tuning.jobs.cancel(job.id)


# --------------------------------------------------------------------------- 2. the model clock

def test_models_list_carries_capabilities_lifecycle_and_retirement_dates(client, done_job):
    models = {m.id: m for m in client.models.list()}
    versioned = models[MODEL].model_dump()
    assert versioned["capabilities"]["fine_tune"] is True
    assert versioned["capabilities"]["chat_completion"] is True
    assert versioned["deprecation"]["fine_tune"] == int(datetime.datetime(
        2026, 3, 31, tzinfo=datetime.UTC).timestamp())
    assert versioned["lifecycle_status"] in ("generally-available", "deprecating", "deprecated")
    assert isinstance(versioned["created_at"], int)
    for name in ("gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14", "gpt-4.1-nano-2025-04-14"):
        fine_tune = models[name].model_dump()["deprecation"]["fine_tune"]
        assert datetime.datetime.fromtimestamp(fine_tune, datetime.UTC).date() == \
            datetime.date(2026, 10, 14)
    assert models["gpt-4o"].model_dump()["capabilities"]["fine_tune"] is False
    tuned = models[done_job.fine_tuned_model].model_dump()
    assert tuned["model"] == MODEL and tuned["fine_tune"] == done_job.id
    assert tuned["capabilities"]["fine_tune"] is True  # continuous fine-tuning


def test_lifecycle_follows_the_clock(monkeypatch):
    model = catalog.FINE_TUNABLE[MODEL]
    assert catalog.lifecycle_status(model, datetime.date(2025, 6, 1)) == "generally-available"
    assert catalog.lifecycle_status(model, datetime.date(2026, 3, 1)) == "deprecating"
    assert catalog.lifecycle_status(model, datetime.date(2026, 4, 1)) == "deprecated"
    assert catalog.retirement_note(MODEL, datetime.date(2025, 6, 1)) is None
    assert "retires" in catalog.retirement_note(MODEL, datetime.date(2026, 3, 1))
    monkeypatch.setenv("EMULATOR_TODAY", "2025-06-01")
    assert catalog.model_object(MODEL)["lifecycle_status"] == "generally-available"


def test_a_retired_model_still_trains_and_its_events_say_what_azure_does_today(
        client, done_job):
    events = [e for e in client.fine_tuning.jobs.list_events(done_job.id, limit=200)]
    note = [e for e in events if "retired fine-tuning" in e.message]
    assert catalog.today() > datetime.date(2026, 3, 31)  # the clock of this machine
    assert len(note) == 1 and note[0].level == "warning"
    assert "2026-03-31" in note[0].message and "refuses" in note[0].message


# --------------------------------------------------------------------------- 4. the probe's list

def test_files_are_pending_first_and_a_job_on_an_unprocessed_file_is_refused(client, tmp_path):
    with open(write_examples(tmp_path / "t.jsonl"), "rb") as handle:
        raw = client.files.with_raw_response.create(file=handle, purpose="fine-tune")
    uploaded = raw.parse()
    assert raw.status_code == 201 and uploaded.status == "pending"
    with pytest.raises(openai.BadRequestError) as info:
        client.fine_tuning.jobs.create(model=MODEL, training_file=uploaded.id)
    assert "must point to a completed file import" in info.value.message
    deadline = time.monotonic() + 10
    while client.files.retrieve(uploaded.id).status == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.files.retrieve(uploaded.id).status == "processed"


def test_create_answers_201_with_location_pending_and_auto_as_minus_one(client, train_file):
    raw = client.fine_tuning.jobs.with_raw_response.create(
        model=MODEL, training_file=train_file.id, hyperparameters={"n_epochs": 2})
    job = raw.parse()
    assert raw.status_code == 201
    assert raw.headers["location"].startswith("http://emulator.local/openai/fine_tuning/jobs/")
    assert raw.headers["location"].split("?")[0].endswith(job.id)
    assert job.status == "pending"
    assert job.hyperparameters.model_dump() == {"n_epochs": 2, "batch_size": -1,
                                                "learning_rate_multiplier": -1}
    done = wait(client, job.id)
    assert done.hyperparameters.batch_size == 1 and done.hyperparameters.n_epochs == 2


def test_streaming_starts_with_the_prompt_filter_chunk_and_replies_carry_filter_results(client):
    stream = client.chat.completions.create(model="gpt-4o", messages=LAB_MESSAGES, max_tokens=4,
                                            stream=True)
    chunks = list(stream)
    assert chunks[0].choices == []
    assert chunks[0].model_dump()["prompt_filter_results"][0]["content_filter_results"]["hate"] \
        == {"filtered": False, "severity": "safe"}
    with pytest.raises(IndexError):
        chunks[0].choices[0]  # what Azure makes a learner's `chunk.choices[0]` do
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reply = client.chat.completions.create(model="gpt-4o", messages=LAB_MESSAGES, max_tokens=4,
                                           seed=1)
    dumped = reply.model_dump()
    assert dumped["prompt_filter_results"][0]["prompt_index"] == 0
    assert dumped["choices"][0]["content_filter_results"]["violence"]["filtered"] is False
    assert isinstance(text, str)


def test_deployments_go_accepted_creating_succeeded_and_chat_waits_for_it(emu, client,
                                                                            done_job):
    put = deploy(emu.http, emu.api_key, done_job.fine_tuned_model, name="states")
    assert put.status_code == 201 and put.json()["properties"]["provisioningState"] == "Accepted"
    got = emu.http.get(emu.management_path("states"), params=ARM,
                       headers={"Authorization": f"Bearer {emu.api_key}"}).json()
    assert got["properties"]["provisioningState"] == "Creating"
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="states", messages=LAB_MESSAGES, max_tokens=2)
    assert info.value.body["code"] == "DeploymentNotFound"
    assert wait_deployment(emu, "states")["properties"]["provisioningState"] == "Succeeded"
    assert client.chat.completions.create(model="states", messages=LAB_MESSAGES,
                                          max_tokens=2).model == done_job.fine_tuned_model


def test_checkpoints_are_named_as_azure_names_them(client, done_job):
    checkpoints = client.fine_tuning.jobs.checkpoints.list(done_job.id).data
    assert [c.step_number for c in checkpoints] == [30, 20, 10]
    assert checkpoints[0].fine_tuned_model_checkpoint == done_job.fine_tuned_model
    assert [c.fine_tuned_model_checkpoint for c in checkpoints[1:]] == [
        f"{done_job.fine_tuned_model}:ckpt-step-20", f"{done_job.fine_tuned_model}:ckpt-step-10"]
    assert all(c.id.startswith("ftchkpt-") and len(c.id) == 8 + 32 for c in checkpoints)
    assert done_job.fine_tuned_model == f"{MODEL}.ft-{done_job.id[6:]}"


@pytest.mark.parametrize("version", ["2099-01-01", "2024-13-45", "latest", "v1"])
def test_an_api_version_azure_does_not_serve_is_not_found(emu, version):
    bad = emu.azure_client(api_version=version, max_retries=0)
    with pytest.raises(openai.NotFoundError) as info:
        bad.files.list()
    assert info.value.body == {"code": "404", "message": "Resource not found"}


def test_management_401_is_shaped_like_arm(emu):
    missing = emu.http.get(emu.management_path("gpt-4o"), params=ARM)
    assert missing.status_code == 401
    assert missing.json() == {"error": {"code": "AuthenticationFailed", "message":
                                        "Authentication failed. The 'Authorization' header is "
                                        "missing."}}
    wrong = emu.http.get(emu.management_path("gpt-4o"), params=ARM,
                         headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert set(wrong.json()["error"]) == {"code", "message"}
    no_version = emu.http.get(emu.management_path("gpt-4o"),
                              headers={"Authorization": f"Bearer {emu.api_key}"})
    assert no_version.status_code == 400
    assert no_version.json()["error"]["code"] == "MissingApiVersionParameter"
    unknown = emu.http.get(emu.management_path("nope"), params=ARM,
                           headers={"Authorization": f"Bearer {emu.api_key}"})
    assert unknown.status_code == 404 and set(unknown.json()["error"]) == {"code", "message"}


def test_integrations_are_kept_and_echoed(preview, train_file):
    integrations = [{"type": "wandb", "wandb": {"project": "course", "tags": ["lab"]}}]
    job = preview.fine_tuning.jobs.create(model=MODEL, training_file=train_file.id,
                                          integrations=integrations)
    assert [i.model_dump(exclude_none=True) for i in job.integrations] == integrations
    again = preview.fine_tuning.jobs.retrieve(job.id)
    assert again.integrations[0].wandb.project == "course"
    preview.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(openai.BadRequestError):
        preview.fine_tuning.jobs.create(model=MODEL, training_file=train_file.id,
                                        integrations=[{"type": "mlflow", "mlflow": {}}])


def test_event_levels_are_azures(client, done_job):
    levels = {e.level for e in client.fine_tuning.jobs.list_events(done_job.id, limit=500)}
    assert levels <= {"info", "warning", "error"} and "warning" in levels


def test_start_events_are_not_duplicated_after_a_restart(tmp_path):
    state = tmp_path / "state"
    with InProcessEmulator(state_dir=state, backend="tiny", step_delay=0.05,
                           file_delay=0) as first:
        client = first.azure_client()
        f = upload(client, write_examples(tmp_path / "t.jsonl"))
        job = client.fine_tuning.jobs.create(model=MODEL, training_file=f.id,
                                             hyperparameters={"n_epochs": 3})
        deadline = time.monotonic() + 60
        while not any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first.emulator.worker.stop()  # as if the process died mid-run
    with InProcessEmulator(state_dir=state, backend="tiny", file_delay=0) as second:
        client = second.azure_client()
        done = second.wait_for_job(job.id, timeout=120)
        assert done.status == "succeeded", done.error
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=500)]
        assert messages.count("Job started.") == 1
        assert sum(m.startswith("Training ") for m in messages) == 1
        steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(job.id, limit=500)
                 if e.type == "metrics"]
        assert sorted(steps) == list(range(1, 31))


def test_the_v1_route_wants_a_deployment_name(emu, done_job):
    v1 = openai.OpenAI(base_url=f"{emu.base_url}/openai/v1", api_key=emu.api_key,
                       http_client=emu.http)
    with pytest.raises(openai.NotFoundError) as info:
        v1.chat.completions.create(model=done_job.fine_tuned_model, messages=LAB_MESSAGES,
                                   max_tokens=2)
    assert info.value.body["code"] == "DeploymentNotFound"
    reply = v1.chat.completions.create(model="gpt-4o", messages=LAB_MESSAGES, max_tokens=2)
    assert reply.usage.completion_tokens <= 2  # a base deployment's name works


# --------------------------------------------------------------------------- 3. new operations

def test_pause_keeps_the_step_and_resume_goes_on_from_it(tmp_path):
    with InProcessEmulator(backend="tiny", step_delay=0.05, file_delay=0) as emu:
        client = emu.azure_client(api_version=PREVIEW)
        f = upload(client, write_examples(tmp_path / "t.jsonl"))
        job = client.fine_tuning.jobs.create(model=MODEL, training_file=f.id, seed=9,
                                             hyperparameters={"n_epochs": 3})
        deadline = time.monotonic() + 60
        while len([e for e in client.fine_tuning.jobs.list_events(job.id, limit=50)
                   if e.type == "metrics"]) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.fine_tuning.jobs.pause(job.id).status in ("pausing", "paused")
        paused = wait(client, job.id, ("paused",))
        events = client.fine_tuning.jobs.list_events(job.id, limit=200).data
        step = max(e.data["step"] for e in events if e.type == "metrics")
        assert events[0].message == f"Job paused at step {step}." and 4 <= step < 30
        time.sleep(0.3)
        assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"  # no step meanwhile
        assert paused.fine_tuned_model is None
        with pytest.raises(openai.BadRequestError):
            client.fine_tuning.jobs.pause(job.id)
        assert client.fine_tuning.jobs.resume(job.id).status == "resuming"
        done = wait(client, job.id)
        assert done.status == "succeeded", done.error
        events = client.fine_tuning.jobs.list_events(job.id, limit=500).data
        steps = [e.data["step"] for e in events if e.type == "metrics"]
        assert sorted(steps) == list(range(1, 31))  # each step once: it went on from `step`
        assert any(e.message == f"Resuming training from step {step} of 30." for e in events)
        with pytest.raises(openai.BadRequestError):
            client.fine_tuning.jobs.resume(job.id)

        straight = client.fine_tuning.jobs.create(model=MODEL, training_file=f.id, seed=9,
                                                  hyperparameters={"n_epochs": 3})
        straight = wait(client, straight.id)

        def losses(j):
            text = client.files.content(j.result_files[0]).text
            return [float(r["train_loss"]) for r in csv.DictReader(io.StringIO(text))]

        assert losses(done) == pytest.approx(losses(straight), abs=1e-5)


def test_pause_and_resume_need_a_preview_api_version(client, done_job):
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.pause(done_job.id)
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.resume(done_job.id)


def test_deploy_a_checkpoint_by_its_id(emu, client, done_job):
    checkpoint = client.fine_tuning.jobs.checkpoints.list(done_job.id).data[-1]
    assert checkpoint.step_number == 10
    put = deploy(emu.http, emu.api_key, checkpoint.id, name="by-id")
    assert put.status_code == 201, put.text
    wait_deployment(emu, "by-id")
    reply = client.chat.completions.create(model="by-id", messages=LAB_MESSAGES, max_tokens=2)
    assert reply.model == checkpoint.id
    assert deploy(emu.http, emu.api_key, "ftchkpt-" + "0" * 32, name="none").status_code == 400


def test_continuous_fine_tuning_starts_from_the_fine_tuned_model(client, train_file, done_job):
    job = client.fine_tuning.jobs.create(model=done_job.fine_tuned_model, seed=5,
                                         training_file=train_file.id,
                                         hyperparameters={"n_epochs": 1})
    assert job.model == done_job.fine_tuned_model
    job = wait(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"{MODEL}.ft-{job.id[6:]}"

    def losses(j):
        text = client.files.content(j.result_files[0]).text
        return [float(r["train_loss"]) for r in csv.DictReader(io.StringIO(text))]

    before, after = losses(done_job), losses(job)
    # it starts where the first job ended (the same 10 examples), not from the base model
    assert sum(after[:10]) / 10 < 0.8 * sum(before[:10]) / 10
    assert sum(after[:10]) / 10 < 1.2 * sum(before[-10:]) / 10
    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert any("continuous fine-tuning" in m for m in events)
    other = f"{MODEL}.ft-{'f' * 32}"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model=other, training_file=train_file.id)


def test_delete_a_job(emu, preview, client, train_file):
    job = preview.fine_tuning.jobs.create(model=MODEL, training_file=train_file.id,
                                          hyperparameters={"n_epochs": 30})
    with pytest.raises(openai.BadRequestError) as info:  # still active: cancel it first
        preview.delete(f"/fine_tuning/jobs/{job.id}", cast_to=httpx.Response)
    assert "Cancel it first" in info.value.message
    preview.fine_tuning.jobs.cancel(job.id)
    raw = emu.http.delete(f"/openai/fine_tuning/jobs/{job.id}", params={"api-version": PREVIEW},
                          headers={"api-key": emu.api_key})
    assert raw.status_code == 204 and raw.content == b""
    with pytest.raises(openai.NotFoundError):
        preview.fine_tuning.jobs.retrieve(job.id)
    assert job.id not in [j.id for j in preview.fine_tuning.jobs.list(limit=100)]
    with pytest.raises(openai.NotFoundError):  # already gone
        client.delete(f"/fine_tuning/jobs/{job.id}", cast_to=httpx.Response)
    other = client.fine_tuning.jobs.create(model=MODEL, training_file=train_file.id)
    client.fine_tuning.jobs.cancel(other.id)
    client.delete(f"/fine_tuning/jobs/{other.id}", cast_to=httpx.Response)  # GA 2024-10-21 too
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve(other.id)


@pytest.mark.parametrize(("given", "recorded"), [(None, "Standard"), ("standard", "Standard"),
                                                 ("GlobalStandard", "GlobalStandard"),
                                                 ("Developer", "developer")])
def test_the_training_tier_is_recorded(client, train_file, given, recorded):
    extra = {} if given is None else {"extra_body": {"trainingType": given}}
    job = client.fine_tuning.jobs.create(model=MODEL, training_file=train_file.id, **extra)
    assert job.model_dump()["trainingType"] == recorded
    assert client.fine_tuning.jobs.retrieve(job.id).model_dump()["trainingType"] == recorded
    client.fine_tuning.jobs.cancel(job.id)


def test_an_unknown_training_tier_is_refused(client, train_file):
    with pytest.raises(openai.BadRequestError) as info:
        client.fine_tuning.jobs.create(model=MODEL, training_file=train_file.id,
                                       extra_body={"trainingType": "premium"})
    assert info.value.body["param"] == "trainingType"


# --------------------------------------------------------------------------- DPO

def preference_lines(n: int = 10) -> list[str]:
    facts = [("What is the biggest ocean?", "The Pacific. Not exactly a puddle.",
              "I am not sure."),
             ("Who wrote Hamlet?", "Shakespeare. Big surprise.", "Someone, probably.")]
    lines = []
    for i in range(n):
        question, good, bad = facts[i % len(facts)]
        lines.append(json.dumps({
            "input": {"messages": [{"role": "system", "content": "Clippy is sarcastic."},
                                   {"role": "user", "content": question}],
                      "tools": [], "parallel_tool_calls": True},
            "preferred_output": [{"role": "assistant", "content": good}],
            "non_preferred_output": [{"role": "assistant", "content": bad}]}))
    return lines


def test_dpo_trains_on_preference_pairs_and_its_loss_falls(preview, tmp_path):
    path = tmp_path / "dpo.jsonl"
    path.write_text("\n".join(preference_lines()) + "\n")
    f = upload(preview, path)
    job = preview.fine_tuning.jobs.create(
        model=MODEL, training_file=f.id, seed=3,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 3}}})
    assert job.method.type == "dpo"
    assert job.method.dpo.hyperparameters.beta == 0.2
    done = wait(preview, job.id)
    assert done.status == "succeeded", done.error
    assert done.method.dpo.hyperparameters.batch_size == 1
    rows = list(csv.DictReader(io.StringIO(preview.files.content(done.result_files[0]).text)))
    losses = [float(r["train_loss"]) for r in rows]
    assert len(losses) == 30
    assert abs(losses[0] - 0.6931) < 0.01  # -log sigmoid(0): policy == reference at step 1
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    assert float(rows[-1]["train_mean_token_accuracy"]) == 1.0  # every preferred answer wins


@pytest.mark.parametrize(("line", "problem"), [
    (json.dumps({"messages": [{"role": "user", "content": "q"},
                              {"role": "assistant", "content": "a"}]}), "supervised file"),
    (json.dumps({"input": {"messages": []}, "preferred_output": [{"role": "assistant",
                 "content": "a"}], "non_preferred_output": [{"role": "assistant",
                                                             "content": "b"}]}), "'input'"),
    (json.dumps({"input": {"messages": [{"role": "user", "content": "q"}]},
                 "preferred_output": [{"role": "user", "content": "a"}],
                 "non_preferred_output": [{"role": "assistant", "content": "b"}]}), "role"),
    (json.dumps({"input": {"messages": [{"role": "user", "content": "q"}]},
                 "preferred_output": [{"role": "assistant", "content": "a"}]}),
     "non_preferred_output"),
])
def test_dpo_data_is_validated_naming_the_line(preview, tmp_path, line, problem):
    lines = preference_lines()
    lines[3] = line
    path = tmp_path / "bad_dpo.jsonl"
    path.write_text("\n".join(lines) + "\n")
    f = upload(preview, path)
    job = preview.fine_tuning.jobs.create(model=MODEL, training_file=f.id,
                                          method={"type": "dpo"})
    done = wait(preview, job.id)
    assert done.status == "failed" and done.error.param == "training_file"
    assert "line 4" in done.error.message and problem in done.error.message


def test_dpo_is_refused_where_azure_does_not_offer_it(preview, client, train_file):
    with pytest.raises(openai.BadRequestError) as info:
        preview.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18",
                                        training_file=train_file.id, method={"type": "dpo"})
    assert info.value.body["param"] == "method.type"
    with pytest.raises(openai.BadRequestError) as info:  # the GA api-version has no 'method'
        client.fine_tuning.jobs.create(model=MODEL, training_file=train_file.id,
                                       method={"type": "dpo"})
    assert info.value.body["param"] == "method" and "2025-02-01-preview" in info.value.message


def test_pending_and_deploy_delays_are_short_and_configurable(monkeypatch):
    from helpers.emulator import protocol

    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.delenv("EMULATOR_FILE_DELAY", raising=False)
    assert protocol.file_delay() < 0.5 and protocol.deploy_delay() < 0.5
    monkeypatch.setenv("EMULATOR_FILE_DELAY", "3")
    assert protocol.file_delay() == 3.0 and protocol.file_delay(0.0) == 0.0


def test_readme_documents_the_sources():
    readme = (Path(__file__).resolve().parents[1] / "helpers" / "emulator" / "README.md").read_text()
    for source in ("2025-04-01-preview", "2024-10-21", "PutDeployment.json", "model-retirements",
                   "fine-tuning-direct-preference-optimization"):
        assert source in readme


def test_a_state_dir_from_the_older_emulator_keeps_working(tmp_path):
    """Jobs recorded before Azure's statuses (``queued``, a bare ``gpt-4o``) still run and list."""
    from helpers.emulator.store import Store

    state = tmp_path / "state"
    with InProcessEmulator(state_dir=state, backend="tiny", file_delay=0) as first:
        f = upload(first.azure_client(), write_examples(tmp_path / "t.jsonl"))
    store = Store(state)
    old = {"id": "ftjob-" + "a" * 32, "object": "fine_tuning.job", "created_at": 1,
           "status": "queued", "model": "gpt-4o", "training_file": f.id, "validation_file": None,
           "seed": 3, "suffix": None, "error": None, "fine_tuned_model": None,
           "finished_at": None, "result_files": [], "trained_tokens": None,
           "hyperparameters": {"n_epochs": 1, "batch_size": 1, "learning_rate_multiplier": 1.0},
           "_backend": "tiny", "_requested_hyperparameters": {"n_epochs": 1}}
    store.insert("job", old)
    store.close()
    with InProcessEmulator(state_dir=state, backend="tiny") as second:
        client = second.azure_client()
        done = second.wait_for_job(old["id"], timeout=120)
        assert done.status == "succeeded", done.error
        assert done.fine_tuned_model == f"gpt-4o-2024-08-06.ft-{'a' * 32}"
        assert done.fine_tuned_model in [m.id for m in client.models.list()]
