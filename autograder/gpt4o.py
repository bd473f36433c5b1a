"""Hidden checks of assignment 02 (``source/02-gpt4o-jsonl``): the Azure OpenAI gpt-4o fine-tune.

Each ``check_*`` function takes the student's function(s), runs them on data the notebook never
showed, compares with the reference in ``helpers`` and raises :class:`CheckFailed` (an
``AssertionError``, so nbgrader scores the cell zero) with a message that says what was
expected, what was found and, where a known mistake explains the difference, which one. A
hidden test cell is a single call::

    autograder.gpt4o.check_token_counting(num_tokens_from_messages,
                                           num_assistant_tokens_from_messages)

The job-submission checks run the student's code against a fresh in-process Azure OpenAI
emulator (``helpers.emulator``) and read its request log: what reached the "service" is what
counts, whatever the code looks like.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

MODEL = "gpt-4o"
SEED = 105

SYSTEM = "Professor Token answers questions about fine-tuning in one short paragraph."

#: Conversations the notebook never shows: ``name`` keys, several turns, no system message,
#: and non-English text, where o200k_base and cl100k_base count differently.
CONVERSATIONS: tuple[tuple[str, list[dict[str, str]]], ...] = (
    (
        "a three-message example",
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Why does a validation set matter?"},
            {
                "role": "assistant",
                "content": "It shows whether the model learned the task or the training set "
                "by heart: a validation loss that rises while training loss falls means "
                "overfitting.",
            },
        ],
    ),
    (
        "an example with `name` keys",
        [
            {"role": "system", "content": SYSTEM, "name": "course_bot"},
            {"role": "user", "content": "Is LoRA cheaper than full fine-tuning?", "name": "ada"},
            {
                "role": "assistant",
                "content": "Yes: it trains two small low-rank matrices per layer instead of "
                "every weight.",
                "name": "professor_token",
            },
        ],
    ),
    (
        "a multi-turn example (two assistant replies)",
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "What is an epoch?"},
            {"role": "assistant", "content": "One pass over every training example."},
            {"role": "user", "content": "And a step?"},
            {"role": "assistant", "content": "One update of the weights, after one batch."},
        ],
    ),
    (
        "an example in German and Japanese",
        [
            {"role": "system", "content": "Antworte kurz und freundlich auf Deutsch."},
            {"role": "user", "content": "Wie viele Epochen sind für 50 Beispiele üblich?"},
            {
                "role": "assistant",
                "content": "Meistens zwei bis drei Epochen; überwache den Validierungsverlust. "
                "学習率は小さめに。",
            },
        ],
    ),
    (
        "an example without a system message",
        [
            {"role": "user", "content": "Say 'tokens' three times.", "name": "grace"},
            {"role": "assistant", "content": "tokens tokens tokens"},
        ],
    ),
)


class CheckFailed(AssertionError):
    """A hidden check failed; the message tells the student what to fix."""


# --------------------------------------------------------------------------- helpers


def _encoding(name: str):
    from helpers import assets

    return assets.get_encoding(name)


def _variant_total(
    messages: Sequence[Mapping[str, Any]],
    encoding: str = "o200k_base",
    per_message: int = 3,
    per_name: int = 1,
    priming: int = 3,
    encode_name: bool = True,
    keys: str = "all",
) -> int:
    """The cookbook count with one knob turned: used to name a student's mistake."""
    enc = _encoding(encoding)
    total = 0
    for message in messages:
        total += per_message
        for key, value in message.items():
            if keys == "content" and key != "content":
                continue
            if key == "name" and not encode_name:
                continue
            total += len(enc.encode(value))
            if key == "name":
                total += per_name
    return total + priming


TOTAL_MISTAKES: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        (
            "it matches the count without the final `+ 3` that primes the assistant's reply "
            "(every reply starts with <|start|>assistant<|message|>)"
        ),
        {"priming": 0},
    ),
    (
        (
            "it matches a count that encodes the `name` value but forgets the extra "
            "`tokens_per_name` (1) for each message with a `name` key"
        ),
        {"per_name": 0},
    ),
    (
        (
            "it matches a count that skips `name` keys altogether: encode every value of the "
            "message (including `name`) and add `tokens_per_name` (1) for each `name`"
        ),
        {"encode_name": False, "per_name": 0},
    ),
    (
        (
            "it matches the count with cl100k_base, the encoding of gpt-4 and gpt-35-turbo; "
            'gpt-4o uses o200k_base: `tiktoken.get_encoding("o200k_base")`'
        ),
        {"encoding": "cl100k_base"},
    ),
    (
        (
            "it matches the count with 4 tokens per message (the old gpt-3.5-turbo-0301 rule); "
            "current models use 3"
        ),
        {"per_message": 4},
    ),
    (
        (
            "it matches a count that encodes only `content`: the role (and any `name`) is text "
            "the model reads too, so encode every value of the message"
        ),
        {"keys": "content", "per_name": 0},
    ),
    (
        "it matches a count without the 3 tokens per message (tokens_per_message)",
        {"per_message": 0},
    ),
)


def _assistant_content(messages, encoding="o200k_base", which="all", overhead=0) -> int:
    enc = _encoding(encoding)
    chosen = [m for m in messages if which == "every" or m.get("role") == "assistant"]
    if which == "last":
        chosen = chosen[-1:]
    return sum(overhead + len(enc.encode(m["content"])) for m in chosen)


ASSISTANT_MISTAKES: tuple[tuple[str, Callable[[list[dict]], int]], ...] = (
    (
        "it matches the count with cl100k_base; gpt-4o uses o200k_base",
        lambda messages: _assistant_content(messages, encoding="cl100k_base"),
    ),
    (
        (
            "it matches the tokens of the LAST assistant message only; a multi-turn example "
            "trains on every assistant message, so add them all up"
        ),
        lambda messages: _assistant_content(messages, which="last"),
    ),
    (
        (
            "it matches the tokens of every message's content, not only the assistant's: keep "
            "the messages whose role is 'assistant'"
        ),
        lambda messages: _assistant_content(messages, which="every"),
    ),
    (
        (
            "it matches a count that adds the per-message overhead and the role: count only the "
            "tokens of the assistant messages' `content`"
        ),
        lambda messages: _assistant_content(messages, overhead=4),
    ),
)


def _call(function: Callable, label: str, *args: Any) -> Any:
    try:
        return function(*args)
    except Exception as exc:
        raise CheckFailed(
            f"{label} raised {type(exc).__name__}: {exc}. It must work on any list of chat "
            "messages (several turns, optional `name` keys, any language)."
        ) from exc


def _check_int(value: Any, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np

            if isinstance(value, np.integer):
                return int(value)
        except ImportError:  # pragma: no cover - numpy comes with pandas
            pass
        raise CheckFailed(f"{label} returned {value!r} ({type(value).__name__}); return an int.")
    return value


def _show(messages: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(list(messages), ensure_ascii=False)


# --------------------------------------------------------------------------- token counting


def _diagnose(
    name: str,
    function: Callable[[list[dict]], int],
    reference: Callable[[list[dict]], int],
    mistakes: Sequence[tuple[str, Callable[[list[dict]], int]]],
    fallback: str,
) -> None:
    """Run ``function`` on every conversation; on a difference, name the known mistake whose
    counts match the student's on *all* conversations (one example alone can be ambiguous)."""
    got = [
        _check_int(_call(function, name, copy.deepcopy(messages)), name)
        for _, messages in CONVERSATIONS
    ]
    expected = [reference(messages) for _, messages in CONVERSATIONS]
    if got == expected:
        return
    why = next(
        (
            text
            for text, variant in mistakes
            if [variant(messages) for _, messages in CONVERSATIONS] == got
        ),
        fallback,
    )
    index = next(i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e)
    label, messages = CONVERSATIONS[index]
    raise CheckFailed(
        f"{name} gave {got[index]} for {label}, expected {expected[index]}: {why}.\n"
        f"The messages: {_show(messages)}"
    )


def check_token_counting(
    num_tokens_from_messages: Callable[[list[dict]], int],
    num_assistant_tokens_from_messages: Callable[[list[dict]], int],
) -> None:
    """Both counting functions against ``helpers.tokens`` (gpt-4o, the cookbook's accounting)
    on :data:`CONVERSATIONS`."""
    from helpers import tokens

    _diagnose(
        "num_tokens_from_messages",
        num_tokens_from_messages,
        lambda messages: tokens.num_tokens_from_messages(messages, model=MODEL),
        [
            (text, lambda messages, knobs=knobs: _variant_total(messages, **knobs))
            for text, knobs in TOTAL_MISTAKES
        ],
        "recount by hand: 3 per message, every value encoded with o200k_base, 1 more per "
        "`name`, and 3 at the end to prime the reply",
    )
    _diagnose(
        "num_assistant_tokens_from_messages",
        num_assistant_tokens_from_messages,
        lambda messages: tokens.num_assistant_tokens_from_messages(messages, model=MODEL),
        ASSISTANT_MISTAKES,
        "count only the o200k_base tokens of the `content` of the messages whose role is "
        "'assistant' (all of them)",
    )


def _examples() -> list[dict[str, Any]]:
    return [{"messages": copy.deepcopy(messages)} for _, messages in CONVERSATIONS]


def check_token_counts(token_counts: Callable[[list[dict]], tuple[list[int], list[int]]]) -> None:
    """``token_counts(examples) -> (total_tokens, assistant_tokens)``: one count per example,
    in order, as ``helpers.tokens.example_token_counts`` gives them."""
    from helpers import tokens

    examples = _examples()
    reference = tokens.example_token_counts(examples, model=MODEL)
    result = _call(token_counts, "token_counts", copy.deepcopy(examples))
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(
            f"token_counts must return a pair (total_tokens, assistant_tokens) of lists; it "
            f"returned {type(result).__name__}: {result!r:.200}"
        )
    for (name, got), key in zip(
        (("total_tokens", result[0]), ("assistant_tokens", result[1])),
        ("total_tokens", "assistant_tokens"),
        strict=True,
    ):
        expected = reference[key]
        try:
            got = [_check_int(v, f"token_counts (in {name})") for v in got]
        except TypeError as exc:
            raise CheckFailed(f"token_counts: {name} must be a list of ints, got {got!r}") from exc
        if len(got) != len(expected):
            raise CheckFailed(
                f"token_counts gave {len(got)} {name} for {len(examples)} examples: return "
                "one count per example, in the examples' order."
            )
        if got != expected:
            swapped = reference["assistant_tokens" if key == "total_tokens" else "total_tokens"]
            hint = (
                "the two lists are swapped: return (total_tokens, assistant_tokens)"
                if got == swapped
                else "use num_tokens_from_messages / num_assistant_tokens_from_messages on each "
                "example's `messages` (check_token_counting tells you if those are wrong)"
            )
            raise CheckFailed(
                f"token_counts gave {name} {got}, expected {expected} for 5 examples the "
                f"notebook never showed: {hint}."
            )


# --------------------------------------------------------------------------- the estimate

#: (what the case is, token counts) for the estimate check.
ESTIMATE_CASES: tuple[tuple[str, list[int]], ...] = (
    ("12 examples", [50 + (7 * i) % 23 for i in range(12)]),
    ("3 examples (fewer than 100/25: epochs are capped at 25)", [120, 80, 95]),
    ("40 examples", [40 + (11 * i) % 31 for i in range(40)]),
    ("60 examples (3 epochs give 180 >= 100)", [30 + i % 9 for i in range(60)]),
    ("9,000 examples (3 epochs exceed 25,000)", [64 + i % 5 for i in range(9_000)]),
    ("30,000 examples (epochs floored at 1)", [20] * 30_000),
    ("10 examples, one longer than the 65,536-token limit", [100] * 9 + [70_000]),
)


def check_estimate(estimate_training: Callable[..., Mapping[str, int]]) -> None:
    """``estimate_training(token_counts) -> {"n_epochs", "billing_tokens", "charged_tokens"}``
    against ``helpers.tokens.estimate_epochs_and_cost`` for gpt-4o."""
    from helpers import tokens

    for label, counts in ESTIMATE_CASES:
        expected = tokens.estimate_epochs_and_cost(counts, model=MODEL)
        got = _call(estimate_training, "estimate_training", list(counts))
        if not isinstance(got, Mapping):
            raise CheckFailed(
                f"estimate_training must return a dict with n_epochs, billing_tokens and "
                f"charged_tokens; it returned {type(got).__name__}"
            )
        missing = [k for k in expected if k not in got]
        if missing:
            raise CheckFailed(f"estimate_training's dict lacks {missing} (for {label}).")
        for key in ("n_epochs", "billing_tokens", "charged_tokens"):
            value = got[key]
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if value != expected[key]:
                hints = {
                    "n_epochs": (
                        "start from 3 epochs; with n examples, if 3*n < 100 use "
                        "min(25, 100 // n); if 3*n > 25000 use max(1, 25000 // n) "
                        "(integer division)"
                    ),
                    "billing_tokens": (
                        "sum min(65536, tokens) over the examples: tokens past the per-example "
                        "limit are cut off and not billed"
                    ),
                    "charged_tokens": "charged tokens = n_epochs * billing_tokens",
                }
                raise CheckFailed(
                    f"estimate_training: {key} is {got[key]!r} for {label}, expected "
                    f"{expected[key]}: {hints[key]}."
                )


# --------------------------------------------------------------------------- uploads and the job

_TRAIN_QA = [
    ("What does a tokenizer do?", "It splits text into the tokens a model reads."),
    ("What is a learning rate?", "The size of each weight update."),
    ("Why shuffle training data?", "So batches are not ordered by topic or length."),
    ("What is overfitting?", "Learning the training set instead of the task."),
    ("What is a batch?", "The examples used for one weight update."),
    ("What does LoRA train?", "Small low-rank matrices beside frozen weights."),
    ("What is a checkpoint?", "The model's weights saved at one point of training."),
    ("Why a validation file?", "To measure the model on examples it did not train on."),
    ("What does the seed fix?", "The random choices: shuffling, initialisation, sampling."),
    ("What is a loss?", "A number that is low when predictions match the data."),
    ("What is an epoch?", "One pass over the whole training set."),
    ("What is JSONL?", "One JSON object per line."),
]
_VALID_QA = [
    ("What is a token?", "A piece of text: a word, part of a word or a symbol."),
    ("What is a prompt?", "The messages the model continues."),
    ("What is inference?", "Using a trained model to produce outputs."),
    ("What is a base model?", "The model before your fine-tune."),
    ("Why deploy a model?", "To serve requests with it."),
    ("What is temperature?", "How random sampling is: 0 is nearly deterministic."),
    ("What is a system message?", "The instruction that frames the conversation."),
    ("What is a fine-tune?", "Further training of a model on your own examples."),
    ("What is accuracy?", "The share of predictions that are right."),
    ("What is a gradient?", "The direction that increases the loss fastest."),
]


def _write_jsonl(path: Path, pairs: Sequence[tuple[str, str]]) -> Path:
    """A file shaped as Azure asks: UTF-8 with BOM, CRLF, no final newline."""
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "A terse course assistant."},
                    {"role": "user", "content": q},
                    {"role": "assistant", "content": a},
                ]
            },
            ensure_ascii=False,
        )
        for q, a in pairs
    ]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8"))
    return path


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the check's emulator silent: nbgrader scores a test cell zero when anything reaches
    stderr, and the emulator's worker thread may log (a job failing or being cancelled) or a
    library may warn while the check runs."""
    logger = logging.getLogger("helpers.emulator")
    saved = logger.handlers[:], logger.propagate
    logger.handlers, logger.propagate = [logging.NullHandler()], False
    try:
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.handlers, logger.propagate = saved


def _fresh_emulator(folder: Path):
    from helpers.emulator.client import InProcessEmulator

    # The checks read the request log only: the tiny model whatever the mode, so a job the
    # student's code starts costs seconds (it is cancelled at once anyway).
    return InProcessEmulator(state_dir=folder / "emulator", backend="tiny")


def _uploads(requests: Sequence[Any]) -> list[Any]:
    return [r for r in requests if r.method == "POST" and r.path.rstrip("/").endswith("/files")]


def _job_creations(requests: Sequence[Any]) -> list[Any]:
    return [
        r
        for r in requests
        if r.method == "POST" and r.path.rstrip("/").endswith("/fine_tuning/jobs")
    ]


def _as_file_id(value: Any, label: str) -> str:
    if isinstance(value, str) and value.startswith("file-"):
        return value
    hint = " (the object's .id)" if hasattr(value, "id") else ""
    raise CheckFailed(
        f"upload_training_files must return (training_file_id, validation_file_id), two id "
        f"strings like 'file-…'; the {label} was {value!r:.120}{hint}."
    )


def check_uploads(
    upload_training_files: Callable[[Any, Path, Path], tuple[str, str]],
) -> None:
    """``upload_training_files(client, train_path, valid_path) -> (train_id, valid_id)`` against
    a fresh emulator: exactly two uploads, both ``purpose="fine-tune"``, each file's complete
    bytes, and the ids returned in the right order."""
    with tempfile.TemporaryDirectory(prefix="check-uploads-") as tmp:
        folder = Path(tmp)
        train = _write_jsonl(folder / "professor_train.jsonl", _TRAIN_QA)
        valid = _write_jsonl(folder / "professor_valid.jsonl", _VALID_QA)
        with _quiet(), _fresh_emulator(folder) as emulator:
            client = emulator.azure_client()
            result = _call(upload_training_files, "upload_training_files", client, train, valid)
            uploads = _uploads(emulator.requests)
            if len(uploads) != 2:
                raise CheckFailed(
                    f"upload_training_files sent {len(uploads)} uploads (POST /files); it must "
                    "upload exactly two files: the training file, then the validation file."
                )
            for upload in uploads:
                form = upload.form or {}
                if form.get("purpose") != "fine-tune":
                    raise CheckFailed(
                        f"{form.get('filename')} was uploaded with purpose="
                        f"{form.get('purpose')!r}; a fine-tuning job only accepts files "
                        'uploaded with purpose="fine-tune".'
                    )
            names = sorted((u.form or {}).get("filename") for u in uploads)
            if names != sorted([train.name, valid.name]):
                raise CheckFailed(
                    f"The uploads were {names}; expected one of each: {train.name} (training) "
                    f"and {valid.name} (validation). Use the two paths you are given."
                )
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise CheckFailed(
                    "upload_training_files must return a pair (training_file_id, "
                    f"validation_file_id); it returned {result!r:.120}."
                )
            train_id = _as_file_id(result[0], "first value")
            valid_id = _as_file_id(result[1], "second value")
            for file_id, path, role in ((train_id, train, "first"), (valid_id, valid, "second")):
                stored = client.files.retrieve(file_id)
                if stored.filename != path.name:
                    raise CheckFailed(
                        f"The {role} id returned, {file_id}, is the upload of {stored.filename}, "
                        f"not of {path.name}: return (training_file_id, validation_file_id) in "
                        "that order, each the id of its own file."
                    )
                if stored.bytes != path.stat().st_size:
                    raise CheckFailed(
                        f"{path.name} is {path.stat().st_size} bytes but {stored.bytes} were "
                        'uploaded: open the file in binary mode (open(path, "rb")) and upload '
                        "it whole."
                    )


def check_job_submission(submit_job: Callable[[Any, str, str], Any]) -> None:
    """``submit_job(client, training_file_id, validation_file_id) -> job`` against a fresh
    emulator: one job creation, model ``gpt-4o``, the two files in their places, ``seed=105``,
    and the created job returned."""
    with tempfile.TemporaryDirectory(prefix="check-job-") as tmp:
        folder = Path(tmp)
        train = _write_jsonl(folder / "train.jsonl", _TRAIN_QA)
        valid = _write_jsonl(folder / "valid.jsonl", _VALID_QA)
        with _quiet(), _fresh_emulator(folder) as emulator:
            client = emulator.azure_client()
            with train.open("rb") as t, valid.open("rb") as v:
                train_id = client.files.create(file=t, purpose="fine-tune").id
                valid_id = client.files.create(file=v, purpose="fine-tune").id
            before = len(emulator.requests)
            job = _call(submit_job, "submit_job", client, train_id, valid_id)
            created = _job_creations(emulator.requests[before:])
            try:
                _check_submission(created, job, train_id, valid_id)
            finally:
                for request in created:  # stop training: the check needs the request only
                    if request.status < 400:
                        _cancel_all(client)
                        break


def _cancel_all(client: Any) -> None:
    from openai import APIError

    for job in client.fine_tuning.jobs.list().data:
        if job.status not in {"succeeded", "failed", "cancelled"}:
            try:
                client.fine_tuning.jobs.cancel(job.id)
            except APIError:
                pass


def _check_submission(created: list[Any], job: Any, train_id: str, valid_id: str) -> None:
    if len(created) != 1:
        raise CheckFailed(
            f"submit_job created {len(created)} jobs (POST /fine_tuning/jobs); it must call "
            "client.fine_tuning.jobs.create exactly once."
        )
    request = created[0]
    body = request.body or {}
    if request.status >= 400:
        raise CheckFailed(
            f"The service refused the job (HTTP {request.status}); the request was {body}."
        )
    problems = []
    if body.get("model") != MODEL:
        problems.append(f'model is {body.get("model")!r}: fine-tune model="gpt-4o"')
    if body.get("training_file") != train_id or body.get("validation_file") != valid_id:
        if body.get("training_file") == valid_id:
            problems.append(
                "the validation file was given as training_file: pass training_file="
                "<training file id> and validation_file=<validation file id>"
            )
        else:
            problems.append(
                f"training_file={body.get('training_file')!r} and validation_file="
                f"{body.get('validation_file')!r}, expected {train_id!r} and {valid_id!r} "
                "(the ids submit_job received)"
            )
    if "seed" not in body:
        problems.append(
            "no seed was sent: pass seed=105 (without it the service picks a random seed "
            "and the run cannot be reproduced)"
        )
    elif body["seed"] != SEED:
        problems.append(f"seed is {body['seed']!r}, expected {SEED}")
    if problems:
        raise CheckFailed("submit_job's request: " + "; ".join(problems) + ".")
    job_id = getattr(job, "id", None)
    if not (isinstance(job_id, str) and job_id.startswith("ftjob-")):
        raise CheckFailed(
            f"submit_job must return the job the SDK gives back (with .id 'ftjob-…'); it "
            f"returned {job!r:.120}."
        )
