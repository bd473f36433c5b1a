"""The local Azure OpenAI emulator as a learner feels it: how long a fine-tuning job takes, how
fast the deployments answer, how fast a big file uploads.

Everything goes through the official ``openai.AzureOpenAI`` client on the in-process emulator
(``helpers.emulator.client.InProcessEmulator``: the same app, routes and worker as the server,
without a socket):

- **job time**: from ``fine_tuning.jobs.create`` (``model="gpt-4o-2024-08-06"``: Azure fine-tunes
  versioned base models only; ``seed=105``, automatic
  hyperparameters, training and validation files) to ``succeeded``, for the ``tiny`` and the
  ``smollm2`` backend, on the lab's 10 examples (``../shared/reference-data``, when present) and
  on the course's own data (``source/02-gpt4o-jsonl/data``). A fresh emulator per job, so the
  figure includes loading the model, as a learner's first job does;
- **chat latency**: ``chat.completions.create`` with the lab's messages, 32 new tokens at
  temperature 0, on the base deployment ``gpt-4o`` and on the fine-tuned model deployed with the
  lab's management ``PUT`` (requests interleaved; median and p95);
- **upload throughput**: ``files.create`` of a 50 MB chat JSONL against the floor, copying the
  same file on the same disk.

Ratios: the fine-tuned deployment's median latency against the base one's (what the adapter
costs), upload time against the copy floor, and each backend's job time on the course's data
against the lab's data.

Run: ``python -m bench.emulator [--profile smoke|default|long] [--backends tiny,smollm2]``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common

NAME = "emulator"
TITLE = "local Azure OpenAI emulator: job time, chat latency, upload throughput"
COURSE_DATA = common.ROOT / "source" / "02-gpt4o-jsonl" / "data"
LAB_DATA = common.ROOT.parent / "shared" / "reference-data" / "mslearn-databricks"
#: The lab's chat messages (its last step asks the fine-tuned model about Antarctica).
LAB_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Does Azure OpenAI support customer managed keys?"},
    {"role": "assistant", "content": "Yes, customer managed keys are supported by Azure OpenAI."},
    {"role": "user", "content": "Do other Azure AI services support this too?"},
]
MAX_TOKENS = 32
#: The base model a job fine-tunes (Azure refuses the bare ``gpt-4o`` for fine-tuning).
FT_MODEL = "gpt-4o-2024-08-06"

PROFILE = {
    "smoke": {"backends": ["tiny"], "chats": 2, "upload_mb": 1, "uploads": 1, "datasets": ["course"],
              "n_epochs": 1},
    "default": {"backends": ["tiny", "smollm2"], "chats": 10, "upload_mb": 50, "uploads": 3,
                "datasets": ["lab", "course"]},
    "long": {"backends": ["tiny", "smollm2"], "chats": 30, "upload_mb": 50, "uploads": 5,
             "datasets": ["lab", "course"]},
}


def datasets(wanted: list[str]) -> dict[str, tuple[Path, Path]]:
    """``{name: (training file, validation file)}`` for the data sets that exist here."""
    found = {}
    if "lab" in wanted and (LAB_DATA / "training_set.jsonl").is_file():
        found["lab"] = (LAB_DATA / "training_set.jsonl", LAB_DATA / "validation_set.jsonl")
    if "course" in wanted and (COURSE_DATA / "training_set.jsonl").is_file():
        found["course"] = (COURSE_DATA / "training_set.jsonl", COURSE_DATA / "validation_set.jsonl")
    return found


def count_examples(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def run_job(backend: str, training: Path, validation: Path,
            n_epochs: int | None = None) -> dict[str, Any]:
    """One job on a fresh emulator: create -> succeeded, timed; plus the emulator for chats.
    ``n_epochs=None`` leaves the hyperparameters automatic, as the lab does."""
    from helpers.emulator.client import InProcessEmulator

    emu = InProcessEmulator(backend=backend)
    client = emu.azure_client()
    from helpers import azure

    with training.open("rb") as t, validation.open("rb") as v:
        train_file = client.files.create(file=t, purpose="fine-tune")
        valid_file = client.files.create(file=v, purpose="fine-tune")
    # as on Azure (and in the notebook): a job may use a file once its import is processed
    azure.wait_for_files(client, [train_file.id, valid_file.id], poll_interval=0.05)
    start = time.perf_counter()
    extra = {"hyperparameters": {"n_epochs": n_epochs}} if n_epochs else {}
    job = client.fine_tuning.jobs.create(model=FT_MODEL, training_file=train_file.id,
                                         validation_file=valid_file.id, seed=105, **extra)
    done = emu.wait_for_job(job.id, timeout=3600, poll=0.1)
    seconds = time.perf_counter() - start
    return {"emulator": emu, "client": client, "job": done, "seconds": seconds}


def deploy(emu, fine_tuned_model: str, name: str = "gpt-4o-ft") -> str:
    """The lab's management PUT, against the emulator."""
    response = emu.http.put(
        emu.management_path(name), params={"api-version": "2023-05-01"},
        headers={"Authorization": f"Bearer {emu.api_key}"},
        json={"sku": {"name": "standard", "capacity": 1},
              "properties": {"model": {"format": "OpenAI", "name": fine_tuned_model, "version": "1"}}},
    )
    if response.status_code >= 300:
        raise RuntimeError(f"deployment PUT failed: {response.status_code} {response.text}")
    # as on Azure: the deployment answers once its provisioning state is Succeeded
    deadline = time.monotonic() + 600
    record = response.json()
    while (record.get("properties") or {}).get("provisioningState", "Succeeded") != "Succeeded":
        if time.monotonic() > deadline:
            raise RuntimeError(f"deployment {name!r} not provisioned after 600 s: {record}")
        time.sleep(0.05)
        record = emu.http.get(emu.management_path(name), params={"api-version": "2023-05-01"},
                              headers={"Authorization": f"Bearer {emu.api_key}"}).json()
    return name


def chat_latencies(client, deployments: dict[str, str],
                   n: int) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """``n`` chat completions per deployment, interleaved: seconds each, and the tokens each
    generated (a model that stops early answers sooner: compare per generated token too)."""
    def ask(model: str):
        return lambda: client.chat.completions.create(
            model=model, messages=LAB_MESSAGES, max_tokens=MAX_TOKENS, temperature=0)

    tokens: dict[str, list[int]] = {label: [] for label in deployments}

    def count(label, _repeat, _seconds, response):
        tokens[label].append(int(response.usage.completion_tokens))

    variants = {label: ask(model) for label, model in deployments.items()}
    return common.interleaved(variants, repeats=n, warmup=1, on_result=count), tokens


def answer(client, model: str, messages: list[dict[str, str]], max_tokens: int = 48) -> str:
    """A deployment's answer at temperature 0 (what a learner reads in the notebook)."""
    response = client.chat.completions.create(model=model, messages=messages,
                                              max_tokens=max_tokens, temperature=0)
    return (response.choices[0].message.content or "").strip()


def answers(client, deployment: str, questions: int = 2) -> list[dict[str, str]]:
    """The base deployment's and the fine-tuned one's answers to the lab's chat and to the first
    ``questions`` questions of the course's validation data (their expected answers left out)."""
    validation = COURSE_DATA / "validation_set.jsonl"
    examples = [json.loads(line)["messages"] for line in
                validation.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    asked = [LAB_MESSAGES] + [messages[:-1] for messages in examples[:questions]]
    return [{"question": messages[-1]["content"], "base": answer(client, "gpt-4o", messages),
             "fine_tuned": answer(client, deployment, messages)} for messages in asked]


def degenerate(text: str) -> bool:
    """An answer that is mostly one character repeated ("Yes-------------"): what a model
    produces when each new token is generated without the earlier ones (a KV cache the model's
    forward ignored)."""
    text = "".join(text.split())
    if len(text) < 8:
        return False
    return max(text.count(c) for c in set(text)) > 0.6 * len(text)


def degenerate_note(said: list[dict[str, str]]) -> str | None:
    """A warning for the result when any answer is `degenerate`, naming the transformers version."""
    bad = [r["question"] for r in said if degenerate(r["base"]) or degenerate(r["fine_tuned"])]
    if not bad:
        return None
    from importlib.metadata import version

    return (f"WARNING: answers to {len(bad)} of {len(said)} questions are one character "
            f"repeated: text generation is broken here (transformers {version('transformers')}); "
            "the timings stand, the answers do not")


def losses(client, job) -> dict[str, Any]:
    """The job's results file in brief: steps, the first and last training loss, the full
    validation loss after each epoch."""
    from helpers import azure

    frame = azure.read_results(client, job)
    full = frame["full_valid_loss"].dropna().tolist() if "full_valid_loss" in frame else []
    return {"steps": len(frame), "train_loss_first": float(frame["train_loss"].iloc[0]),
            "train_loss_last": float(frame["train_loss"].iloc[-1]),
            "full_valid_loss_per_epoch": [round(float(v), 4) for v in full]}


def tables(measurements: list[dict[str, Any]]) -> list[tuple[list[str], list[list[str]]]]:
    """The README's tables: the timings, each job's losses, and the answers base vs fine-tuned."""
    columns = [("case", "case", str), ("backend", "backend", str), ("examples", "examples", "int"),
               ("median_s", "median", "s"), ("p95_s", "p95", "s"),
               ("completion_tokens", "tokens out", "num"), ("per_token_s", "per token", "s"),
               ("throughput_mib_s", "MiB/s", "num"), ("n", "runs", "int")]

    def fmt(value: Any, kind: Any) -> str:
        if value is None:
            return "–"
        if kind == "s":
            return common.fmt_seconds(value)
        if kind == "int":
            return f"{int(value):,}"
        if kind == "num":
            return f"{float(value):,.1f}"
        return str(value)

    timed = [r for r in measurements if "median_s" in r]
    present = [c for c in columns if any(c[0] in r for r in timed)]
    out = [([c[1] for c in present], [[fmt(r.get(k), kind) for k, _, kind in present]
                                      for r in timed])]
    trained = [r for r in measurements if r.get("case") == "losses"]
    if trained:
        out.append((["job losses", "backend", "steps", "train loss, first step", "last step",
                     "full validation loss per epoch"],
                    [[r["dataset"], r["backend"], str(r["steps"]), f"{r['train_loss_first']:.2f}",
                      f"{r['train_loss_last']:.2f}",
                      " → ".join(f"{v:.2f}" for v in r["full_valid_loss_per_epoch"]) or "–"]
                     for r in trained]))
    said = [r for r in measurements if r.get("case") == "answers"]
    if said:
        out.append((["question (temperature 0, 48 tokens at most)", "backend", "base model",
                     "fine-tuned deployment"],
                    [[r["question"], r["backend"], quote(r["base"]), quote(r["fine_tuned"])]
                     for r in said]))
    return out


def quote(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return f"\"{text[:limit]}{'…' if len(text) > limit else ''}\""


def make_big_jsonl(path: Path, megabytes: int) -> int:
    """A valid chat JSONL of at least ``megabytes`` MB, the course's examples repeated."""
    lines = [line for line in (COURSE_DATA / "training_set.jsonl").read_bytes()
             .removeprefix(b"\xef\xbb\xbf").splitlines() if line.strip()]
    if not lines:
        lines = [json.dumps({"messages": LAB_MESSAGES[:2] + [
            {"role": "assistant", "content": "Yes."}]}).encode()]
    target = megabytes * 1_000_000
    size = 0
    with path.open("wb") as out:
        i = 0
        while size < target:
            line = lines[i % len(lines)] + b"\n"
            out.write(line)
            size += len(line)
            i += 1
    return size


def upload_vs_copy(client, path: Path, workdir: Path, repeats: int) -> dict[str, list[float]]:
    """``files.create`` of ``path`` against copying it on the same disk, interleaved."""
    copies = workdir / "copies"
    copies.mkdir(exist_ok=True)

    def upload():
        with path.open("rb") as handle:
            uploaded = client.files.create(file=handle, purpose="fine-tune")
        client.files.delete(uploaded.id)

    def copy():
        target = copies / "copy.jsonl"
        shutil.copyfile(path, target)
        target.unlink()

    return common.interleaved({"upload": upload, "copy": copy}, repeats=repeats)


def main(argv: list[str] | None = None) -> int:
    p = common.parser(NAME, __doc__.split("\n\n")[0])
    p.add_argument("--backends", default=None, help="comma-separated: tiny, smollm2")
    p.add_argument("--upload-mb", type=int, default=None, help="size of the upload test file")
    p.add_argument("--n-epochs", type=int, default=None,
                   help="epochs per job (default: automatic, as the lab leaves it)")
    args = p.parse_args(argv)
    profile = dict(PROFILE[args.profile])
    if args.backends:
        profile["backends"] = args.backends.split(",")
    if args.upload_mb:
        profile["upload_mb"] = args.upload_mb
    if args.n_epochs:
        profile["n_epochs"] = args.n_epochs
    if args.repeats:
        profile["chats"] = profile["uploads"] = args.repeats

    with common.quiet_libraries():
        data = datasets(profile["datasets"])
        result = common.start(NAME, TITLE, args.profile, backends=profile["backends"],
                              datasets={k: [str(v[0]), count_examples(v[0])] for k, v in data.items()},
                              chats=profile["chats"], max_tokens=MAX_TOKENS,
                              upload_mb=profile["upload_mb"], n_epochs=profile.get("n_epochs", "auto"))
        if "lab" in profile["datasets"] and "lab" not in data:
            result.note(f"the lab's data ({LAB_DATA}) is not here: only the course's data is timed")
        job_seconds: dict[tuple[str, str], float] = {}
        for backend in profile["backends"]:
            for label, (training, validation) in data.items():
                run = run_job(backend, training, validation, profile.get("n_epochs"))
                job, emu, client = run["job"], run["emulator"], run["client"]
                try:
                    job_seconds[(backend, label)] = run["seconds"]
                    result.measure(case="job create -> succeeded", backend=backend, dataset=label,
                                   examples=count_examples(training), status=job.status,
                                   median_s=run["seconds"], n=1,
                                   n_epochs=getattr(job.hyperparameters, "n_epochs", None),
                                   trained_tokens=job.trained_tokens)
                    print(f"  {backend} on {label}'s {count_examples(training)} examples: "
                          f"{job.status} after {common.fmt_seconds(run['seconds'])} "
                          f"({getattr(job.hyperparameters, 'n_epochs', '?')} epochs)", flush=True)
                    if job.status != "succeeded":
                        result.note(f"{backend}/{label}: job ended {job.status}: {job.error}")
                        continue
                    result.measure(case="losses", backend=backend, dataset=label,
                                   **losses(client, job))
                    if label != "course":
                        continue
                    # chat latency on the course's fine-tuned model and the base deployment
                    deployment = deploy(emu, job.fine_tuned_model)
                    said = answers(client, deployment)
                    for row in said:
                        result.measure(case="answers", backend=backend, dataset=label, **row)
                    if backend != "tiny" and degenerate_note(said):  # tiny is random: noise
                        result.note(degenerate_note(said))
                    times, generated = chat_latencies(
                        client, {"base": "gpt-4o", "fine-tuned": deployment}, profile["chats"])
                    per_token = {}
                    for which, values in times.items():
                        stats = common.summary(values)
                        tokens = common.median(generated[which])
                        per_token[which] = common.median(
                            [t / max(k, 1) for t, k in zip(values, generated[which], strict=True)])
                        result.measure(case=f"chat, {which} deployment", backend=backend,
                                       dataset=label, median_s=stats["median"], p95_s=stats["p95"],
                                       n=stats["n"], completion_tokens=tokens,
                                       per_token_s=per_token[which],
                                       runs_s=[round(v, 4) for v in values])
                        print(f"  {backend} chat {which}: median {common.fmt_seconds(stats['median'])}"
                              f", p95 {common.fmt_seconds(stats['p95'])} ({stats['n']} requests, "
                              f"{tokens:g} tokens generated, "
                              f"{common.fmt_seconds(per_token[which])} per token)", flush=True)
                    result.ratio(f"{backend}: chat latency, fine-tuned / base (median)",
                                 common.median(times["fine-tuned"]), common.median(times["base"]),
                                 "fine-tuned deployment", "base deployment",
                                 note="includes answer length: a model that stops early answers sooner")
                    result.ratio(f"{backend}: chat latency per generated token, fine-tuned / base",
                                 per_token["fine-tuned"], per_token["base"],
                                 "fine-tuned deployment", "base deployment",
                                 note="what serving the adapter costs; 1.0x = nothing")
                finally:
                    emu.close()
            if (backend, "lab") in job_seconds and (backend, "course") in job_seconds:
                result.ratio(f"{backend}: job time, course data / lab data",
                             job_seconds[(backend, "course")], job_seconds[(backend, "lab")],
                             "course's data", "lab's 10 examples",
                             note="auto epochs: 10 for 10 examples, 3 for the course's")

        # upload throughput
        from helpers.emulator.client import InProcessEmulator

        with tempfile.TemporaryDirectory(prefix="bench-emulator-") as workdir, \
                InProcessEmulator(backend=profile["backends"][0]) as emu:
            path = Path(workdir) / "big.jsonl"
            size = make_big_jsonl(path, profile["upload_mb"])
            times = upload_vs_copy(emu.azure_client(), path, Path(workdir), profile["uploads"])
            for which, values in times.items():
                result.measure(case=f"{size / 1e6:.0f} MB file: {which}", backend="-",
                               median_s=common.median(values), p95_s=common.quantile(values, 0.95),
                               n=len(values), bytes=size,
                               throughput_mib_s=size / 2**20 / common.median(values))
            print(f"  upload {size / 1e6:.0f} MB: median {common.fmt_seconds(common.median(times['upload']))}"
                  f" ({size / 2**20 / common.median(times['upload']):.0f} MiB/s); copy "
                  f"{common.fmt_seconds(common.median(times['copy']))}", flush=True)
            result.ratio(f"upload of {size / 1e6:.0f} MB, files.create / disk copy",
                         common.median(times["upload"]), common.median(times["copy"]),
                         "files.create", "shutil.copyfile",
                         note="lower is better: the emulator's cost over the disk")
    result.finish(args.out_dir, argv=argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
