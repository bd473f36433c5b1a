"""The hidden checks of assignment 02 (``autograder.gpt4o``): they pass the source notebook's
solutions and fail plausible wrong ones with a message that names the mistake.

The solutions are executed from the source notebook itself, so these tests follow it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder import gpt4o
from autograder.gpt4o import CheckFailed

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "source" / "02-gpt4o-jsonl" / "gpt4o_jsonl.ipynb"


@pytest.fixture(scope="module")
def solution() -> dict:
    """The namespace the source notebook's solution cells define."""
    import tiktoken

    from helpers import assets

    assets.ensure_tiktoken_encodings()
    namespace: dict = {"tiktoken": tiktoken}
    notebook = json.loads(SOURCE.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and meta.get("solution"):
            code = compile("".join(cell["source"]), meta["grade_id"], "exec")
            exec(code, namespace)  # noqa: S102 - the notebook is our own source
    return namespace


def _encoding(name: str):
    from helpers import assets

    return assets.get_encoding(name)


def _counter(*, encoding="o200k_base", priming=3, per_name=1, encode_name=True):
    """The lab's counting function with one thing done wrong."""
    enc = _encoding(encoding)

    def num_tokens_from_messages(messages, tokens_per_message=3):
        total = 0
        for message in messages:
            total += tokens_per_message
            for key, value in message.items():
                if key == "name" and not encode_name:
                    continue
                total += len(enc.encode(value))
                if key == "name":
                    total += per_name
        return total + priming

    return num_tokens_from_messages


def _assistant_counter(*, encoding="o200k_base", last_only=False):
    enc = _encoding(encoding)

    def num_assistant_tokens_from_messages(messages):
        chosen = [m for m in messages if m["role"] == "assistant"]
        if last_only:
            chosen = chosen[-1:]
        return sum(len(enc.encode(m["content"])) for m in chosen)

    return num_assistant_tokens_from_messages


# --------------------------------------------------------------------------- token counting


def test_token_counting_passes_the_solution(solution):
    gpt4o.check_token_counting(
        solution["num_tokens_from_messages"], solution["num_assistant_tokens_from_messages"]
    )


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        (_counter(priming=0), "primes the assistant's reply"),
        (_counter(per_name=0), "forgets the extra `tokens_per_name`"),
        (_counter(encode_name=False, per_name=0), "skips `name` keys"),
        (_counter(encoding="cl100k_base"), "gpt-4o uses o200k_base"),
    ],
    ids=["no-reply-priming", "name-without-extra-token", "ignores-name", "cl100k"],
)
def test_token_counting_names_the_mistake(solution, wrong, says):
    with pytest.raises(CheckFailed, match="num_tokens_from_messages gave") as failure:
        gpt4o.check_token_counting(wrong, solution["num_assistant_tokens_from_messages"])
    assert says in str(failure.value)
    assert "The messages:" in str(failure.value)  # the student sees the example


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        (_assistant_counter(encoding="cl100k_base"), "o200k_base"),
        (_assistant_counter(last_only=True), "LAST assistant message"),
    ],
    ids=["cl100k", "last-message-only"],
)
def test_assistant_counting_names_the_mistake(solution, wrong, says):
    with pytest.raises(CheckFailed, match="num_assistant_tokens_from_messages gave") as failure:
        gpt4o.check_token_counting(solution["num_tokens_from_messages"], wrong)
    assert says in str(failure.value)


def test_a_crashing_or_non_int_function_fails_readably(solution):
    def crashes(messages):
        return len(messages[0]["missing"])

    with pytest.raises(CheckFailed, match="raised KeyError"):
        gpt4o.check_token_counting(crashes, solution["num_assistant_tokens_from_messages"])
    with pytest.raises(CheckFailed, match="return an int"):
        gpt4o.check_token_counting(lambda m: "12", solution["num_assistant_tokens_from_messages"])


def test_token_counts(solution):
    gpt4o.check_token_counts(solution["token_counts"])
    count, assistant = (
        solution["num_tokens_from_messages"],
        solution["num_assistant_tokens_from_messages"],
    )

    def swapped(examples):
        return (
            [assistant(e["messages"]) for e in examples],
            [count(e["messages"]) for e in examples],
        )

    with pytest.raises(CheckFailed, match="swapped"):
        gpt4o.check_token_counts(swapped)

    def first_only(examples):
        return [count(examples[0]["messages"])], [assistant(examples[0]["messages"])]

    with pytest.raises(CheckFailed, match="one count per example"):
        gpt4o.check_token_counts(first_only)

    with pytest.raises(CheckFailed, match="must return a pair"):
        gpt4o.check_token_counts(lambda examples: {"total": [], "assistant": []})


# --------------------------------------------------------------------------- the estimate


def test_estimate_passes_the_solution(solution):
    gpt4o.check_estimate(solution["estimate_training"])


def _always_three(counts, max_tokens_per_example=65536):
    billing = sum(min(max_tokens_per_example, c) for c in counts)
    return {"n_epochs": 3, "billing_tokens": billing, "charged_tokens": 3 * billing}


def _uncapped_billing(counts, max_tokens_per_example=65536):
    n = len(counts)
    epochs = min(25, 100 // n) if 3 * n < 100 else max(1, 25000 // n) if 3 * n > 25000 else 3
    return {
        "n_epochs": epochs,
        "billing_tokens": sum(counts),
        "charged_tokens": epochs * sum(counts),
    }


def _no_epoch_cap(counts, max_tokens_per_example=65536):
    n = len(counts)
    epochs = 100 // n if 3 * n < 100 else 25000 // n if 3 * n > 25000 else 3
    billing = sum(min(max_tokens_per_example, c) for c in counts)
    return {"n_epochs": epochs, "billing_tokens": billing, "charged_tokens": epochs * billing}


@pytest.mark.parametrize(
    ("wrong", "key"),
    [
        (_always_three, "n_epochs"),
        (_uncapped_billing, "billing_tokens"),
        (_no_epoch_cap, "n_epochs"),
        (lambda counts: {"n_epochs": 3}, "lacks"),
    ],
    ids=["always-3-epochs", "no-limit-on-billing", "no-25-epoch-cap", "missing-keys"],
)
def test_estimate_fails_wrong_rules(wrong, key):
    with pytest.raises(CheckFailed, match="estimate_training") as failure:
        gpt4o.check_estimate(wrong)
    assert key in str(failure.value)


# --------------------------------------------------------------------------- uploads and the job
# These run the student's code against a fresh in-process emulator and read its request log.


def test_uploads_pass_the_solution(solution):
    gpt4o.check_uploads(solution["upload_training_files"])


def _upload(client, path, purpose="fine-tune"):
    with open(path, "rb") as handle:
        return client.files.create(file=handle, purpose=purpose)


def _assistants_purpose(client, train_path, valid_path):
    return _upload(client, train_path, "assistants").id, _upload(client, valid_path).id


def _validation_as_training(client, train_path, valid_path):
    return _upload(client, valid_path).id, _upload(client, train_path).id


def _training_twice(client, train_path, valid_path):
    return _upload(client, train_path).id, _upload(client, train_path).id


def _objects_not_ids(client, train_path, valid_path):
    return _upload(client, train_path), _upload(client, valid_path)


def _text_mode(client, train_path, valid_path):
    ids = []
    for path in (train_path, valid_path):
        with open(path, encoding="utf-8") as handle:  # text: the BOM is dropped on the way
            data = handle.read().encode("utf-8")
        ids.append(client.files.create(file=(Path(path).name, data), purpose="fine-tune").id)
    return tuple(ids)


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        (_assistants_purpose, "purpose='assistants'"),
        (_validation_as_training, "is the upload of professor_valid.jsonl"),
        (_training_twice, "expected one of each"),
        (_objects_not_ids, "two id strings"),
        (_text_mode, "binary mode"),
    ],
    ids=["purpose-assistants", "validation-as-training", "training-twice", "objects", "text"],
)
def test_uploads_fail_wrong_code(wrong, says):
    with pytest.raises(CheckFailed) as failure:
        gpt4o.check_uploads(wrong)
    assert says in str(failure.value)


def test_job_submission_passes_the_solution(solution):
    gpt4o.check_job_submission(solution["submit_job"])


def _job(**overrides):
    def submit_job(client, training_file_id, validation_file_id):
        kwargs = {
            "model": "gpt-4o",
            "training_file": training_file_id,
            "validation_file": validation_file_id,
            "seed": 105,
        } | overrides
        return client.fine_tuning.jobs.create(**{k: v for k, v in kwargs.items() if v != "-"})

    return submit_job


def _swapped_files(client, training_file_id, validation_file_id):
    return _job()(client, validation_file_id, training_file_id)


def _twice(client, training_file_id, validation_file_id):
    _job()(client, training_file_id, validation_file_id)
    return _job()(client, training_file_id, validation_file_id)


def _returns_id(client, training_file_id, validation_file_id):
    return _job()(client, training_file_id, validation_file_id).id


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        (_job(seed="-"), "no seed was sent"),
        (_job(seed=42), "seed is 42"),
        (_swapped_files, "the validation file was given as training_file"),
        (_job(model="gpt-35-turbo"), "model is 'gpt-35-turbo'"),
        (_twice, "created 2 jobs"),
        (_returns_id, "must return the job"),
    ],
    ids=["no-seed", "other-seed", "swapped-files", "other-model", "two-jobs", "returns-id"],
)
def test_job_submission_fails_wrong_code(wrong, says):
    with pytest.raises(CheckFailed) as failure:
        gpt4o.check_job_submission(wrong)
    assert says in str(failure.value)


def test_checks_write_nothing_to_stderr(solution, capsys):
    # nbgrader scores a test cell zero when anything reaches stderr: the checks' emulators
    # (worker logs, progress bars, library warnings) must stay silent, even when jobs fail.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("always")  # as in a fresh kernel: warnings would be shown
        gpt4o.check_uploads(solution["upload_training_files"])
        gpt4o.check_job_submission(solution["submit_job"])
        with pytest.raises(CheckFailed):
            gpt4o.check_job_submission(_job(seed="-"))
    assert capsys.readouterr().err == ""
