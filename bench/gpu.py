"""The course's GPU path, measured on a CUDA machine: assignment 01's source notebook in full mode
with the GPU recipe, then an emulator fine-tuning job with the SmolLM2 backend and a chat.

1. **Notebook 01** (``source/01-gpt2-imdb/gpt2_imdb.ipynb``, the instructor's version with the
   solutions), every code cell in order in this process (`bench.notebook`), full mode. Offline the
   backbone is the packaged SmolLM2-135M; on a GPU the recipe is the lab's: 1,000 training and 500
   held-out reviews, every layer trains, 3 epochs, 256 tokens, learning rate 2e-5, batch size 8.
   Recorded: accuracy, precision, recall and F1 on the 500 held-out reviews (the notebook's own
   ``eval_metrics``), the majority-class share of those reviews, the evaluation after each
   epoch, wall time per phase (the notebook's steps) and per key cell (training, prediction), and
   the peak GPU memory (``torch.cuda.max_memory_allocated``) per phase and overall.
2. **Emulator** (``helpers.emulator``, in-process, the official ``openai`` client): a job with the
   ``smollm2`` backend (SmolLM2-135M + LoRA, on the GPU) on the course's 02 data with the lab's
   seed and automatic hyperparameters, timed from create to succeeded; its losses; the lab's
   deployment ``PUT``; the lab's chat messages to the base and the fine-tuned deployment (answers
   recorded, latency medians, interleaved), and the peak GPU memory of the job.

The result is ``bench/results/gpu.json``; ``python -m bench.summary`` shows it in the README's
Performance section with the command and the device. Without CUDA the script stops and says so,
except in the smoke profile (``--smoke``, the CPU dry-run the tests run): fast mode (a tiny GPT-2,
a few dozen reviews), the emulator's ``tiny`` backend, one epoch; its figures mean nothing.

How to run it on a GPU machine that has no network and lacks some of the course's packages:
bench/README.md ("bench/gpu.py on a GPU machine"; ``python -m bench.gpu_carry`` prepares it).

Run: ``python -m bench.gpu [--smoke] [--out-dir DIR] [--skip emulator]``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common

NAME = "gpu"
TITLE = ("the GPU path: notebook 01 in full mode with the GPU recipe, and an emulator job with "
         "the SmolLM2 backend and a chat")
NOTEBOOK = common.ROOT / "source" / "01-gpt2-imdb" / "gpt2_imdb.ipynb"
PARTS = ("notebook", "emulator")
#: Per profile: the emulator's backend, its epochs (None: automatic, as the lab), chats per
#: deployment, and whether the notebook runs in fast mode.
PROFILE = {
    "smoke": {"backend": "tiny", "n_epochs": 1, "chats": 2, "fast": True},
    "default": {"backend": "smollm2", "n_epochs": None, "chats": 5, "fast": False},
    "long": {"backend": "smollm2", "n_epochs": None, "chats": 20, "fast": False},
}
#: The validation questions the fine-tuned and the base model both answer (recorded as text).
QUESTIONS = 2


def cuda_device() -> str | None:
    """The CUDA device's name, or None without one."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


@contextlib.contextmanager
def course_environment(fast: bool, workdir: Path):
    """The environment a learner's notebook runs in, here: full (or fast) mode, offline, outputs
    and data in ``workdir``, a plotting backend without a display. Restored afterwards."""
    values = {"COURSE_FAST": "1" if fast else "0", "COURSE_OUTPUT_DIR": str(workdir / "outputs"),
              "COURSE_DATA_DIR": str(workdir / "data"), "MPLBACKEND": "Agg",
              "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    saved = {k: os.environ.get(k) for k in [*values, "MLFLOW_TRACKING_URI",
                                            "DATABRICKS_RUNTIME_VERSION", "NBGRADER_EXECUTION"]}
    os.environ.update(values)
    for name in ("MLFLOW_TRACKING_URI", "DATABRICKS_RUNTIME_VERSION", "NBGRADER_EXECUTION"):
        os.environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --------------------------------------------------------------------------- notebook 01

#: The rehearsal's sizes (``--smoke --rehearse``): the GPU recipe, tiny.
REHEARSAL_SIZES = {"train_size": 32, "eval_size": 32, "epochs": 1, "max_length": 64}


@contextlib.contextmanager
def gpu_recipe_at_tiny_sizes(actual_device: str):
    """For the rehearsal only: `helpers.classifier.default_recipe` gives the GPU recipe (every
    layer trains, the lab's learning rate and batch size) at `REHEARSAL_SIZES`, on
    ``actual_device``,
    so a machine without a GPU runs the notebook's full-mode path in minutes."""
    import dataclasses

    from helpers import classifier

    original = classifier.default_recipe

    def rehearsal_recipe(backbone, device: str | None = None, fast: bool | None = None):
        recipe = original(backbone, device="cuda", fast=False)
        return dataclasses.replace(recipe, device=actual_device, **REHEARSAL_SIZES,
                                   note="rehearsal: the GPU recipe at tiny sizes")

    classifier.default_recipe = rehearsal_recipe
    try:
        yield
    finally:
        classifier.default_recipe = original


def notebook_part(result: common.Result, device: str, fast: bool, workdir: Path,
                  rehearse: bool = False) -> None:
    from bench import notebook

    with contextlib.ExitStack() as stack:
        stack.enter_context(course_environment(fast, workdir))
        if rehearse:
            stack.enter_context(gpu_recipe_at_tiny_sizes(device))
        run = notebook.run(NOTEBOOK, device=device)
    ns = run.namespace
    recipe, backbone = ns["RECIPE"].as_dict(), ns["BACKBONE"]
    result.params["notebook"] = {"path": str(NOTEBOOK.relative_to(common.ROOT)),
                                 "backbone": backbone.name, "recipe": recipe,
                                 "memory": run.memory_kind}
    for phase in run.phases():
        result.measure(part="notebook 01", what=phase["phase"], seconds=phase["seconds"],
                       peak_mib=phase["peak_mib"], cells=phase["cells"])
    train, predict = run.cell_with(r"trainer\.train\(\)"), run.cell_with(r"trainer\.predict\(")
    result.measure(part="notebook 01", what="cell: trainer.train()", seconds=train.seconds,
                   peak_mib=train.peak_mib)
    result.measure(part="notebook 01", what="cell: trainer.predict(tokenized_eval)",
                   seconds=predict.seconds, peak_mib=predict.peak_mib)
    result.measure(part="notebook 01", what="top to bottom", seconds=run.seconds,
                   peak_mib=run.peak_mib, cells=len(run.cells))
    for row in ns["trainer"].state.log_history:
        if "eval_accuracy" in row:
            result.measure(part="notebook 01", what=f"evaluation after epoch {row['epoch']:g}",
                           accuracy=row["eval_accuracy"], f1=row.get("eval_f1"),
                           eval_loss=row.get("eval_loss"))
    labels = list(ns["small_eval_dataset"]["label"])
    majority = max(statistics.fmean(labels), 1 - statistics.fmean(labels))
    described = (f"{backbone.name}, {recipe['train_size']:,} reviews, {recipe['epochs']:g} epochs, "
                 f"{recipe['max_length']} tokens, "
                 + ("every layer" if recipe["trainable_layers"] is None
                    else f"top {recipe['trainable_layers']} blocks") + f", on {device}")
    for key in ("accuracy", "precision", "recall", "f1"):
        result.figure(f"notebook 01: {key} on the {len(labels)} held-out reviews",
                      float(ns["eval_metrics"][key]), described)
    result.figure("notebook 01: majority-class share of the held-out reviews", majority,
                  "what always answering the commoner label scores")
    peak = f"{run.peak_mib:,.0f} MiB ({run.memory_kind})" if run.peak_mib is not None else "n/a"
    result.note(f"notebook 01: {common.fmt_seconds(run.seconds)} top to bottom "
                f"({len(run.cells)} code cells), training {common.fmt_seconds(train.seconds)}, "
                f"prediction {common.fmt_seconds(predict.seconds)}; peak memory {peak}")
    # the notebook's models leave the GPU before the emulator's job is measured
    ns.clear()
    del run, ns
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- emulator

def emulator_part(result: common.Result, device: str, profile: dict[str, Any],
                  workdir: Path) -> None:
    from bench import emulator as bench_emulator
    from helpers.emulator import training

    backend = profile["backend"]
    training_file = bench_emulator.COURSE_DATA / "training_set.jsonl"
    validation_file = bench_emulator.COURSE_DATA / "validation_set.jsonl"
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    with course_environment(profile["fast"], workdir):
        run = bench_emulator.run_job(backend, training_file, validation_file, profile["n_epochs"])
    job, emu, client = run["job"], run["emulator"], run["client"]
    try:
        peak = None
        if device == "cuda":
            import torch

            peak = common.mib(torch.cuda.max_memory_allocated())
        epochs = getattr(job.hyperparameters, "n_epochs", None)
        result.measure(part="emulator", what=f"job create -> {job.status} ({backend})",
                       seconds=run["seconds"], peak_mib=peak,
                       examples=bench_emulator.count_examples(training_file), epochs=epochs,
                       trained_tokens=job.trained_tokens,
                       device=training.device_for(backend))
        if job.status != "succeeded":
            raise RuntimeError(f"the emulator's {backend} job ended {job.status}: {job.error}")
        trained = bench_emulator.losses(client, job)
        result.measure(part="emulator", what="losses", **trained)
        deployment = bench_emulator.deploy(emu, job.fine_tuned_model)
        times, generated = bench_emulator.chat_latencies(
            client, {"base": "gpt-4o", "fine-tuned": deployment}, profile["chats"])
        for which, values in times.items():
            result.measure(part="emulator", what=f"chat, {which} deployment",
                           seconds=common.median(values), n=len(values),
                           completion_tokens=common.median(generated[which]))
        result.ratio(f"{backend} on {training.device_for(backend)}: chat latency, fine-tuned / "
                     "base (median)", common.median(times["fine-tuned"]),
                     common.median(times["base"]), "fine-tuned deployment", "base deployment",
                     note="includes answer length: a model that stops early answers sooner")
        said = bench_emulator.answers(client, deployment, QUESTIONS)
        for row in said:
            result.measure(part="emulator", what="answers", **row)
        if backend != "tiny" and bench_emulator.degenerate_note(said):  # tiny is random: noise
            result.note(bench_emulator.degenerate_note(said))
        result.note(f"emulator: the {backend} job on the course's 02 data "
                    f"({bench_emulator.count_examples(training_file)} examples) took "
                    f"{common.fmt_seconds(run['seconds'])} "
                    f"({epochs} epochs, {trained['steps']} steps, on {training.device_for(backend)}; "
                    "loading the model included, as in a learner's first job)")
    finally:
        emu.close()


# --------------------------------------------------------------------------- summary

def tables(measurements: list[dict[str, Any]]) -> list[tuple[list[str], list[list[str]]]]:
    """The README's tables: times and memory per phase, the evaluation per epoch, the emulator's
    job and chats, and the answers of the base and the fine-tuned deployment."""
    def fmt(value: Any, kind: str = "s") -> str:
        if value is None:
            return "–"
        return common.fmt_seconds(value) if kind == "s" else f"{value:,.0f}"

    timed = [[r["part"], r["what"], fmt(r.get("seconds")), fmt(r.get("peak_mib"), "mib")]
             for r in measurements if "seconds" in r and r["what"] != "answers"]
    out = [(["part", "phase or case", "wall", "peak memory (MiB)"], timed)]
    epochs = [[r["what"].removeprefix("evaluation after "), f"{r['accuracy']:.3f}",
               f"{r['f1']:.3f}" if r.get("f1") is not None else "–",
               f"{r['eval_loss']:.3f}" if r.get("eval_loss") is not None else "–"]
              for r in measurements if r["what"].startswith("evaluation after")]
    if epochs:
        out.append((["notebook 01, evaluation", "accuracy", "F1", "loss"], epochs))
    for r in measurements:
        if r["what"] == "losses":
            full = ", ".join(f"{v:.2f}" for v in r.get("full_valid_loss_per_epoch", []))
            out.append((["emulator job", "steps", "train loss, first step", "last step",
                         "full validation loss per epoch"],
                        [["losses", str(r["steps"]), f"{r['train_loss_first']:.2f}",
                          f"{r['train_loss_last']:.2f}", full or "–"]]))
    from bench.emulator import quote

    answers = [[r["question"], quote(r["base"]), quote(r["fine_tuned"])]
               for r in measurements if r["what"] == "answers"]
    if answers:
        out.append((["question (temperature 0, 48 tokens at most)", "base model",
                     "fine-tuned deployment"], answers))
    return out


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = common.parser(NAME, __doc__.split("\n\n")[0])
    p.add_argument("--skip", default="", help=f"comma-separated parts to leave out: {PARTS}")
    p.add_argument("--rehearse", action="store_true",
                   help="with --smoke: full mode instead of fast mode, the packaged SmolLM2 "
                        "backbone with the GPU recipe at tiny sizes and the emulator's smollm2 "
                        "backend for one epoch: the device run's code path, on any machine, in "
                        "minutes (what `make test` runs is the plain --smoke)")
    args = p.parse_args(argv)
    if args.rehearse and args.profile != "smoke":
        p.error("--rehearse goes with --smoke (it measures nothing: it tries the code path)")
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(PARTS):
        p.error(f"--skip: unknown part(s) {sorted(skip - set(PARTS))}; known: {PARTS}")
    profile = dict(PROFILE[args.profile])
    if args.rehearse:
        profile.update(backend="smollm2", fast=False)
    if args.repeats:
        profile["chats"] = args.repeats
    with common.quiet_libraries():
        name = cuda_device()
        if name is None and args.profile != "smoke":
            print("bench.gpu: no CUDA device here (torch.cuda.is_available() is False). This "
                  "benchmark measures the GPU path: run it on a GPU machine (bench/README.md, "
                  "'bench/gpu.py on a GPU machine'), or run the CPU dry-run with --smoke.")
            return 2
        device = "cuda" if name else "cpu"
        result = common.start(NAME, TITLE, args.profile, torch_details=True, device=device,
                              gpu=name, parts=[p for p in PARTS if p not in skip],
                              emulator={k: profile[k] for k in ("backend", "n_epochs", "chats")})
        if args.rehearse:
            result.note(f"rehearsal (--smoke --rehearse): full mode, the GPU recipe at tiny "
                        f"sizes ({REHEARSAL_SIZES}), the emulator's smollm2 backend for one "
                        "epoch; the figures mean nothing")
        elif args.profile == "smoke":
            result.note("smoke profile (the CPU dry-run): fast mode, a tiny GPT-2, a few dozen "
                        "reviews and the emulator's tiny backend; the figures mean nothing")
        with tempfile.TemporaryDirectory(prefix="bench-gpu-") as workdir:
            started = time.perf_counter()
            if "notebook" not in skip:
                notebook_part(result, device, profile["fast"], Path(workdir) / "notebook",
                              rehearse=args.rehearse)
            if "emulator" not in skip:
                emulator_part(result, device, profile, Path(workdir) / "emulator")
            result.params["seconds_total"] = time.perf_counter() - started
    result.finish(args.out_dir, argv=argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
