"""helpers.azure: the client factory, the management request, results, plots and the waiting
loop — the pieces; the journeys (the notebook against the emulator) are in test_gpt4o_notebook.py
and the SDK round trips against the emulator below."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from helpers import azure

AZURE_ENV = {
    "AZURE_OPENAI_ENDPOINT": "https://my-course-res.openai.azure.com/",
    "AZURE_OPENAI_API_KEY": "0123456789abcdef",
    "TEMP_AUTH_TOKEN": "arm-token",
    "AZURE_SUBSCRIPTION_ID": "sub-1",
    "AZURE_RESOURCE_GROUP": "rg-1",
}


# --------------------------------------------------------------------------- make_client


@pytest.mark.parametrize("only", ["AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY"])
def test_half_configured_environment_is_an_error(only):
    with pytest.raises(azure.AzureSetupError, match="Set both") as failure:
        azure.make_client({only: AZURE_ENV[only]})
    assert only in str(failure.value)


def test_azure_backend_from_the_environment():
    backend = azure.make_client(AZURE_ENV)
    try:
        assert backend.kind == "azure"
        assert "https://my-course-res.openai.azure.com" in backend.description
        assert backend.client.api_key == "0123456789abcdef"
        assert str(backend.client.base_url).startswith("https://my-course-res.openai.azure.com/")
        assert azure.DEFAULT_API_VERSION in backend.description
        assert backend.poll_interval == 10.0
        # the resource name defaults to the endpoint's first label, as Azure names it
        assert backend.management.account == "my-course-res"
        assert backend.management.endpoint == azure.DEFAULT_MANAGEMENT_ENDPOINT
        assert backend.ft_deployment == "gpt-4o-ft" and backend.base_deployment == "gpt-4o"
        assert "arm-token" not in repr(backend)  # secrets stay out of reprs
    finally:
        backend.close()


def test_environment_overrides():
    env = AZURE_ENV | {
        "AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:8765",
        "AZURE_OPENAI_API_VERSION": "2025-04-01-preview",
        "AZURE_MANAGEMENT_ENDPOINT": "http://127.0.0.1:8765/",
        "AZURE_OPENAI_RESOURCE": "acct",
        "AZURE_OPENAI_FT_DEPLOYMENT": "professor-ft",
        "AZURE_OPENAI_BASE_DEPLOYMENT": "gpt-4o-mini",
    }
    with azure.make_client(env) as backend:
        assert "2025-04-01-preview" in backend.description
        assert backend.poll_interval == 1.0  # a local server: no need to wait 10 s per poll
        assert backend.ft_deployment == "professor-ft"
        assert backend.base_deployment == "gpt-4o-mini"
        assert backend.management.deployment_url("x") == (
            "http://127.0.0.1:8765/subscriptions/sub-1/resourceGroups/rg-1/providers/"
            "Microsoft.CognitiveServices/accounts/acct/deployments/x"
        )


def test_deployment_request_is_the_labs_put():
    with azure.make_client(AZURE_ENV) as backend:
        request = azure.deployment_request(backend, "gpt-4o-2024-08-06.ft-abc")
    assert request.method == "PUT"
    assert request.url == (
        "https://management.azure.com/subscriptions/sub-1/resourceGroups/rg-1/providers/"
        "Microsoft.CognitiveServices/accounts/my-course-res/deployments/gpt-4o-ft"
    )
    assert request.params == {"api-version": "2023-05-01"}
    assert request.headers["Authorization"] == "Bearer arm-token"
    assert request.redacted_headers()["Authorization"] == "Bearer ***"
    assert "arm-token" not in repr(request)
    assert request.body == {
        "sku": {"name": "standard", "capacity": 1},
        "properties": {
            "model": {"format": "OpenAI", "name": "gpt-4o-2024-08-06.ft-abc", "version": "1"}
        },
    }


def test_deployment_needs_its_settings():
    env = {
        k: v for k, v in AZURE_ENV.items() if k not in {"TEMP_AUTH_TOKEN", "AZURE_RESOURCE_GROUP"}
    }
    env["AZURE_OPENAI_ENDPOINT"] = "https://custom.example.com"
    with (
        azure.make_client(env) as backend,
        pytest.raises(azure.AzureSetupError, match="AZURE_RESOURCE_GROUP, AZURE_OPENAI_RESOURCE"),
    ):
        azure.deployment_request(backend, "m")
    env |= {"AZURE_RESOURCE_GROUP": "rg", "AZURE_OPENAI_RESOURCE": "acct"}
    with (
        azure.make_client(env) as backend,
        pytest.raises(azure.AzureSetupError, match="az account get-access-token"),
    ):
        azure.deployment_request(backend, "m")


# --------------------------------------------------------------------------- results and plots

RESULTS = (
    "step,train_loss,train_mean_token_accuracy,valid_loss,valid_mean_token_accuracy,"
    "full_valid_loss,full_valid_mean_token_accuracy\n"
    "1,2.5,0.40,2.6,0.38,,\n"
    "2,2.0,0.50,,,,\n"
    "3,1.5,0.60,1.9,0.52,1.8,0.55\n"
)


class _Content:
    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    def read(self) -> bytes:
        return self._raw


def _fake_client(raw: bytes, status: str = "succeeded"):
    job = SimpleNamespace(id="ftjob-1", status=status, result_files=["file-r"])
    return SimpleNamespace(
        files=SimpleNamespace(content=lambda file_id: _Content(raw)),
        fine_tuning=SimpleNamespace(jobs=SimpleNamespace(retrieve=lambda job_id: job)),
    ), job


@pytest.mark.parametrize("encode", [False, True], ids=["plain", "base64"])
def test_read_results_plain_or_base64(encode):
    raw = RESULTS.encode()
    client, job = _fake_client(base64.b64encode(raw) if encode else raw)
    frame = azure.read_results(client, job)
    assert list(frame["step"]) == [1, 2, 3]
    assert frame["train_loss"].tolist() == [2.5, 2.0, 1.5]
    assert frame["valid_loss"].isna().tolist() == [False, True, False]
    assert frame.loc[2, "full_valid_loss"] == 1.8


def test_read_results_before_the_job_is_done():
    client, job = _fake_client(b"", status="running")
    with pytest.raises(RuntimeError, match="wait for it to succeed"):
        azure.read_results(client, job)


def test_plot_loss_draws_each_available_curve():
    import io

    import pandas as pd
    from matplotlib.figure import Figure

    figure = azure.plot_loss(pd.read_csv(io.StringIO(RESULTS)))
    assert isinstance(figure, Figure)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert labels == ["training (batch)", "validation (batch)", "validation (full set)"]
    valid = figure.axes[0].get_lines()[1]
    assert list(valid.get_xdata()) == [1, 3]  # steps without a validation loss are skipped


# --------------------------------------------------------------------------- waiting


class _Jobs:
    """A job that walks through the given statuses, one per retrieve."""

    def __init__(self, statuses, error=None):
        self.statuses = list(statuses)
        self.error = error
        self.calls = 0

    def retrieve(self, job_id):
        status = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        return SimpleNamespace(id=job_id, status=status, error=self.error)

    def list_events(self, fine_tuning_job_id, limit):
        data = {"step": 3, "train_loss": 1.25}
        return SimpleNamespace(data=[SimpleNamespace(data=None), SimpleNamespace(data=data)])


def _client(jobs):
    return SimpleNamespace(fine_tuning=SimpleNamespace(jobs=jobs))


def test_wait_for_job_returns_the_final_job():
    jobs = _Jobs(["validating_files", "queued", "running", "running", "succeeded"])
    sleeps = []
    job = azure.wait_for_job(_client(jobs), "ftjob-1", poll_interval=7, sleep=sleeps.append)
    assert job.status == "succeeded"
    assert sleeps == [7, 7, 7, 7]


def test_wait_for_job_stops_on_failure_with_the_jobs_error():
    error = SimpleNamespace(
        code="invalid_training_file",
        message="Line 3: missing assistant message",
        param="training_file",
    )
    jobs = _Jobs(["validating_files", "failed"], error=error)
    with pytest.raises(azure.FineTuningJobError) as failure:
        azure.wait_for_job(_client(jobs), "ftjob-1", sleep=lambda s: None, progress=False)
    message = str(failure.value)
    assert "ftjob-1 failed" in message and "training_file" in message and "Line 3" in message
    assert failure.value.job.status == "failed"


def test_wait_for_job_stops_on_cancelled():
    # the lab's `while status not in ["succeeded", "failed"]` loops forever here
    jobs = _Jobs(["running", "cancelled"])
    with pytest.raises(azure.FineTuningJobError, match="cancelled"):
        azure.wait_for_job(_client(jobs), "ftjob-1", sleep=lambda s: None)
    jobs = _Jobs(["cancelled"])
    job = azure.wait_for_job(_client(jobs), "ftjob-1", raise_on_failure=False)
    assert job.status == "cancelled"


def test_wait_for_job_timeout_says_the_job_goes_on():
    jobs = _Jobs(["running"])
    with pytest.raises(TimeoutError, match="call wait_for_job again"):
        azure.wait_for_job(
            _client(jobs), "ftjob-1", timeout=0.0, sleep=lambda s: None, progress=False
        )


# --------------------------------------------------------------------------- against the emulator
# The real openai SDK through helpers.azure, against the in-process emulator.


def _write(path, n, bad_line=None):
    lines = []
    for i in range(n):
        messages = [
            {"role": "system", "content": "Terse."},
            {"role": "user", "content": f"Question {i}?"},
            {"role": "assistant", "content": f"Answer {i}."},
        ]
        if i + 1 == bad_line:
            messages = messages[:2]  # no assistant message
        lines.append(json.dumps({"messages": messages}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def emulated(tmp_path, monkeypatch):
    monkeypatch.setenv("EMULATOR_BACKEND", "tiny")
    with azure.make_client({}, state_dir=tmp_path / "state") as backend:
        yield backend


def test_without_azure_variables_the_emulator_answers(emulated):
    assert emulated.kind == "emulator"
    assert "local Azure OpenAI emulator" in emulated.description
    assert emulated.client.models.list().data  # a real round trip through the SDK


def test_a_bad_training_file_stops_the_wait_with_its_lines(emulated, tmp_path):
    client = emulated.client
    train = azure.upload_file(client, _write(tmp_path / "train.jsonl", 12, bad_line=5))
    valid = azure.upload_file(client, _write(tmp_path / "valid.jsonl", 10))
    assert [f.status for f in azure.wait_for_files(client, [train.id, valid.id])] == [
        "processed",
        "processed",
    ]
    job = azure.create_job(client, train.id, valid.id, seed=105)
    with pytest.raises(azure.FineTuningJobError) as failure:
        azure.wait_for_job(client, job.id, poll_interval=0.1, progress=False, timeout=120)
    message = str(failure.value)
    assert f"Fine-tuning job {job.id} failed" in message
    assert "training_file" in message and "line 5" in message  # the parameter and the bad line
    assert failure.value.job.error.param == "training_file"


def test_a_cancelled_job_stops_the_wait(emulated, tmp_path):
    client = emulated.client
    train = azure.upload_file(client, _write(tmp_path / "train.jsonl", 12))
    azure.wait_for_files(client, [train.id], poll_interval=0.05)
    job = azure.create_job(client, train.id, hyperparameters={"n_epochs": 25})
    client.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(azure.FineTuningJobError, match="cancelled"):
        azure.wait_for_job(client, job.id, poll_interval=0.1, progress=False, timeout=120)


def test_deploy_get_delete_round_trip(emulated):
    # the base model's deployment is enough to exercise the management calls
    record = azure.deploy(emulated, "gpt-4o", "round-trip")
    assert record["properties"]["provisioningState"] == "Succeeded"
    assert azure.get_deployment(emulated, "round-trip")["name"] == "round-trip"
    assert azure.chat(emulated.client, "round-trip", azure.LAB_MESSAGES, max_tokens=5) != ""
    assert azure.delete_deployment(emulated, "round-trip") is True
    assert azure.get_deployment(emulated, "round-trip") is None
    assert azure.clean_up(emulated, deployment="round-trip", file_ids=["file-" + "0" * 32]) == {
        "deleted": [],
        "already_gone": ["deployment round-trip", "file file-" + "0" * 32],
    }


def test_management_errors_name_the_fix(tmp_path):
    with azure.make_client({}, state_dir=tmp_path / "state", emulator_api_key="right") as backend:
        wrong = azure.Backend(
            client=backend.client,
            kind="emulator",
            description="",
            management=azure.Management(
                endpoint=backend.management.endpoint,
                subscription="s",
                resource_group="r",
                account="a",
                token="wrong",
                http=backend.management.http,
            ),
        )
        with pytest.raises(azure.DeploymentError, match="TEMP_AUTH_TOKEN") as failure:
            azure.deploy(wrong, "gpt-4o", "x")
        assert failure.value.status_code == 401
