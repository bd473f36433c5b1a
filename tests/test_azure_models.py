"""``helpers.azure`` on today's Azure: the one place assignment 02 takes its base model from
(:func:`choose_base_model`), the job options newer api-versions add, and the output of
``job_events``, ``list_checkpoints`` and ``compare_answers`` checked against the emulator
(issue 17: they had no test of their output)."""

from __future__ import annotations

import datetime
import json
from types import SimpleNamespace

import pytest

from helpers import azure
from tests.test_emulator_api import write_examples

STUB_URL = "https://my-res.openai.azure.com/openai/"


def stub_backend(models: list[dict], url: str = STUB_URL) -> azure.Backend:
    """An Azure backend whose client lists ``models`` (dicts in Azure's shape)."""
    listed = [SimpleNamespace(**m) for m in models]
    client = SimpleNamespace(base_url=url, models=SimpleNamespace(list=lambda: iter(listed)))
    return azure.Backend(client=client, kind="azure", description="stub",
                         management=None)  # type: ignore[arg-type]


def unix(day: str) -> int:
    return int(datetime.datetime.fromisoformat(day).replace(tzinfo=datetime.UTC).timestamp())


MODELS = [
    {"id": "gpt-4o", "capabilities": {"fine_tune": False}, "deprecation": {}},
    {"id": "gpt-4o-2024-08-06", "capabilities": {"fine_tune": True},
     "deprecation": {"fine_tune": unix("2026-03-31")}},
    {"id": "gpt-4.1-2025-04-14", "capabilities": {"fine_tune": True},
     "deprecation": {"fine_tune": unix("2026-10-14")}},
]


@pytest.fixture
def emulated(tmp_path, monkeypatch):
    monkeypatch.setenv("EMULATOR_BACKEND", "tiny")
    monkeypatch.setenv("EMULATOR_FILE_DELAY", "0")
    monkeypatch.setenv("EMULATOR_DEPLOY_DELAY", "0.1")
    with azure.make_client({}, state_dir=tmp_path / "state") as backend:
        yield backend


def test_the_environment_wins():
    choice = azure.choose_base_model(stub_backend(MODELS), {"AZURE_OPENAI_FT_MODEL": "my-model"})
    assert choice.model == "my-model" and choice.source == "AZURE_OPENAI_FT_MODEL"
    assert "AZURE_OPENAI_FT_MODEL" in choice.description


def test_on_azure_the_first_fine_tunable_model_not_yet_retired():
    backend = stub_backend(MODELS)
    early = azure.choose_base_model(backend, {}, today=datetime.date(2025, 12, 1))
    assert early.model == "gpt-4o-2024-08-06" and early.source == "models list"
    assert early.retires == datetime.date(2026, 3, 31)
    assert "2026-03-31" in early.description
    later = azure.choose_base_model(backend, {}, today=datetime.date(2026, 6, 1))
    assert later.model == "gpt-4.1-2025-04-14" and later.retires == datetime.date(2026, 10, 14)
    undated = stub_backend([{"id": "x-2025-01-01", "capabilities": {"fine_tune": True}}])
    assert azure.choose_base_model(undated, {}).retires is None


def test_on_azure_with_nothing_left_to_fine_tune_it_says_what_to_set():
    with pytest.raises(azure.AzureSetupError, match="AZURE_OPENAI_FT_MODEL"):
        azure.choose_base_model(stub_backend(MODELS), {}, today=datetime.date(2026, 12, 1))


def test_an_emulator_server_on_this_machine_gets_the_emulators_model():
    local = stub_backend(MODELS, url="http://127.0.0.1:8765/openai/")
    choice = azure.choose_base_model(local, {}, today=datetime.date(2026, 12, 1))
    assert choice.model == "gpt-4o-2024-08-06" and choice.source == "emulator default"


def test_in_process_the_emulators_versioned_gpt4o_and_its_clock(emulated):
    choice = azure.choose_base_model(emulated, {}, today=datetime.date(2026, 12, 1))
    assert choice.model == azure.EMULATOR_FT_MODEL == "gpt-4o-2024-08-06"
    assert choice.source == "emulator default"
    assert "retired its fine-tuning on 2026-03-31" in choice.description
    before = azure.choose_base_model(emulated, {}, today=datetime.date(2025, 1, 1))
    assert "until 2026-03-31" in before.description
    configured = azure.choose_base_model(emulated, {"AZURE_OPENAI_FT_MODEL": "gpt-4.1-2025-04-14"})
    assert configured.retires == datetime.date(2026, 10, 14)  # read from the models list


def test_create_job_sends_the_model_and_the_tier_only_when_given(emulated, tmp_path):
    client = emulated.client
    train = azure.upload_file(client, write_examples(tmp_path / "t.jsonl"))
    azure.wait_for_files(client, [train.id], poll_interval=0.05)
    emulated.emulator.clear_requests()
    plain = azure.create_job(client, train.id, model=azure.EMULATOR_FT_MODEL)
    tier = azure.create_job(client, train.id, model=azure.EMULATOR_FT_MODEL,
                            training_type="GlobalStandard")
    bodies = [r.body for r in emulated.emulator.requests if r.path.endswith("/fine_tuning/jobs")]
    assert bodies[0] == {"model": "gpt-4o-2024-08-06", "training_file": train.id}
    assert bodies[1]["trainingType"] == "GlobalStandard"
    assert tier.model_dump()["trainingType"] == "GlobalStandard"
    for job in (plain, tier):
        client.fine_tuning.jobs.cancel(job.id)


def test_a_paused_job_stops_the_wait_saying_how_to_resume():
    job = SimpleNamespace(id="ftjob-x", status="paused", error=None)
    client = SimpleNamespace(fine_tuning=SimpleNamespace(jobs=SimpleNamespace(
        retrieve=lambda job_id: job)))
    with pytest.raises(azure.FineTuningJobError, match="resume"):
        azure.wait_for_job(client, "ftjob-x", progress=False, sleep=lambda s: None)


@pytest.fixture
def trained(emulated, tmp_path):
    client = emulated.client
    train = azure.upload_file(client, write_examples(tmp_path / "t.jsonl"))
    valid = azure.upload_file(client, write_examples(tmp_path / "v.jsonl", shift=4))
    azure.wait_for_files(client, [train.id, valid.id], poll_interval=0.05)
    job = azure.create_job(client, train.id, valid.id, seed=4, hyperparameters={"n_epochs": 3})
    job = azure.wait_for_job(client, job.id, poll_interval=0.05, progress=False, timeout=240)
    return job


def test_job_events_are_oldest_first_with_levels_and_metrics(emulated, trained):
    frame = azure.job_events(emulated.client, trained.id, limit=200)
    assert list(frame.columns) == ["created_at", "level", "type", "message", "data"]
    assert frame["message"].iloc[0] == f"Created fine-tuning job: {trained.id}"
    assert frame["message"].iloc[-1] == "Job succeeded."
    assert set(frame["level"]) <= {"info", "warning", "error"}
    metrics = frame[frame["type"] == "metrics"]
    assert [d["step"] for d in metrics["data"]] == list(range(1, 31))
    assert frame["created_at"].is_monotonic_increasing
    assert len(azure.job_events(emulated.client, trained.id, limit=5)) == 5  # the newest five
    assert azure.job_events(emulated.client, trained.id, limit=5)["message"].iloc[-1] == \
        "Job succeeded."


def test_list_checkpoints_gives_one_row_per_saved_epoch_with_metrics(emulated, trained):
    frame = azure.list_checkpoints(emulated.client, trained.id)
    assert list(frame["step"]) == [10, 20, 30]
    assert list(frame.columns[:3]) == ["id", "step", "model"]
    assert {"train_loss", "valid_loss", "full_valid_loss"} <= set(frame.columns)
    assert frame["model"].iloc[-1] == trained.fine_tuned_model  # the last is the model itself
    assert frame["model"].iloc[0] == f"{trained.fine_tuned_model}:ckpt-step-10"
    assert frame["id"].str.startswith("ftchkpt-").all()
    assert (frame["full_valid_loss"] > 0).all()


def test_compare_answers_asks_each_deployment_each_question(emulated, trained):
    azure.deploy(emulated, trained.fine_tuned_model, "tuned", poll_interval=0.05)
    questions = ["What is the biggest ocean?", "Who wrote Hamlet?"]
    system = "Clippy is a factual chatbot that is also sarcastic."
    frame = azure.compare_answers(emulated.client, questions, {"base": "gpt-4o", "tuned": "tuned"},
                                  system=system, temperature=0, max_tokens=12, seed=1)
    assert list(frame.columns) == ["question", "base", "tuned"]
    assert list(frame["question"]) == questions
    for label, deployment in (("base", "gpt-4o"), ("tuned", "tuned")):
        direct = azure.chat(emulated.client, deployment,
                            [{"role": "system", "content": system},
                             {"role": "user", "content": questions[1]}],
                            temperature=0, max_tokens=12, seed=1)
        assert frame[label].iloc[1] == direct  # each cell is that deployment's answer
    assert (frame["base"] != frame["tuned"]).any()  # training changed the answers
    report = azure.clean_up(emulated, deployment="tuned")
    assert report == {"deleted": ["deployment tuned"], "already_gone": []}


def test_delete_job_and_clean_up_of_jobs(emulated, trained):
    assert azure.delete_job(emulated.client, trained.id) is True
    assert azure.delete_job(emulated.client, trained.id) is False
    assert json.dumps(azure.clean_up(emulated, job_ids=[trained.id])) == json.dumps(
        {"deleted": [], "already_gone": [f"job {trained.id}"]})
    old = emulated.emulator.azure_client(api_version="2023-05-15")
    assert azure.delete_job(old, "ftjob-" + "0" * 32) is False  # a missing job, not a route
