"""Azure OpenAI fine-tuning from a notebook: the real service, or the course's local emulator.

The same notebook code talks to either one. :func:`make_client` reads the environment:

- ``AZURE_OPENAI_ENDPOINT`` and ``AZURE_OPENAI_API_KEY`` both set → the real
  :class:`openai.AzureOpenAI` (api version ``AZURE_OPENAI_API_VERSION``, default
  :data:`DEFAULT_API_VERSION`). Any server that speaks the Azure OpenAI API answers, the
  course's emulator started with ``python -m helpers emulator serve`` included;
- neither set → a local, in-process emulator (``helpers.emulator``): no network, no
  subscription, a small model really fine-tuned on this machine;
- only one of them set → :class:`AzureSetupError` (a half-configured environment is a mistake
  worth hearing about, not a reason to fall back silently).

The deployment step uses Azure's *management* API (a different host and a different
credential from the data-plane key). It reads ``AZURE_SUBSCRIPTION_ID``,
``AZURE_RESOURCE_GROUP``, ``AZURE_OPENAI_RESOURCE`` (default: the first label of the endpoint's
host name), ``TEMP_AUTH_TOKEN`` (``az account get-access-token``) and
``AZURE_MANAGEMENT_ENDPOINT`` (default ``https://management.azure.com``). The fine-tuned
deployment's name is ``AZURE_OPENAI_FT_DEPLOYMENT`` (default ``gpt-4o-ft``) and the base model's
deployment, used for comparisons, ``AZURE_OPENAI_BASE_DEPLOYMENT`` (default ``gpt-4o``);
``AZURE_OPENAI_POLL_INTERVAL`` sets the seconds between status polls (10 for Azure, 1 for a
server on this machine). The base model to fine-tune comes from one place,
:func:`choose_base_model`: ``AZURE_OPENAI_FT_MODEL``, else (on Azure) the first fine-tunable,
non-retired model the resource lists, else the emulator's versioned gpt-4o. Against
the in-process emulator the management calls go through the emulator's own test client and the
token is the emulator's key.

Every function returns a value for the notebook to show; none prints.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import io
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import urlparse

from helpers import plots

if TYPE_CHECKING:  # imported lazily at run time: the SDK, pandas and matplotlib are heavy
    import pandas as pd
    from matplotlib.figure import Figure
    from openai import AzureOpenAI
    from openai.types import FileObject
    from openai.types.fine_tuning import FineTuningJob

#: Data-plane API version: GA, with fine-tuning events, checkpoints and ``seed``.
DEFAULT_API_VERSION = "2024-10-21"
#: The management API version the upstream lab's deployment call uses.
MANAGEMENT_API_VERSION = "2023-05-01"
DEFAULT_MANAGEMENT_ENDPOINT = "https://management.azure.com"
DEFAULT_FT_DEPLOYMENT = "gpt-4o-ft"
DEFAULT_BASE_DEPLOYMENT = "gpt-4o"
#: What the emulator fine-tunes when nothing else is configured: Azure fine-tunes *versioned*
#: models only (the lab's bare "gpt-4o" is refused: "The specified base model does not support
#: fine-tuning").
EMULATOR_FT_MODEL = "gpt-4o-2024-08-06"
#: The in-process emulator's API key (also the "management token" against it).
EMULATOR_API_KEY = "local-emulator-key"
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
#: Job statuses: Azure's FineTuningState (pending → running → succeeded | failed | cancelled,
#: pausing → paused → resuming) and OpenAI's (validating_files → queued → running ...).
WAITING_STATUSES = ("pending", "validating_files", "queued", "running", "pausing", "resuming")

#: The upstream lab's four chat messages (from Azure's fine-tuning guide).
LAB_MESSAGES: tuple[dict[str, str], ...] = (
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Does Azure OpenAI support customer managed keys?"},
    {"role": "assistant", "content": "Yes, customer managed keys are supported by Azure OpenAI."},
    {"role": "user", "content": "Do other Azure AI services support this too?"},
)

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
_EMULATOR_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
_EMULATOR_RESOURCE_GROUP = "course-rg"
_EMULATOR_ACCOUNT = "course-emulator"


class AzureSetupError(RuntimeError):
    """The environment does not say enough to reach Azure; the message names what to set."""


class FineTuningJobError(RuntimeError):
    """A fine-tuning job ended ``failed`` or ``cancelled``; ``.job`` is its last state."""

    def __init__(self, job: FineTuningJob) -> None:
        self.job = job
        error = getattr(job, "error", None)
        if job.status == "cancelled":
            detail = "it was cancelled (someone called jobs.cancel, or the service stopped it)"
        elif job.status == "paused":
            detail = ("it is paused: client.fine_tuning.jobs.resume(job_id) continues it from "
                      "the step it reached")
        elif error is not None and (error.message or error.code):
            param = f" (parameter: {error.param})" if error.param else ""
            detail = f"{error.code or 'error'}{param}: {error.message}"
        else:
            detail = "the service gave no reason; look at the job's events"
        super().__init__(f"Fine-tuning job {job.id} {job.status}: {detail}")


class DeploymentError(RuntimeError):
    """The management API refused or failed a deployment call; the message holds its answer."""

    def __init__(self, message: str, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


# --------------------------------------------------------------------------- the backend


@dataclass(frozen=True)
class Management:
    """How to reach Azure's deployments management API (the lab's ``PUT``).

    ``http`` is an ``httpx.Client`` (a ``fastapi.testclient.TestClient`` for the in-process
    emulator), so the same code sends the request to Azure, to an emulator server or in-process.
    """

    endpoint: str
    subscription: str | None
    resource_group: str | None
    account: str | None
    token: str | None = field(repr=False)
    http: Any = field(repr=False, compare=False)
    api_version: str = MANAGEMENT_API_VERSION

    def deployment_url(self, name: str) -> str:
        missing = [
            var
            for var, value in (
                ("AZURE_SUBSCRIPTION_ID", self.subscription),
                ("AZURE_RESOURCE_GROUP", self.resource_group),
                ("AZURE_OPENAI_RESOURCE", self.account),
            )
            if not value
        ]
        if missing:
            raise AzureSetupError(
                "The deployment call needs " + ", ".join(missing) + " in the environment: the "
                "subscription id, resource group and Azure OpenAI resource name shown on the "
                "resource's Overview page in the Azure portal."
            )
        return (
            f"{self.endpoint.rstrip('/')}/subscriptions/{self.subscription}"
            f"/resourceGroups/{self.resource_group}/providers/Microsoft.CognitiveServices"
            f"/accounts/{self.account}/deployments/{name}"
        )

    def headers(self) -> dict[str, str]:
        if not self.token:
            raise AzureSetupError(
                "The deployment call needs TEMP_AUTH_TOKEN: an Azure Resource Manager access "
                "token. Get one with `az account get-access-token --query accessToken -o tsv` "
                "and set it in the environment before starting Jupyter (never in the notebook)."
            )
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}


@dataclass
class Backend:
    """What :func:`make_client` returns: the client and where it leads.

    ``kind`` is ``"azure"`` (an Azure OpenAI endpoint from the environment) or ``"emulator"``
    (the in-process emulator, ``emulator`` is the running instance). ``poll_interval`` is a
    sensible pause between status polls for that backend. Close it (or use ``with``) to stop an
    in-process emulator's worker.
    """

    client: AzureOpenAI
    kind: Literal["azure", "emulator"]
    description: str
    management: Management
    ft_deployment: str = DEFAULT_FT_DEPLOYMENT
    base_deployment: str = DEFAULT_BASE_DEPLOYMENT
    poll_interval: float = 10.0
    emulator: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Close the client's connections and stop an in-process emulator."""
        if self.emulator is not None:
            self.emulator.close()
            self.emulator = None
        else:
            self.client.close()
            self.management.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _is_loopback(url: str) -> bool:
    return (urlparse(url).hostname or "") in _LOOPBACK_HOSTS


def _default_account(endpoint: str) -> str | None:
    """``https://my-res.openai.azure.com`` → ``my-res`` (Azure's endpoint is named after it)."""
    host = urlparse(endpoint).hostname or ""
    if host.endswith((".openai.azure.com", ".cognitiveservices.azure.com")):
        return host.split(".", 1)[0]
    return None


def make_client(
    env: Mapping[str, str] | None = None,
    *,
    state_dir: str | Path | None = None,
    emulator_api_key: str = EMULATOR_API_KEY,
) -> Backend:
    """The Azure OpenAI client this notebook should use, and a description of it.

    ``env`` defaults to ``os.environ``. ``state_dir`` is where an in-process emulator keeps its
    files and models (a temporary folder when omitted).
    """
    env = os.environ if env is None else env
    endpoint = _env(env, "AZURE_OPENAI_ENDPOINT")
    api_key = _env(env, "AZURE_OPENAI_API_KEY")
    ft_deployment = _env(env, "AZURE_OPENAI_FT_DEPLOYMENT") or DEFAULT_FT_DEPLOYMENT
    base_deployment = _env(env, "AZURE_OPENAI_BASE_DEPLOYMENT") or DEFAULT_BASE_DEPLOYMENT
    if bool(endpoint) != bool(api_key):
        have, lack = (
            ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY")
            if endpoint
            else ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT")
        )
        raise AzureSetupError(
            f"{have} is set but {lack} is not. Set both (from the resource's 'Keys and "
            "Endpoint' page in the Azure portal) to use Azure, or neither to use the local "
            "emulator."
        )

    if endpoint and api_key:
        import httpx
        from openai import AzureOpenAI

        api_version = _env(env, "AZURE_OPENAI_API_VERSION") or DEFAULT_API_VERSION
        client = AzureOpenAI(azure_endpoint=endpoint, api_key=api_key, api_version=api_version)
        management = Management(
            endpoint=_env(env, "AZURE_MANAGEMENT_ENDPOINT") or DEFAULT_MANAGEMENT_ENDPOINT,
            subscription=_env(env, "AZURE_SUBSCRIPTION_ID"),
            resource_group=_env(env, "AZURE_RESOURCE_GROUP"),
            account=_env(env, "AZURE_OPENAI_RESOURCE") or _default_account(endpoint),
            token=_env(env, "TEMP_AUTH_TOKEN"),
            http=httpx.Client(timeout=60.0),
        )
        poll = _env(env, "AZURE_OPENAI_POLL_INTERVAL")
        return Backend(
            client=client,
            kind="azure",
            description=f"Azure OpenAI at {endpoint} (api-version {api_version})",
            management=management,
            ft_deployment=ft_deployment,
            base_deployment=base_deployment,
            poll_interval=float(poll) if poll else (1.0 if _is_loopback(endpoint) else 10.0),
        )

    from helpers import platform
    from helpers.emulator.client import InProcessEmulator

    emulator = InProcessEmulator(state_dir=state_dir, api_key=emulator_api_key)
    management = Management(
        endpoint=str(emulator.http.base_url).rstrip("/"),
        subscription=_EMULATOR_SUBSCRIPTION,
        resource_group=_EMULATOR_RESOURCE_GROUP,
        account=_EMULATOR_ACCOUNT,
        token=emulator_api_key,
        http=emulator.http,
    )
    return Backend(
        client=emulator.azure_client(),
        kind="emulator",
        description=(
            f"the local Azure OpenAI emulator, in this process ({platform.mode()} mode); set "
            "AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY to use Azure instead"
        ),
        management=management,
        ft_deployment=ft_deployment,
        base_deployment=base_deployment,
        # fast mode trains for seconds; a real model for minutes, where polls only cost CPU
        poll_interval=0.5 if platform.is_fast() else 2.0,
        emulator=emulator,
    )


# --------------------------------------------------------------------------- the base model


@dataclass(frozen=True)
class BaseModelChoice:
    """The base model assignment 02 fine-tunes and why.

    ``source`` is ``"AZURE_OPENAI_FT_MODEL"``, ``"models list"`` (the resource's first
    fine-tunable, non-retired model) or ``"emulator default"``; ``retires`` is the last day
    Azure fine-tunes it, when known; ``description`` is one sentence for the notebook to print.
    """

    model: str
    source: Literal["AZURE_OPENAI_FT_MODEL", "models list", "emulator default"]
    retires: datetime.date | None
    description: str


def _retirement(model: Any) -> datetime.date | None:
    deprecation = getattr(model, "deprecation", None)
    if isinstance(deprecation, dict):
        stamp = deprecation.get("fine_tune")
    else:
        stamp = getattr(deprecation, "fine_tune", None)
    if not isinstance(stamp, int | float):
        return None
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).date()


def _can_fine_tune(model: Any) -> bool:
    capabilities = getattr(model, "capabilities", None)
    if isinstance(capabilities, dict):
        return bool(capabilities.get("fine_tune"))
    return bool(getattr(capabilities, "fine_tune", False))


def _until(day: datetime.date | None) -> str:
    return f"Azure fine-tunes it until {day.isoformat()}" if day else \
        "the resource lists no retirement date for its fine-tuning"


def choose_base_model(
    backend: Backend,
    env: Mapping[str, str] | None = None,
    *,
    today: datetime.date | None = None,
) -> BaseModelChoice:
    """The one place assignment 02 takes its base model from.

    1. ``AZURE_OPENAI_FT_MODEL`` when set (used as given; Azure will say if it is refused);
    2. on Azure, the first model of ``client.models.list()`` whose ``capabilities.fine_tune`` is
       true and whose ``deprecation.fine_tune`` date (the model clock) is still ahead;
    3. the emulator's versioned gpt-4o (``gpt-4o-2024-08-06``): in-process, or for a server on
       this machine (``python -m helpers emulator serve``, a loopback endpoint) that lists it.

    Raises :class:`AzureSetupError` when an Azure resource lists no model it can fine-tune
    today."""
    env = os.environ if env is None else env
    today = today or datetime.datetime.now(datetime.UTC).date()
    configured = _env(env, "AZURE_OPENAI_FT_MODEL")
    if configured:
        retires = None
        if backend.kind == "azure" or backend.emulator is not None:
            try:
                retires = _retirement(backend.client.models.retrieve(configured))
            except Exception:  # noqa: BLE001 - the date is a nicety; the name stays the choice
                retires = None
        return BaseModelChoice(configured, "AZURE_OPENAI_FT_MODEL", retires,
                               f"Fine-tuning {configured} (set by AZURE_OPENAI_FT_MODEL); "
                               f"{_until(retires)}.")
    if backend.kind == "azure":
        listed = list(backend.client.models.list())
        local = _is_loopback(str(backend.client.base_url))
        if local and any(m.id == EMULATOR_FT_MODEL and _can_fine_tune(m) for m in listed):
            listed = []  # the course's emulator server: the same model as in-process
        for model in listed:
            retires = _retirement(model)
            if _can_fine_tune(model) and (retires is None or retires >= today):
                return BaseModelChoice(model.id, "models list", retires,
                                       f"Fine-tuning {model.id}, the first model this resource "
                                       f"can fine-tune today; {_until(retires)}.")
        if not local:
            raise AzureSetupError(
                f"No model on this Azure OpenAI resource can be fine-tuned on {today}: every "
                "model with capabilities.fine_tune has a deprecation.fine_tune date in the past. "
                "Pick a model and region from Microsoft Learn's fine-tuning model table and set "
                "AZURE_OPENAI_FT_MODEL to its versioned name (for example gpt-4.1-2025-04-14).")
    retires = datetime.date(2026, 3, 31)  # Azure's retirement table for gpt-4o-2024-08-06
    when = ("Azure retired its fine-tuning on" if retires < today else
            "Azure fine-tunes it until")
    return BaseModelChoice(EMULATOR_FT_MODEL, "emulator default", retires,
                           f"Fine-tuning {EMULATOR_FT_MODEL} on the local emulator, which still "
                           f"trains it as Azure did when the lab was written; {when} "
                           f"{retires.isoformat()}.")


# --------------------------------------------------------------------------- files and jobs


def upload_file(client: AzureOpenAI, path: str | Path, purpose: str = "fine-tune") -> FileObject:
    """Upload one JSONL file (opened in binary and closed again) and return the file object."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file to upload (check the path and the cwd)")
    with path.open("rb") as handle:
        return client.files.create(file=handle, purpose=purpose)


def wait_for_files(
    client: AzureOpenAI,
    file_ids: Iterable[str],
    *,
    poll_interval: float = 2.0,
    timeout: float = 600.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[FileObject]:
    """Wait until Azure has imported every file (``status`` ``processed``) and return them.

    Azure checks an uploaded file before a job may use it; an ``error`` status raises with the
    service's ``status_details``.
    """
    pending = list(file_ids)
    done: dict[str, FileObject] = {}
    deadline = time.monotonic() + timeout
    while pending:
        for file_id in list(pending):
            info = client.files.retrieve(file_id)
            status = getattr(info, "status", None) or "processed"
            if status == "processed":
                done[file_id] = info
                pending.remove(file_id)
            elif status in {"error", "deleted", "deleting"}:
                details = getattr(info, "status_details", None) or "no details given"
                raise RuntimeError(f"File {file_id} ({info.filename}) is {status}: {details}")
        if pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Files still being processed after {timeout:.0f} s: {pending}")
            sleep(poll_interval)
    return [done[file_id] for file_id in done]


def create_job(
    client: AzureOpenAI,
    training_file: str,
    validation_file: str | None = None,
    *,
    model: str = EMULATOR_FT_MODEL,
    seed: int | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    suffix: str | None = None,
    training_type: str | None = None,
    method: Mapping[str, Any] | None = None,
) -> FineTuningJob:
    """Create a fine-tuning job (the SDK call, with optional arguments left out rather than
    sent as ``null``). ``model`` must be a *versioned* base model (:func:`choose_base_model`)
    or a fine-tuned model (continuous fine-tuning). ``training_type`` (``"Standard"``,
    ``"GlobalStandard"``, ``"developer"``) is sent as Azure's ``trainingType`` only when given:
    the GA api-version this course uses (2024-10-21) does not need it. ``method`` is e.g.
    ``{"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}`` (api-version
    2025-02-01-preview or later)."""
    kwargs: dict[str, Any] = {"model": model, "training_file": training_file}
    if validation_file:
        kwargs["validation_file"] = validation_file
    if seed is not None:
        kwargs["seed"] = seed
    if hyperparameters:
        kwargs["hyperparameters"] = dict(hyperparameters)
    if suffix:
        kwargs["suffix"] = suffix
    if method:
        kwargs["method"] = dict(method)
    if training_type:
        kwargs["extra_body"] = {"trainingType": training_type}
    return client.fine_tuning.jobs.create(**kwargs)


def _latest_metrics(client: AzureOpenAI, job_id: str) -> dict[str, Any] | None:
    from openai import APIError

    try:
        page = client.fine_tuning.jobs.list_events(fine_tuning_job_id=job_id, limit=10)
    except APIError:  # progress is a nicety: never let it break the wait
        return None
    for event in page.data:
        data = getattr(event, "data", None)
        if isinstance(data, dict) and "step" in data:
            return data
    return None


def wait_for_job(
    client: AzureOpenAI,
    job_id: str,
    *,
    poll_interval: float = 2.0,
    timeout: float | None = None,
    progress: bool = True,
    raise_on_failure: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> FineTuningJob:
    """Poll a job until ``succeeded``, ``failed`` or ``cancelled`` and return its final state.

    A progress bar shows the stage (validating files → queued → running → done), the elapsed
    time and the latest training step and loss. A ``failed`` or ``cancelled`` job raises
    :class:`FineTuningJobError` with the job's error (``raise_on_failure=False`` returns it
    instead); ``timeout`` seconds without a final status raise :class:`TimeoutError` (the job
    goes on: call again to keep waiting).
    """
    from tqdm.auto import tqdm

    stages = {"validating_files": 1, "pending": 1, "queued": 2, "running": 3, "pausing": 3,
              "resuming": 3}
    start = time.monotonic()
    bar = tqdm(
        total=4,
        desc=f"{job_id[:18]}",
        disable=not progress,
        bar_format="{desc}: {n_fmt}/{total_fmt} stages |{bar}| {elapsed} {postfix}",
    )
    try:
        while True:
            job = client.fine_tuning.jobs.retrieve(job_id)
            stage = 4 if job.status in TERMINAL_STATUSES else stages.get(job.status, bar.n)
            if stage > bar.n:
                bar.update(stage - bar.n)
            postfix = {"status": job.status}
            if progress and job.status == "running":
                metrics = _latest_metrics(client, job_id)
                if metrics:
                    total = metrics.get("total_steps")  # the emulator says; Azure does not
                    postfix["step"] = f"{metrics['step']}/{total}" if total else metrics["step"]
                    if metrics.get("train_loss") is not None:
                        postfix["train_loss"] = f"{float(metrics['train_loss']):.3f}"
            bar.set_postfix(postfix, refresh=True)
            if job.status in TERMINAL_STATUSES:
                break
            if job.status == "paused":
                raise FineTuningJobError(job)
            if timeout is not None and time.monotonic() - start > timeout:
                raise TimeoutError(
                    f"Job {job_id} is still {job.status} after {timeout:.0f} s. It keeps running "
                    "on the service: call wait_for_job again to keep waiting, or "
                    "client.fine_tuning.jobs.cancel(job_id) to stop it."
                )
            sleep(poll_interval)
    finally:
        bar.close()
    if raise_on_failure and job.status != "succeeded":
        raise FineTuningJobError(job)
    return job


def _to_frame(rows: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows, columns=list(columns))


def job_events(client: AzureOpenAI, job_id: str, limit: int = 50) -> pd.DataFrame:
    """The job's most recent ``limit`` events, oldest first: time, level, message, and the
    metrics ``data`` (step, losses) for metrics events."""
    import pandas as pd

    page = client.fine_tuning.jobs.list_events(fine_tuning_job_id=job_id, limit=limit)
    rows = [
        {
            "created_at": pd.Timestamp(event.created_at, unit="s", tz="UTC"),
            "level": event.level,
            "type": getattr(event, "type", None),
            "message": event.message,
            "data": getattr(event, "data", None),
        }
        for event in reversed(page.data)  # the API lists newest first
    ]
    frame = _to_frame(rows, ["created_at", "level", "type", "message", "data"])
    return frame.sort_values("created_at", kind="stable").reset_index(drop=True)


def list_checkpoints(client: AzureOpenAI, job_id: str) -> pd.DataFrame:
    """The job's checkpoints (one per saved epoch): model name, step and metrics."""
    page = client.fine_tuning.jobs.checkpoints.list(job_id)
    rows = []
    for checkpoint in page.data:
        metrics = checkpoint.metrics.model_dump(exclude_none=True) if checkpoint.metrics else {}
        rows.append(
            {
                "id": checkpoint.id,
                "step": checkpoint.step_number,
                "model": checkpoint.fine_tuned_model_checkpoint,
                **metrics,
            }
        )
    metric_columns = sorted({key for row in rows for key in row} - {"id", "step", "model"})
    frame = _to_frame(rows, ["id", "step", "model", *metric_columns])
    return frame.sort_values("step").reset_index(drop=True)


def _decode_results(raw: bytes) -> str:
    """``results.csv`` as text. Azure has served it base64-encoded: decode when it is."""
    text = raw.decode("utf-8-sig")
    if text.lstrip().startswith("step"):
        return text
    try:
        decoded = base64.b64decode(text.strip(), validate=True).decode("utf-8-sig")
    except (binascii.Error, UnicodeDecodeError):
        return text
    return decoded if decoded.lstrip().startswith("step") else text


def read_results(client: AzureOpenAI, job: FineTuningJob | str) -> pd.DataFrame:
    """Download the job's ``results.csv`` (one row per training step) as a DataFrame.

    Columns: ``step, train_loss, train_mean_token_accuracy, valid_loss,
    valid_mean_token_accuracy, full_valid_loss, full_valid_mean_token_accuracy``; validation
    columns are empty (NaN) on steps where they were not computed.
    """
    import pandas as pd

    if isinstance(job, str):
        job = client.fine_tuning.jobs.retrieve(job)
    if job.status != "succeeded" or not job.result_files:
        raise RuntimeError(
            f"Job {job.id} is {job.status} and has no results file yet: wait for it to succeed "
            "(wait_for_job) before reading its results."
        )
    raw = client.files.content(job.result_files[0]).read()
    frame = pd.read_csv(io.StringIO(_decode_results(raw)))
    return frame.apply(pd.to_numeric, errors="coerce")


def plot_loss(results: pd.DataFrame, title: str = "Fine-tuning loss") -> Figure:
    """Training and validation loss per step (and the full-validation loss where present)."""
    figure = plots.new_figure(figsize=(7, 4))
    axes = figure.add_subplot()
    series = [
        ("train_loss", "training (batch)", {"alpha": 0.8}),
        ("valid_loss", "validation (batch)", {"marker": "o", "markersize": 3}),
        ("full_valid_loss", "validation (full set)", {"marker": "s", "markersize": 5}),
    ]
    for column, label, style in series:
        if column in results and results[column].notna().any():
            points = results[["step", column]].dropna()
            axes.plot(points["step"], points[column], label=label, **style)
    axes.set_xlabel("step")
    axes.set_ylabel("loss (cross-entropy on assistant tokens)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- deployments


@dataclass(frozen=True)
class DeploymentRequest:
    """The lab's management call, ready to send. Its ``repr`` hides the token."""

    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    body: dict[str, Any] | None

    def redacted_headers(self) -> dict[str, str]:
        return {k: ("Bearer ***" if k == "Authorization" else v) for k, v in self.headers.items()}


def deployment_request(
    backend: Backend,
    model: str,
    name: str | None = None,
    *,
    sku: str = "standard",
    capacity: int = 1,
) -> DeploymentRequest:
    """The ``PUT`` that deploys ``model`` (a fine-tuned model's name) as deployment ``name``."""
    management = backend.management
    name = name or backend.ft_deployment
    return DeploymentRequest(
        method="PUT",
        url=management.deployment_url(name),
        params={"api-version": management.api_version},
        headers=management.headers(),
        body={
            "sku": {"name": sku, "capacity": capacity},
            "properties": {"model": {"format": "OpenAI", "name": model, "version": "1"}},
        },
    )


def _management_error(response: Any, action: str) -> DeploymentError:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    error = body.get("error", {}) if isinstance(body, dict) else {}
    message = error.get("message") if isinstance(error, dict) else None
    hint = ""
    if response.status_code == 401:
        hint = (
            " TEMP_AUTH_TOKEN is missing, wrong or expired (tokens last about an hour): "
            "get a fresh one with `az account get-access-token`."
        )
    elif response.status_code == 404:
        hint = " Check AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZURE_OPENAI_RESOURCE."
    return DeploymentError(
        f"{action} failed with HTTP {response.status_code}: {message or body}.{hint}",
        status_code=response.status_code,
        body=body,
    )


def send(backend: Backend, request: DeploymentRequest) -> Any:
    """Send a prepared management request; return the response (an ``httpx.Response``)."""
    return backend.management.http.request(
        request.method,
        request.url,
        params=request.params,
        headers=request.headers,
        json=request.body,
    )


def get_deployment(backend: Backend, name: str | None = None) -> dict[str, Any] | None:
    """The deployment's management record, or ``None`` when it does not exist."""
    management = backend.management
    response = management.http.get(
        management.deployment_url(name or backend.ft_deployment),
        params={"api-version": management.api_version},
        headers=management.headers(),
    )
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        raise _management_error(response, "Reading the deployment")
    return response.json()


def deploy(
    backend: Backend,
    model: str,
    name: str | None = None,
    *,
    wait: bool = True,
    timeout: float = 1800.0,
    poll_interval: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Deploy a fine-tuned model, a checkpoint's model or a checkpoint's ``ftchkpt-`` id (the
    lab's ``PUT``) and, with ``wait``, poll until its ``provisioningState`` goes from
    ``Accepted`` through ``Creating`` to ``Succeeded``. Returns the deployment record. Azure
    takes minutes to provision a fine-tuned deployment (the emulator a fraction of a second),
    and answers chat calls to it with 404 ``DeploymentNotFound`` until then."""
    name = name or backend.ft_deployment
    response = send(backend, deployment_request(backend, model, name))
    if response.status_code >= 400:
        raise _management_error(response, f"Deploying {model} as {name!r}")
    record = response.json()
    deadline = time.monotonic() + timeout
    interval = backend.poll_interval if poll_interval is None else poll_interval
    while wait:
        state = (record.get("properties") or {}).get("provisioningState", "Succeeded")
        if state == "Succeeded":
            break
        if state in {"Failed", "Canceled"}:
            raise DeploymentError(f"Deployment {name!r} ended {state}: {record}", body=record)
        if time.monotonic() > deadline:
            raise TimeoutError(f"Deployment {name!r} still {state} after {timeout:.0f} s")
        sleep(interval)
        record = get_deployment(backend, name) or record
    return record


def delete_deployment(backend: Backend, name: str | None = None) -> bool:
    """Delete a deployment (a deployed fine-tuned model is billed per hour while it exists).
    Returns ``False`` when there was nothing to delete."""
    management = backend.management
    response = management.http.delete(
        management.deployment_url(name or backend.ft_deployment),
        params={"api-version": management.api_version},
        headers=management.headers(),
    )
    if response.status_code >= 400 and response.status_code != 404:
        raise _management_error(response, "Deleting the deployment")
    # Azure Resource Manager answers 200/202 when it deletes, 204 when there was nothing.
    return response.status_code in {200, 202}


# --------------------------------------------------------------------------- chat and clean-up


def chat(
    client: AzureOpenAI,
    deployment: str,
    messages: Sequence[Mapping[str, str]],
    **kwargs: Any,
) -> str:
    """Send ``messages`` to a deployment and return the reply's text (``kwargs`` go to
    ``chat.completions.create``: ``max_tokens``, ``temperature``, ``seed`` ...)."""
    response = client.chat.completions.create(
        model=deployment, messages=[dict(m) for m in messages], **kwargs
    )
    return response.choices[0].message.content or ""


def compare_answers(
    client: AzureOpenAI,
    questions: Sequence[str],
    deployments: Mapping[str, str],
    *,
    system: str | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Ask each deployment each question; one row per question, one column per deployment
    (``deployments`` maps a column label to a deployment name)."""
    rows = []
    for question in questions:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": question}
        ]
        row = {"question": question}
        for label, deployment in deployments.items():
            row[label] = chat(client, deployment, messages, **kwargs)
        rows.append(row)
    return _to_frame(rows, ["question", *deployments])


def delete_job(client: AzureOpenAI, job_id: str) -> bool:
    """Delete a finished fine-tuning job (``DELETE /fine_tuning/jobs/{id}``, 204, in every
    current api-version; the SDK has no method for it). A job that is still active must be
    cancelled first. Returns ``False`` when it was already gone."""
    import httpx
    from openai import NotFoundError

    try:
        client.delete(f"/fine_tuning/jobs/{job_id}", cast_to=httpx.Response)
    except NotFoundError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        if body.get("message") == "Resource not found":  # the route itself is missing
            raise RuntimeError(
                "This api-version cannot delete fine-tuning jobs; use 2024-10-21 or later "
                f"(the client uses {getattr(client, '_api_version', 'an older one')}).") from None
        return False
    return True


def clean_up(
    backend: Backend,
    *,
    deployment: str | None = None,
    file_ids: Iterable[str] = (),
    job_ids: Iterable[str] = (),
) -> dict[str, list[str]]:
    """Delete the fine-tuned deployment, the uploaded files and (``job_ids``) the finished
    jobs. Returns what was deleted and what was already gone, so running it twice
    is harmless."""
    from openai import NotFoundError

    report: dict[str, list[str]] = {"deleted": [], "already_gone": []}
    if deployment:
        key = "deleted" if delete_deployment(backend, deployment) else "already_gone"
        report[key].append(f"deployment {deployment}")
    for job_id in job_ids:
        key = "deleted" if delete_job(backend.client, job_id) else "already_gone"
        report[key].append(f"job {job_id}")
    for file_id in file_ids:
        try:
            backend.client.files.delete(file_id)
            report["deleted"].append(f"file {file_id}")
        except NotFoundError:
            report["already_gone"].append(f"file {file_id}")
    return report
