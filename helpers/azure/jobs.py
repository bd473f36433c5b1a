"""Files and fine-tuning jobs: upload the data, wait until Azure has imported it, create a job,
wait for it with progress, read its events, checkpoints and ``results.csv``, plot its loss, and
delete it when done."""

from __future__ import annotations

import base64
import binascii
import io
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers import plots

from .models import EMULATOR_FT_MODEL

if TYPE_CHECKING:  # imported lazily at run time: the SDK, pandas and matplotlib are heavy
    import pandas as pd
    from matplotlib.figure import Figure
    from openai import AzureOpenAI
    from openai.types import FileObject
    from openai.types.fine_tuning import FineTuningJob

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
#: Job statuses: Azure's FineTuningState (pending → running → succeeded | failed | cancelled,
#: pausing → paused → resuming) and OpenAI's (validating_files → queued → running ...).
WAITING_STATUSES = ("pending", "validating_files", "queued", "running", "pausing", "resuming")


class FineTuningJobError(RuntimeError):
    """A fine-tuning job ended ``failed`` or ``cancelled``, or was paused while waited for;
    ``.job`` is its last state."""

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

    Azure's jobs (and the emulator's) go ``pending`` → ``running`` → ``succeeded`` (or
    ``failed``, ``cancelled``); a pause goes ``pausing`` → ``paused`` → ``resuming`` and back to
    ``running``. A progress bar shows the stage (pending → running → done; OpenAI's
    ``validating_files`` and ``queued`` count as pending), the status, the elapsed time and the
    latest training step and loss. A ``failed`` or ``cancelled`` job raises
    :class:`FineTuningJobError` with the job's error (``raise_on_failure=False`` returns it
    instead); a ``paused`` job raises it at once, since it will not finish until resumed;
    ``timeout`` seconds without a final status raise :class:`TimeoutError` (the job goes on:
    call again to keep waiting).
    """
    from tqdm.auto import tqdm

    stages = {"pending": 1, "validating_files": 1, "queued": 1, "running": 2, "pausing": 2,
              "paused": 2, "resuming": 2}
    start = time.monotonic()
    bar = tqdm(
        total=3,
        desc=f"{job_id[:18]}",
        disable=not progress,
        bar_format="{desc}: {n_fmt}/{total_fmt} stages |{bar}| {elapsed} {postfix}",
    )
    try:
        while True:
            job = client.fine_tuning.jobs.retrieve(job_id)
            stage = 3 if job.status in TERMINAL_STATUSES else stages.get(job.status, bar.n)
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
