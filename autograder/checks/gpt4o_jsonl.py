"""Checks of assignment 02 (``gpt4o_jsonl.ipynb``: the Azure OpenAI fine-tune from JSONL).

Each check decides one test cell, outside the student's kernel: it calls the student's functions
there on inputs the notebook never showed (and with non-default parameters), reads back plain
answers, and compares them with :mod:`autograder.reference.tokens`. The upload and job checks
hand the student's functions an ``openai.AzureOpenAI`` client on a fresh emulator that runs in the
checker (:mod:`autograder.check_emulator`): what reached the service is what counts.

One mistake costs one cell's points: ``token_counts`` is judged with correct counting functions
in place of the student's (its own cell is about putting counts together, not counting).
"""

from __future__ import annotations

import json
import random
from typing import Any

from autograder.checker import CheckFailed, Probe, check, raised
from autograder.reference import tokens as reference

CHECKS: dict = {}
#: What these checks import (the emulator they serve, its training stack, the SDK), for the
#: checker server to import once before it forks a checker per submission
#: (autograder.nbgrader_runner); "module:name" resolves a lazily loaded name.
PRELOAD = ("torch", "peft", "transformers:AutoModelForCausalLM", "transformers:AutoTokenizer",
           "transformers:LlamaConfig", "transformers:LlamaForCausalLM", "uvicorn", "httpx",
           "openai", "fastapi.testclient", "helpers.emulator.app", "helpers.emulator.client",
           "helpers.emulator.training", "helpers.azure", "autograder.check_emulator")

SEED = 105
#: The base model a job must be for: the emulator's versioned gpt-4o (the grading kernel talks
#: to the emulator; helpers.azure chooses the same one there).
EMULATOR_BASE_MODEL = "gpt-4o-2024-08-06"

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



def _fail(message: str) -> None:
    raise CheckFailed(message)


def _show(messages: Any) -> str:
    return json.dumps(messages, ensure_ascii=False)


def _is_int(outcome: dict) -> bool:
    return outcome.get("type") in {"int", "numpy.int64", "numpy.int32", "numpy.int16",
                                   "numpy.uint64", "numpy.uint32"} and isinstance(
        outcome.get("value"), int) and not isinstance(outcome.get("value"), bool)


def _int_result(outcome: dict, shown: str) -> int:
    if raised(outcome):
        _fail(f"{shown} {raised(outcome)}.")
    if not _is_int(outcome):
        _fail(f"{shown} returned {outcome.get('value')!r} (a {outcome.get('type')}); return an "
              "int: a number of tokens is a whole number.")
    return outcome["value"]


# --------------------------------------------------------------------------- token counting

_WORDS = ["token", "epoch", "Lernrate", "Überanpassung", "学習", "微调", "batch", "seed", "😀",
          "validation", "loss", "naïve", "café", "LoRA", "gradient", "x = 3 * y"]


def random_conversations(count: int = 4, seed: int = SEED) -> list[list[dict[str, str]]]:
    """Conversations made up for this check: words of several languages and scripts, optional
    names, one to three turns."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        messages = []
        if rng.random() < 0.7:
            messages.append({"role": "system", "content": " ".join(rng.choices(_WORDS, k=6))})
        for _turn in range(rng.randint(1, 3)):
            user = {"role": "user", "content": " ".join(rng.choices(_WORDS, k=rng.randint(2, 9)))}
            if rng.random() < 0.4:
                user["name"] = rng.choice(["ada", "grace", "linus_t", "mia"])
            messages.append(user)
            messages.append({"role": "assistant",
                             "content": " ".join(rng.choices(_WORDS, k=rng.randint(1, 12)))})
        out.append(messages)
    return out


def _variant_total(messages, encoding="o200k_base", per_message=3, per_name=1, priming=3,
                   encode_name=True, keys="all") -> int:
    """The cookbook count with one knob turned: used to name a student's mistake."""
    enc = reference.encoding(encoding)
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


TOTAL_MISTAKES = (
    (("it matches the count without the final `+ 3` that primes the assistant's reply (every "
     "reply starts with <|start|>assistant<|message|>)"), {"priming": 0}),
    (("it matches a count that encodes the `name` value but forgets the extra `tokens_per_name` "
     "for each message with a `name` key"), {"per_name": 0}),
    (("it matches a count that skips `name` keys altogether: encode every value of the message "
     "(including `name`) and add `tokens_per_name` for each `name`"),
     {"encode_name": False, "per_name": 0}),
    (("it matches the count with cl100k_base, the encoding of gpt-4 and gpt-35-turbo; gpt-4o uses "
     "o200k_base: `tiktoken.get_encoding(\"o200k_base\")`"), {"encoding": "cl100k_base"}),
    (("it matches the count with 4 tokens per message (the old gpt-3.5-turbo-0301 rule); current "
     "models use 3"), {"per_message": 4}),
    (("it matches a count that encodes only `content`: the role (and any `name`) is text the model "
     "reads too, so encode every value of the message"), {"keys": "content", "per_name": 0}),
    ("it matches a count without the tokens per message (tokens_per_message)", {"per_message": 0}),
)


def _assistant_content(messages, encoding="o200k_base", which="all", overhead=0) -> int:
    enc = reference.encoding(encoding)
    chosen = [m for m in messages if which == "every" or m.get("role") == "assistant"]
    if which == "last":
        chosen = chosen[-1:]
    return sum(overhead + len(enc.encode(m["content"])) for m in chosen)


ASSISTANT_MISTAKES = (
    ("it matches the count with cl100k_base; gpt-4o uses o200k_base",
     lambda m: _assistant_content(m, encoding="cl100k_base")),
    (("it matches the tokens of the LAST assistant message only; a multi-turn example trains on "
     "every assistant message, so add them all up"), lambda m: _assistant_content(m, which="last")),
    (("it matches the tokens of every message's content, not only the assistant's: keep the "
     "messages whose role is 'assistant'"), lambda m: _assistant_content(m, which="every")),
    (("it matches a count that adds the per-message overhead and the role: count only the tokens "
     "of the assistant messages' `content`"), lambda m: _assistant_content(m, overhead=4)),
)

VISIBLE_COUNTS = [
    ([{"role": "user", "content": "Hello"}], 8,
     "8 = 3 (per message) + 1 ('user') + 1 ('Hello') + 3 (priming the reply)"),
    ([{"role": "user", "content": "Hello", "name": "ada"}], 10,
     "10 = 8 + 1 (the value 'ada') + 1 (tokens_per_name)"),
]
VISIBLE_CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]


@check("test-token-counting", CHECKS)
def test_token_counting(probe: Probe) -> None:
    """``encoding`` is o200k_base; both counting functions give the cookbook's counts (as ints)
    on unseen conversations, and ``num_tokens_from_messages`` honours its parameters."""
    name = probe.run("e = U.get('encoding')\nRESULT = None if e is None else "
                     "str(getattr(e, 'name', type_name(e)))\n", what="your `encoding`")
    if name is None:
        _fail("`encoding` is not defined: set it to gpt-4o's encoding, "
              "`tiktoken.get_encoding(\"o200k_base\")`.")
    if name != "o200k_base":
        _fail(f"`encoding` is {name}; gpt-4o uses o200k_base: tiktoken.get_encoding('o200k_base').")
    conversations = [m for m, _, _ in VISIBLE_COUNTS] + [m for _, m in CONVERSATIONS] + \
        random_conversations()
    outcomes = probe.call("num_tokens_from_messages", [([m], {}) for m in conversations])
    got = [_int_result(o, f"num_tokens_from_messages({_show(m)[:60]}…)")
           for o, m in zip(outcomes, conversations, strict=True)]
    expected_counts = [reference.num_tokens_from_messages(m) for m in conversations]
    mistakes = [(text, [_variant_total(m, **knobs) for m in conversations])
                for text, knobs in TOTAL_MISTAKES]
    if got != expected_counts and any(counts == got for _, counts in mistakes):
        _diagnose("num_tokens_from_messages", conversations, got, expected_counts, mistakes, "")
    for (messages, expected, why), value in zip(VISIBLE_COUNTS, got, strict=False):
        if value != expected:
            _fail(f"num_tokens_from_messages({_show(messages)}) gave {value}, expected {why}.")
    _diagnose("num_tokens_from_messages", conversations, got, expected_counts, mistakes,
              "recount by hand: 3 per message, every value encoded with o200k_base, 1 more per "
              "`name`, and 3 at the end to prime the reply")
    # The parameters are parameters: other values must change the count accordingly.
    settings = [{"tokens_per_message": 4, "tokens_per_name": 2},
                {"tokens_per_message": 0, "tokens_per_name": 0},
                {"tokens_per_message": 5, "tokens_per_name": 1}]
    cases = [(conversations[i], kw) for i, kw in zip((1, 3, 6), settings, strict=True)]
    outcomes = probe.call("num_tokens_from_messages", [([m], dict(kw)) for m, kw in cases])
    for (messages, kw), outcome in zip(cases, outcomes, strict=True):
        shown = (f"num_tokens_from_messages(messages, tokens_per_message="
                 f"{kw['tokens_per_message']}, tokens_per_name={kw['tokens_per_name']})")
        value = _int_result(outcome, shown)
        expected = reference.num_tokens_from_messages(messages, **kw)
        if value != expected:
            _fail(f"{shown} gave {value}, expected {expected}: use the parameters "
                  "`tokens_per_message` and `tokens_per_name` in the count, not the numbers 3 "
                  f"and 1 (the messages: {_show(messages)}).")
    assistant = [VISIBLE_CHAT] + [m for _, m in CONVERSATIONS] + random_conversations()
    outcomes = probe.call("num_assistant_tokens_from_messages", [([m], {}) for m in assistant])
    got = [_int_result(o, f"num_assistant_tokens_from_messages({_show(m)[:60]}…)")
           for o, m in zip(outcomes, assistant, strict=True)]
    if got[0] != 3:
        _fail(f"num_assistant_tokens_from_messages gave {got[0]} for {_show(VISIBLE_CHAT)}, "
              "expected 3: 'Hello' (1) + 'Hello there' (2), the content of every assistant "
              "message and nothing else.")
    _diagnose("num_assistant_tokens_from_messages", assistant, got,
              [reference.num_assistant_tokens_from_messages(m) for m in assistant],
              [(text, [variant(m) for m in assistant]) for text, variant in ASSISTANT_MISTAKES],
              "count only the o200k_base tokens of the `content` of the messages whose role is "
              "'assistant' (all of them)")


def _diagnose(name: str, conversations: list, got: list[int], expected: list[int],
              mistakes: list[tuple[str, list[int]]], fallback: str) -> None:
    """On a difference, name the known mistake whose counts match the student's on *all*
    conversations (one example alone can be ambiguous)."""
    if got == expected:
        return
    why = next((text for text, counts in mistakes if counts == got), fallback)
    index = next(i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e)
    _fail(f"{name} gave {got[index]} for a conversation the notebook never showed, expected "
          f"{expected[index]}: {why}.\nThe messages: {_show(conversations[index])}")


def _standin(name: str, table: dict[str, int], params: bool) -> str:
    """Kernel code defining a correct counting function (``VALUE``) that answers from ``table``
    (the checker's counts of this check's examples): the student's ``token_counts`` is judged on
    its own, whatever their counting functions do."""
    signature = "messages, tokens_per_message=3, tokens_per_name=1" if params else "messages"
    key = "(messages, tokens_per_message, tokens_per_name)" if params else "messages"
    return (
        "import json as _json\n"
        f"_table_{name} = {table!r}\n"
        f"def VALUE({signature}):\n"
        f"    key = _json.dumps({key}, sort_keys=True, ensure_ascii=False)\n"
        f"    if key not in _table_{name}:\n"
        f"        raise KeyError('{name} got an argument that is not one example\\'s messages')\n"
        f"    return _table_{name}[key]\n"
        f"VALUE.__name__ = {name!r}\n"
    )


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


TOKEN_COUNTS_CALL = r"""
f = S.get("token_counts")
if f is None or not callable(f):
    RESULT = {"missing": None if f is None else type_name(f)}
else:
    out = []
    for examples in INPUT["batches"]:
        o = call(f, [examples])
        try:
            r = f(examples) if "raised" not in o else None
            o["shape"] = None if r is None else {"type": type_name(r), "len": len(r) if hasattr(r, "__len__") else None,
                      "parts": [{"type": type_name(p), "items": [type_name(x) for x in p][:50]} for p in r][:3]
                      if hasattr(r, "__iter__") else None}
        except BaseException as e:
            o["shape"] = None
        out.append(o)
    RESULT = {"outcomes": out}
"""


@check("test-token-counts", CHECKS)
def test_token_counts(probe: Probe) -> None:
    """``token_counts(examples) -> (total_tokens, assistant_tokens)``: two lists of ints, one
    count per example in order, made with the two counting functions (judged with correct ones in
    their place)."""
    batches = [[{"messages": m} for _, m in CONVERSATIONS],
               [{"messages": m} for m in random_conversations(6, seed=SEED + 1)],
               [{"messages": CONVERSATIONS[0][1]}], []]
    all_messages = [e["messages"] for batch in batches for e in batch]
    totals = {_key([m, 3, 1]): reference.num_tokens_from_messages(m) for m in all_messages}
    assistants = {_key(m): reference.num_assistant_tokens_from_messages(m) for m in all_messages}
    rerun = probe.rerun_snippet("token-counts", {
        "num_tokens_from_messages": _standin("num_tokens_from_messages", totals, True),
        "num_assistant_tokens_from_messages": _standin(
            "num_assistant_tokens_from_messages", assistants, False)})
    if rerun is None:  # an instructor's own kernel: judge the function as it is
        result = probe.run("S = U\n" + TOKEN_COUNTS_CALL, {"batches": batches},
                           what="token_counts' results")
    else:
        result = probe.run(rerun + "S = NS\n" + TOKEN_COUNTS_CALL, {"batches": batches},
                           what="token_counts' results")
    if "outcomes" not in result:
        found = result.get("missing")
        _fail("`token_counts` is not defined: write it below the counting functions." if found is
              None else f"`token_counts` should be a function; it is a {found}.")
    for batch, outcome in zip(batches, result["outcomes"], strict=True):
        if raised(outcome):
            _fail(f"token_counts({len(batch)} examples) {raised(outcome)}. Each example is a dict "
                  "with a `messages` list: count `example[\"messages\"]` with "
                  "num_tokens_from_messages and num_assistant_tokens_from_messages.")
        value, shape = outcome.get("value"), outcome.get("shape") or {}
        if not isinstance(value, list) or len(value) != 2:
            _fail(f"token_counts must return a pair (total_tokens, assistant_tokens) of lists; it "
                  f"returned a {outcome.get('type')}: {value!r:.120}")
        expected = reference.token_counts(batch)
        parts = shape.get("parts") or []
        for label, got, want, part in zip(("total_tokens", "assistant_tokens"), value, expected,
                                          parts + [{}] * (2 - len(parts)), strict=True):
            if part.get("type") != "list" or not isinstance(got, list):
                _fail(f"token_counts should return two lists; its {label} is a "
                      f"{part.get('type')}.")
            if any(t not in {"int", "numpy.int64", "numpy.int32"} for t in part.get("items", [])):
                _fail(f"token_counts: {label} should be a list of ints; found "
                      f"{sorted(set(part['items']))}.")
            if len(got) != len(want):
                _fail(f"token_counts gave {len(got)} {label} for {len(batch)} examples: return "
                      "one count per example, in the examples' order.")
            if got != want:
                other = expected[1] if label == "total_tokens" else expected[0]
                hint = ("the two lists are swapped: return (total_tokens, assistant_tokens)"
                        if got == other else
                        "count each example's `messages` with num_tokens_from_messages and "
                        "num_assistant_tokens_from_messages (this check gives them correct "
                        "versions, so a mistake in them costs their own cell only)")
                _fail(f"token_counts gave {label} {got}, expected {want} for "
                      f"{len(batch)} examples the notebook never showed: {hint}.")


# --------------------------------------------------------------------------- the estimate

ESTIMATE_CASES: tuple[tuple[str, list[int]], ...] = (
    ("12 examples", [50 + (7 * i) % 23 for i in range(12)]),
    ("3 examples (fewer than 100/25: epochs are capped at 25)", [120, 80, 95]),
    ("40 examples", [40 + (11 * i) % 31 for i in range(40)]),
    ("60 examples (3 epochs give 180 >= 100)", [30 + i % 9 for i in range(60)]),
    ("9,000 examples (3 epochs exceed 25,000)", [64 + i % 5 for i in range(9_000)]),
    ("30,000 examples (epochs floored at 1)", [20] * 30_000),
    ("10 examples, one longer than the 65,536-token limit", [100] * 9 + [70_000]),
)



@check("test-estimate", CHECKS)
def test_estimate(probe: Probe) -> None:
    """``estimate_training(token_counts, max_tokens_per_example=65536)`` returns a dict of ints
    ``n_epochs``, ``billing_tokens``, ``charged_tokens``, and honours ``max_tokens_per_example``."""
    rng = random.Random(SEED + 2)
    cases = [("ten 50-token examples (the visible test)", [50] * 10, None),
             ("three examples, one over the limit (the visible test)", [100, 100, 70_000], None)]
    cases += [(label, counts, None) for label, counts in ESTIMATE_CASES]
    cases += [("33 examples (3 * 33 < 100)", [rng.randint(20, 400) for _ in range(33)], None),
              ("34 examples (3 * 34 >= 100)", [rng.randint(20, 400) for _ in range(34)], None),
              ("8,334 examples (3 * n > 25,000)", [rng.randint(20, 90) for _ in range(8_334)], None),
              ("12 examples with a 1,000-token limit", [rng.randint(200, 3_000) for _ in range(12)],
               1_000),
              ("5 examples with a 4,096-token limit", [5_000, 100, 4_096, 4_097, 9], 4_096)]
    calls = [([counts], {} if limit is None else {"max_tokens_per_example": limit})
             for _, counts, limit in cases]
    outcomes = probe.call("estimate_training", calls)
    for (label, counts, limit), outcome in zip(cases, outcomes, strict=True):
        if raised(outcome):
            _fail(f"estimate_training {raised(outcome)} for {label}.")
        value = outcome.get("value")
        if not isinstance(value, dict):
            _fail("estimate_training must return a dict with n_epochs, billing_tokens and "
                  f"charged_tokens; it returned a {outcome.get('type')}.")
        expected = reference.estimate_training(counts, **(
            {} if limit is None else {"max_tokens_per_example": limit}))
        missing = [k for k in expected if k not in value]
        if missing:
            _fail(f"estimate_training's dict lacks {missing} (for {label}).")
        for key in ("n_epochs", "billing_tokens", "charged_tokens"):
            found = value[key]
            if isinstance(found, bool) or not isinstance(found, int):
                _fail(f"estimate_training: {key} is {found!r} for {label}; return an int "
                      "(integer division `//`, and `int(...)` around anything that gives a float).")
            if found != expected[key]:
                hints = {
                    "n_epochs": "start from 3 epochs; with n examples, if 3*n < 100 use "
                                "min(25, 100 // n); if 3*n > 25000 use max(1, 25000 // n) "
                                "(integer division)",
                    "billing_tokens": "sum min(max_tokens_per_example, tokens) over the "
                                      "examples: tokens past the per-example limit are cut off and "
                                      "not billed" + (" (use the parameter, not 65536)" if limit
                                                      else ""),
                    "charged_tokens": "charged tokens = n_epochs * billing_tokens",
                }
                _fail(f"estimate_training: {key} is {found} for {label}, expected "
                      f"{expected[key]}: {hints[key]}.")


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



def _jsonl(pairs) -> str:
    """A file's text as Azure asks for it: UTF-8 with BOM (added by the kernel), CRLF, no final
    newline."""
    return "\r\n".join(json.dumps({"messages": [
        {"role": "system", "content": "A terse course assistant."},
        {"role": "user", "content": q}, {"role": "assistant", "content": a}]},
        ensure_ascii=False) for q, a in pairs)


UPLOAD_CALLS = r"""
import gc
import os
import tempfile
import warnings
from pathlib import Path
f = U.get("upload_training_files")
if f is None or not callable(f):
    RESULT = {"missing": None if f is None else type_name(f)}
else:
    folder = Path(tempfile.mkdtemp(prefix="check-uploads-"))
    results = []
    for order in INPUT["orders"]:
        paths = []
        for name in order:
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\xef\xbb\xbf" + INPUT["texts"][name].encode("utf-8"))
            paths.append(path)
        def open_fds():
            found = set()
            for fd in os.listdir("/proc/self/fd"):
                try:
                    target = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    continue
                if target.startswith(str(folder)):
                    found.add(target)
            return found
        before = open_fds()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            outcome = call(f, [client, paths[0], paths[1]])
            gc.collect()
        unclosed = sorted(str(w.message)[:200] for w in caught
                          if issubclass(w.category, ResourceWarning) and str(folder) in str(w.message))
        still_open = sorted(open_fds() - before)
        outcome["unclosed"] = unclosed + still_open
        results.append(outcome)
    RESULT = {"outcomes": results}
"""


@check("test-uploads", CHECKS)
def test_uploads(probe: Probe) -> None:
    """``upload_training_files(client, train_path, valid_path)`` uploads exactly the two files it
    is given, whole, with ``purpose="fine-tune"``, through the client it is given, closes them,
    and returns their ids in order."""
    from autograder.check_emulator import CLIENT_CODE, SocketEmulator

    texts = {"course/professor_train.jsonl": _jsonl(_TRAIN_QA),
             "course/professor_valid.jsonl": _jsonl(_VALID_QA)}
    orders = [["course/professor_train.jsonl", "course/professor_valid.jsonl"],
              ["course/professor_valid.jsonl", "course/professor_train.jsonl"]]
    with SocketEmulator(probe.socket_dir) as emulator:
        result = probe.run(CLIENT_CODE + UPLOAD_CALLS,
                           {"emulator": emulator.inputs, "orders": orders, "texts": texts},
                           what="upload_training_files' results")
        if "outcomes" not in result:
            found = result.get("missing")
            _fail("`upload_training_files` is not defined." if found is None else
                  f"`upload_training_files` should be a function; it is a {found}.")
        uploads = [r for r in emulator.requests if r.method == "POST" and
                   r.path.rstrip("/").endswith("/files")]
        http = emulator.http()
        for number, (order, outcome) in enumerate(zip(orders, result["outcomes"], strict=True)):
            names = [name.rsplit("/", 1)[-1] for name in order]
            shown = f"upload_training_files(client, {names[0]!r}, {names[1]!r})"
            if raised(outcome):
                _fail(f"{shown} {raised(outcome)}.")
            if len(uploads) != 2 * len(orders):
                _fail(f"{len(orders)} calls of upload_training_files made {len(uploads)} uploads "
                      "through the client they were given; each call must upload exactly the two "
                      "files it receives, with `client.files.create(file=..., "
                      "purpose=\"fine-tune\")` on its `client` parameter (not the notebook's own "
                      "client).")
            mine = uploads[2 * number:2 * number + 2]
            for upload in mine:
                form = upload.form or {}
                if form.get("purpose") != "fine-tune":
                    _fail(f"{form.get('filename')} was uploaded with purpose={form.get('purpose')!r}; "
                          "a fine-tuning job only accepts files uploaded with purpose=\"fine-tune\".")
            uploaded = sorted((u.form or {}).get("filename") for u in mine)
            if uploaded != sorted(names):
                _fail(f"{shown} uploaded {uploaded}: upload the two files at the paths it "
                      "receives (its parameters), not the notebook's own data files.")
            value = outcome.get("value")
            if not isinstance(value, list) or len(value) != 2:
                _fail(f"{shown} must return a pair (training_file_id, validation_file_id); it "
                      f"returned {value!r:.120}.")
            for file_id, name, role in zip(value, names, ("first", "second"), strict=True):
                if not (isinstance(file_id, str) and file_id.startswith("file-")):
                    _fail(f"{shown}: the {role} value returned is {file_id!r:.80}; return the id "
                          "string ('file-…') of each uploaded file (the object's .id).")
                stored = http.get(f"/openai/files/{file_id}",
                                  params={"api-version": emulator.api_version}).json()
                if stored.get("filename") != name:
                    _fail(f"{shown}: the {role} id returned is the upload of "
                          f"{stored.get('filename')}, not of {name}: return (training_file_id, "
                          "validation_file_id) in that order, each the id of its own file.")
                size = len(b"\xef\xbb\xbf" + texts[next(k for k in texts if k.endswith(name))]
                           .encode("utf-8"))
                if stored.get("bytes") != size:
                    _fail(f"{name} is {size} bytes but {stored.get('bytes')} were uploaded: open "
                          "the file in binary mode (open(path, \"rb\")) and upload it whole.")
            if outcome.get("unclosed"):
                _fail(f"{shown} left its files open ({outcome['unclosed'][0]}): open each file "
                      "in a `with` block, `with open(path, \"rb\") as f: client.files.create(file=f, "
                      "purpose=\"fine-tune\")`, so it is closed when the upload is done.")


SUBMIT_STUB = r"""
from types import SimpleNamespace
f = U.get("submit_job")
if f is None or not callable(f):
    RESULT = {"missing": None if f is None else type_name(f)}
else:
    out = []
    for training, validation in INPUT["ids"]:
        calls, made = [], []
        def record(*args, **kwargs):
            calls.append(kwargs if not args else {"__positional__": len(args)})
            job = SimpleNamespace(id="ftjob-stub", **kwargs)
            made.append(job)
            return job
        stub = SimpleNamespace(fine_tuning=SimpleNamespace(jobs=SimpleNamespace(create=record)))
        try:
            r = f(stub, training, validation)
            o = {"type": type_name(r), "returned_stub": bool(made) and r is made[-1]}
        except BaseException as e:
            o = {"raised": error(e)}
        o["calls"] = [plain(c) for c in calls]
        out.append(o)
    RESULT = {"outcomes": out}
"""

SUBMIT_REAL = r"""
f = U.get("submit_job")
try:
    r = f(client, INPUT["training"], INPUT["validation"])
    job_id = getattr(r, "id", None)
    RESULT = {"type": type_name(r), "id": job_id if isinstance(job_id, str) else None}
except BaseException as e:
    RESULT = {"raised": error(e)}
"""


def _base_model() -> str:
    """The model a job must be for: the emulator's versioned gpt-4o, which
    ``helpers.azure.choose_base_model`` chooses in the grading kernel (it talks to the emulator,
    and only named environment variables reach it)."""
    from helpers import azure

    return str(getattr(azure, "EMULATOR_FT_MODEL", EMULATOR_BASE_MODEL))


def _judge_request(body: dict, training: str, validation: str, shown: str) -> None:
    model = _base_model()
    problems = []
    if body.get("model") != model:
        problems.append(f"model is {body.get('model')!r}: fine-tune BASE_MODEL ({model!r} here; "
                        "the bare 'gpt-4o' names no fine-tunable version)")
    if body.get("training_file") != training or body.get("validation_file") != validation:
        if body.get("training_file") == validation:
            problems.append("the validation file was given as training_file: pass training_file="
                            "<training file id> and validation_file=<validation file id>")
        else:
            problems.append(f"training_file={body.get('training_file')!r} and validation_file="
                            f"{body.get('validation_file')!r}, expected {training!r} and "
                            f"{validation!r} (the ids submit_job receives)")
    if "seed" not in body:
        problems.append("no seed was sent: pass seed=105 (without it the service picks a random "
                        "seed and the run cannot be reproduced)")
    elif body["seed"] != SEED or isinstance(body["seed"], bool):
        problems.append(f"seed is {body['seed']!r}, expected {SEED}")
    hyper = dict(body.get("hyperparameters") or {})
    method = body.get("method") or {}
    if isinstance(method, dict):
        inner = (method.get(method.get("type") or "supervised") or {})
        hyper.update((inner.get("hyperparameters") or {}) if isinstance(inner, dict) else {})
        if method.get("type") not in (None, "supervised"):
            problems.append(f"method is {method.get('type')!r}: this job is supervised "
                            "fine-tuning (leave method out)")
    set_values = {k: v for k, v in hyper.items() if v not in ("auto", None)}
    if set_values:
        problems.append(f"hyperparameters are set ({set_values}): the task says to leave them on "
                        "\"auto\" and let the service choose (read job.hyperparameters after)")
    extra = sorted(set(body) - {"model", "training_file", "validation_file", "seed",
                                "hyperparameters", "method", "trainingType", "training_type",
                                "suffix", "metadata"})
    if extra:
        problems.append(f"the request also sets {extra}: send only what the task asks for")
    if problems:
        _fail(f"{shown}'s request: " + "; ".join(problems) + ".")


@check("test-submit", CHECKS)
def test_submit(probe: Probe) -> None:
    """``submit_job(client, training_file_id, validation_file_id)`` creates exactly one job
    through the client it is given: the configured base model, the two files in their places,
    seed 105, hyperparameters left on auto; it returns the created job."""
    from autograder.check_emulator import CLIENT_CODE, SocketEmulator

    ids = [("file-training", "file-validation"), ("file-7c1d", "file-92ab")]
    result = probe.run(SUBMIT_STUB, {"ids": ids}, what="submit_job's request (with a stub client)")
    if "outcomes" not in result:
        found = result.get("missing")
        _fail("`submit_job` is not defined." if found is None else
              f"`submit_job` should be a function; it is a {found}.")
    for (training, validation), outcome in zip(ids, result["outcomes"], strict=True):
        shown = f"submit_job(client, {training!r}, {validation!r})"
        calls = outcome.get("calls") or []
        if raised(outcome) and not calls:
            _fail(f"{shown} {raised(outcome)}.")
        if len(calls) != 1:
            _fail(f"{shown} called client.fine_tuning.jobs.create {len(calls)} times; call it "
                  "exactly once, on the `client` it receives.")
        if "__positional__" in calls[0]:
            _fail(f"{shown} passed arguments to jobs.create by position: use keywords "
                  "(model=..., training_file=..., ...), as the SDK requires.")
        _judge_request(calls[0], training, validation, shown)
        if not outcome.get("returned_stub"):
            _fail(f"{shown} must return the job that jobs.create gives back; it returned "
                  f"a {outcome.get('type')}.")
    with SocketEmulator(probe.socket_dir) as emulator:
        http = emulator.http()
        version = {"api-version": emulator.api_version}
        file_ids = []
        for name, pairs in (("train.jsonl", _TRAIN_QA), ("valid.jsonl", _VALID_QA)):
            response = http.post("/openai/files", params=version, data={"purpose": "fine-tune"},
                                 files={"file": (name, ("\ufeff" + _jsonl(pairs)).encode())})
            file_ids.append(response.json()["id"])
        _wait_processed(http, version, file_ids)
        before = len(emulator.requests)
        outcome = probe.run(CLIENT_CODE + SUBMIT_REAL,
                            {"emulator": emulator.inputs, "training": file_ids[0],
                             "validation": file_ids[1]}, what="submit_job's job")
        created = [r for r in emulator.requests[before:] if r.method == "POST" and
                   r.path.rstrip("/").endswith("/fine_tuning/jobs")]
        try:
            shown = "submit_job(client, training_file_id, validation_file_id)"
            if len(created) != 1:
                _fail(f"{shown} created {len(created)} jobs through the client it was given; it "
                      "must call client.fine_tuning.jobs.create exactly once on its `client`.")
            if created[0].status >= 400:
                _fail(f"The service refused the job (HTTP {created[0].status}); the request was "
                      f"{created[0].body}.")
            _judge_request(created[0].body or {}, file_ids[0], file_ids[1], shown)
            if raised(outcome):
                _fail(f"{shown} {raised(outcome)}.")
            if not (isinstance(outcome.get("id"), str) and outcome["id"].startswith("ftjob-")):
                _fail(f"{shown} must return the job the SDK gives back (with .id 'ftjob-…'); it "
                      f"returned a {outcome.get('type')}.")
        finally:
            for job in http.get("/openai/fine_tuning/jobs", params=version).json().get("data", []):
                if job.get("status") not in {"succeeded", "failed", "cancelled"}:
                    http.post(f"/openai/fine_tuning/jobs/{job['id']}/cancel", params=version)


def _wait_processed(http, version: dict, file_ids: list[str], timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = [http.get(f"/openai/files/{i}", params=version).json().get("status")
                    for i in file_ids]
        if all(s in ("processed", "uploaded") for s in statuses):
            return
        if any(s == "error" for s in statuses):
            raise RuntimeError(f"the check's own files were refused: {statuses}")
        time.sleep(0.1)
