"""The training worker: one trainer thread that takes jobs first in, first out.

A job's public ``status`` follows Azure's ``FineTuningState`` (authoring spec 2025-04-01-preview):
``pending`` (its files are validated, then it waits its turn) → ``running`` → ``succeeded`` |
``failed`` | ``cancelled``; a running job can be ``pausing`` → ``paused`` → ``resuming`` →
``running``. The private ``_phase`` says which thread owns it: ``validating`` (the light
validator thread, so a bad file fails its job at once even while another job trains),
``queued`` (waiting for the trainer), ``running``, ``paused``, ``done``. Cancelling and pausing
are honoured between training steps; a paused job keeps its step and resumes from it.

On start the worker recovers from a crash: a job that was running when the process died is
re-queued (its partial metrics, checkpoints, start messages and outputs are removed and a
``warning`` event says so, so the events never show a run twice).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from . import catalog
from .store import Store, new_id, now

log = logging.getLogger("helpers.emulator")

RESULTS_COLUMNS = (
    "step", "train_loss", "train_mean_token_accuracy", "valid_loss",
    "valid_mean_token_accuracy", "full_valid_loss", "full_valid_mean_token_accuracy",
)
TERMINAL = ("succeeded", "failed", "cancelled")
#: Messages of a run that a restart throws away (with metrics and checkpoint events).
_RUN_MESSAGES = ("Job started.", "Training ", "Resuming training", "Job paused", "Job resumed",
                 "Checkpoint created")


def add_event(store: Store, job_id: str, message: str, *, level: str = "info",
              type: str = "message", data: dict | None = None) -> dict:
    """Record an event; ``level`` is Azure's ``LogLevel``: info, warning or error."""
    assert level in ("info", "warning", "error"), level
    event = {
        "id": new_id("ftevent"),
        "object": "fine_tuning.job.event",
        "created_at": now(),
        "level": level,
        "message": message,
        "data": data if data is not None else {},
        "type": type,
    }
    return store.insert("event", event, parent=job_id)


def results_csv(rows: list[dict[str, Any]]) -> bytes:
    """DESIGN.md's ``results.csv``: one row per step, empty cells where a value is absent."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(RESULTS_COLUMNS)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else (row[c] if c == "step" else f"{row[c]:.6f}")
                         for c in RESULTS_COLUMNS])
    return out.getvalue().encode()


def _metrics_message(row: dict[str, Any]) -> str:
    parts = [f"Step {row['step']}/{row.get('total_steps', '?')}:"]
    for key, label in (("train_loss", "training loss"), ("valid_loss", "validation loss"),
                       ("full_valid_loss", "full validation loss")):
        if row.get(key) is not None:
            parts.append(f"{label}={row[key]:.4f},")
    return " ".join(parts).rstrip(",")


class JobFailed(Exception):
    """A job cannot go on; ``error`` is the job's ``error`` object."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.error = {"code": code, "message": message, "param": param}


class Worker:
    """The validator and the single trainer thread of one emulator app."""

    def __init__(self, store: Store, step_delay: float | None = None) -> None:
        self.store = store
        self.step_delay = float(os.environ.get("EMULATOR_STEP_DELAY", "0") or 0) \
            if step_delay is None else step_delay
        self._wake = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self.current_job: str | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        self.recover()
        from . import training  # torch and transformers load here, not at import

        training.preload()
        self._threads = [
            threading.Thread(target=self._loop, args=("validating", self._validate),
                             name="emulator-validator", daemon=True),
            threading.Thread(target=self._loop, args=("queued", self._run),
                             name="emulator-trainer", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def migrate(self) -> None:
        """Bring jobs recorded by an older emulator (OpenAI's statuses, no ``_phase``) to
        Azure's statuses, so a learner's existing state dir keeps working."""
        phases = {"validating_files": "validating", "queued": "queued", "running": "running"}

        def change(job: dict) -> dict:
            if "_phase" in job:
                return job
            job["_phase"] = phases.get(job["status"], "done")
            if job["status"] in phases:
                job["status"] = "pending" if job["status"] != "running" else "running"
            model = job.get("model", "")
            job.setdefault("_root_model", catalog.UNVERSIONED.get(model, model))
            job.setdefault("_method", "supervised")
            job.setdefault("_resolved", job.get("hyperparameters"))
            return job

        for job in self.store.all("job"):
            if "_phase" not in job:
                self.store.update("job", job["id"], change)

    def recover(self) -> None:
        """Re-queue the jobs a killed process left running (or pausing)."""
        self.migrate()
        for job in self.store.all("job"):
            if job.get("_phase") != "running":
                continue
            job_id = job["id"]
            self.store.delete_children(  # the lost run's metrics, checkpoints and messages
                "event", job_id, lambda e: e.get("type") == "metrics"
                or e.get("message", "").startswith(_RUN_MESSAGES))
            self.store.delete_children("checkpoint", job_id, lambda c: True)
            shutil.rmtree(self.store.models_dir / job_id, ignore_errors=True)
            self.store.update("job", job_id, {"status": "pending", "_phase": "queued",
                                              "estimated_finish": None, "trained_tokens": None})
            add_event(self.store, job_id,
                      "The emulator stopped while this job was running; the job was re-queued "
                      "and will train again from the start.", level="warning")

    # ------------------------------------------------------------------ the loop

    def _next(self, phase: str) -> dict | None:
        for job in self.store.all("job"):
            if job.get("_phase") == phase and job["status"] not in TERMINAL:
                return job
        return None

    def _loop(self, phase: str, handle) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
            job = None
            try:
                job = self._next(phase)
                if job is not None:
                    handle(job)
                    continue
            except Exception as exc:  # a bug must fail the job, not loop on it
                log.exception("emulator worker error")
                if job is not None:
                    self.current_job = None
                    self._fail(job["id"], {"code": "internal_error", "param": None,
                                           "message": f"The emulator failed: "
                                                      f"{type(exc).__name__}: {exc}"})
                time.sleep(0.5)
                continue
            with self._wake:
                if not self._stopping:
                    self._wake.wait(timeout=2.0)

    def _fail(self, job_id: str, error: dict) -> None:
        def change(job: dict) -> dict:
            if job["status"] in TERMINAL:
                return job
            job.update(status="failed", error=error, finished_at=now(), estimated_finish=None,
                       _phase="done")
            return job

        self.store.update("job", job_id, change)
        add_event(self.store, job_id, f"Job failed: {error['message']}", level="error")

    def _status(self, job_id: str) -> str:
        job = self.store.get("job", job_id)
        return "cancelled" if job is None or job.get("_deleted") else job["status"]

    # ------------------------------------------------------------------ validation

    def _examples(self, job: dict, param: str) -> tuple[list[dict], dict[str, Any]]:
        from helpers import chat_data

        from . import preference_data

        file_id = job[param]
        record = self.store.get("file", file_id)
        if record is None:
            raise JobFailed("invalid_file", f"The {param.replace('_', ' ')} {file_id} was "
                            "deleted before the job started; upload it again and create a new "
                            "job.", param)
        data = self.store.read_file_bytes(file_id)
        minimum = 10 if param == "training_file" else 1
        if job.get("_method") == "dpo":
            preferences = preference_data.validate_bytes(data, min_examples=minimum)
            if not preferences.valid:
                raise JobFailed(
                    f"invalid_{param}",
                    f"The {param.replace('_', ' ')} {record['filename']} ({file_id}) is not a "
                    f"valid DPO file ({len(preferences.errors)} error(s)); each line needs "
                    "input.messages, preferred_output and non_preferred_output.\n"
                    + preferences.describe(), param)
            return preferences.examples, {"examples": len(preferences.examples)}
        report = chat_data.validate_bytes(data, name=record["filename"],
                                          model=job["_root_model"], min_examples=minimum)
        if not report.valid:
            lines = sorted({i.line for i in report.errors if i.line is not None})
            where = f" (lines {', '.join(map(str, lines))})" if lines else ""
            raise JobFailed(
                f"invalid_{param}",
                f"The {param.replace('_', ' ')} {record['filename']} ({file_id}) has "
                f"{len(report.errors)} error(s){where}. Fix them and upload the file again; "
                "`python -m helpers check-data FILE` shows the same report.\n"
                + chat_data.format_issues(report.errors),
                param,
            )
        return report.examples, {"examples": len(report.examples)}

    def _validate(self, job: dict) -> None:
        job_id = job["id"]
        try:
            train, info = self._examples(job, "training_file")
            add_event(self.store, job_id, f"Training file {job['training_file']} is valid: "
                      f"{info['examples']} examples.")
            if job.get("validation_file"):
                _, vinfo = self._examples(job, "validation_file")
                add_event(self.store, job_id, f"Validation file {job['validation_file']} is "
                          f"valid: {vinfo['examples']} examples.")
        except JobFailed as failure:
            self._fail(job_id, failure.error)
            return
        except Exception as exc:  # noqa: BLE001 - an unreadable file or a checker bug: say which
            self._fail(job_id, {"code": "invalid_file", "param": "training_file",
                                "message": f"The job's files could not be validated: {exc}"})
            return

        from .training import resolve_hyperparameters

        def change(record: dict) -> dict:
            if record.get("_phase") != "validating" or record["status"] in TERMINAL:
                return record
            hp = resolve_hyperparameters(record["_requested_hyperparameters"], len(train))
            record["_resolved"] = hp.as_dict()
            record["_phase"] = "queued"
            return record

        record = self.store.update("job", job_id, change)
        if record.get("_phase") == "queued":
            add_event(self.store, job_id, "Files validated, moving job to queued state.")
            self.notify()  # wake the trainer

    # ------------------------------------------------------------------ training

    def _run(self, job: dict) -> None:
        from . import training
        from .trainer import Observer, TrainingRequest
        from .training import Cancelled, Hyperparameters, Paused

        job_id = job["id"]
        resuming = job["status"] == "resuming"

        def start(record: dict) -> dict:
            if record.get("_phase") == "queued" and record["status"] in ("pending", "resuming"):
                record["status"] = "running"
                record["_phase"] = "running"
                resolved = record["_resolved"]
                record["hyperparameters"] = dict(resolved)
                method = record.get("method")
                if method:
                    kind = method["type"]
                    extra = {"beta": record["_beta"]} if kind == "dpo" else {}
                    method[kind] = {"hyperparameters": {**resolved, **extra}}
            return record

        started = self.store.update("job", job_id, start)
        if started["status"] != "running":
            return
        self.current_job = job_id
        add_event(self.store, job_id, "Job resumed." if resuming else "Job started.")
        out_dir = self.store.job_models_dir(job_id)
        if not resuming:
            shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        fine_tuned = catalog.fine_tuned_name(job["_root_model"], job_id, job.get("suffix"))
        began, first_step = time.time(), None

        def on_step(row: dict) -> None:
            nonlocal first_step
            first_step = row["step"] if first_step is None else first_step
            data = {k: v for k, v in row.items() if v is not None}
            add_event(self.store, job_id, _metrics_message(row), type="metrics", data=data)
            done = row["step"] - first_step + 1
            if done == 1 or row["step"] % 10 == 0:
                left = int((time.time() - began) / done * (row["total_steps"] - row["step"]))
                self.store.update("job", job_id, {"estimated_finish": now() + left})
            if self.step_delay:
                time.sleep(self.step_delay)

        def on_checkpoint(step: int, folder: Path, row: dict) -> None:
            metrics = {k: v for k, v in row.items() if k in RESULTS_COLUMNS and v is not None}
            final = folder.name == "final"
            checkpoint = {
                "id": new_id("ftchkpt"),
                "object": "fine_tuning.job.checkpoint",
                "created_at": now(),
                "fine_tuned_model_checkpoint": fine_tuned if final
                else catalog.checkpoint_name(fine_tuned, step),
                "fine_tuning_job_id": job_id,
                "metrics": metrics,
                "step_number": step,
                "_folder": folder.name,
            }
            self.store.insert("checkpoint", checkpoint, parent=job_id)
            add_event(self.store, job_id, f"Checkpoint created at step {step}.")

        observer = Observer(
            on_message=lambda message: add_event(self.store, job_id, message),
            on_step=on_step,
            on_checkpoint=on_checkpoint,
            should_stop=lambda: self._status(job_id) == "cancelled" or self._stopping,
            should_pause=lambda: self._status(job_id) == "pausing",
        )
        try:
            train_examples, _ = self._examples(job, "training_file")
            valid_examples = (self._examples(job, "validation_file")[0]
                              if job.get("validation_file") else [])
            init_from = job.get("_init_from")
            result = training.train(TrainingRequest(
                backend=job["_backend"], train_examples=train_examples,
                valid_examples=valid_examples,
                hyperparameters=Hyperparameters(**started["_resolved"]), seed=int(job["seed"]),
                output_dir=out_dir, method=job.get("_method", "supervised"),
                beta=float(job.get("_beta") or 0.1),
                init_from=Path(init_from) if init_from else None, resume=resuming,
            ), observer)
        except Paused as paused:
            self.current_job = None
            self.store.update("job", job_id, {"status": "paused", "_phase": "paused",
                                              "estimated_finish": None})
            add_event(self.store, job_id, f"Job paused at step {paused.step}.")
            return
        except Cancelled:
            self.current_job = None
            if self._stopping and self._status(job_id) != "cancelled":
                return  # shutting down: recover() re-queues it at the next start
            self.store.update("job", job_id, {"status": "cancelled", "finished_at": now(),
                                              "estimated_finish": None, "_phase": "done"})
            add_event(self.store, job_id, "Job cancelled.")
            return
        except JobFailed as failure:
            self.current_job = None
            self._fail(job_id, failure.error)
            return
        except Exception as exc:  # noqa: BLE001 - any training error fails the job, with its reason
            self.current_job = None
            log.error("job %s failed:\n%s", job_id, traceback.format_exc())
            self._fail(job_id, {"code": "training_failed", "param": None,
                                "message": f"Training failed: {type(exc).__name__}: {exc}"})
            return
        self.current_job = None
        self._finish(job_id, fine_tuned, result, out_dir)

    def _finish(self, job_id: str, fine_tuned: str, result, out_dir: Path) -> None:
        results_id = new_id("file")
        data = results_csv(result.rows)
        self.store.write_file_bytes(results_id, lambda handle: handle.write(data))
        self.store.insert("file", {
            "id": results_id, "object": "file", "bytes": len(data), "created_at": now(),
            "filename": "results.csv", "purpose": "fine-tune-results", "status": "processed",
            "status_details": None, "expires_at": None,
        })
        add_event(self.store, job_id, f"Completed results file: {results_id}")
        if result.truncated_examples:
            add_event(self.store, job_id, f"{result.truncated_examples} training example(s) "
                      "were longer than the local model's limit and were truncated.",
                      level="warning")
        (out_dir / "job.json").write_text(json.dumps({"job_id": job_id, "model": fine_tuned}))

        def succeed(record: dict) -> dict:
            if record["status"] not in ("running", "pausing"):  # cancelled at the very end
                return record
            record.update(status="succeeded", fine_tuned_model=fine_tuned, finished_at=now(),
                          trained_tokens=result.trained_tokens, result_files=[results_id],
                          estimated_finish=None, _phase="done")
            return record

        final = self.store.update("job", job_id, succeed)
        if final["status"] == "succeeded":
            add_event(self.store, job_id, "Job succeeded.")
        elif final["status"] == "cancelled":
            add_event(self.store, job_id, "Job cancelled.")
