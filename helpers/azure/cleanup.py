"""Clean-up: what a finished lab leaves behind (a deployment billed per hour, uploaded files,
finished jobs) deleted, and what was already gone said so."""

from __future__ import annotations

from collections.abc import Iterable

from .backend import Backend
from .deployments import delete_deployment
from .jobs import delete_job


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
