"""Assignment 02's reference answers (instructor-only): the cookbook's token counting and its
epoch and cost estimate ("Data preparation and analysis for chat model fine-tuning", OpenAI
cookbook), per model (``helpers.tokens`` maps a model to its encoding and its per-example limit).

An example counts as 3 tokens per message (``tokens_per_message``), the tokens of every value of
the message, 1 more per ``name`` key (``tokens_per_name``) and 3 tokens that prime the
assistant's reply; the assistant count is the tokens of the assistant messages' content. Each
value is encoded once for both counts (``example_token_counts``: what ``bench/token_stats.py``
measures). The checks (``autograder.checks.gpt4o_jsonl``) use the short names at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from helpers.tokens import encoding_for, training_token_limit

if TYPE_CHECKING:
    import tiktoken


def _value_tokens(enc, value: Any) -> int:
    """Tokens of one message value: strings are encoded; content parts contribute their text;
    other structured values (``function_call``, ``tool_calls``) their compact JSON, an
    approximation of what the service sees. Numbers (``weight``) and ``None`` count nothing."""
    if isinstance(value, str):
        return len(enc.encode(value, disallowed_special=()))
    if isinstance(value, list) and all(isinstance(p, dict) and "type" in p for p in value):
        return sum(
            len(enc.encode(p["text"], disallowed_special=()))
            for p in value
            if p.get("type") == "text" and isinstance(p.get("text"), str)
        )  # images are billed separately, not in this count
    if isinstance(value, (dict, list)):
        return len(enc.encode(json.dumps(value, separators=(",", ":")), disallowed_special=()))
    return 0


def num_tokens_from_messages(
    messages: Sequence[Mapping[str, Any]],
    model: str = "gpt-4o",
    encoding: str | tiktoken.Encoding | None = None,
    tokens_per_message: int = 3,
    tokens_per_name: int = 1,
) -> int:
    """Tokens of one chat example, the cookbook's way: 3 per message, every string value
    encoded, 1 more per ``name``, 3 to prime the reply."""
    enc = encoding_for(model, encoding)
    return _count(messages, enc, tokens_per_message, tokens_per_name)[0]


def _count(
    messages: Sequence[Mapping[str, Any]], enc, tokens_per_message: int = 3, tokens_per_name: int = 1
) -> tuple[int, int]:
    """``(total, assistant)`` tokens of one example, encoding every value once."""
    total = assistant = 0
    for message in messages:
        total += tokens_per_message
        for key, value in message.items():
            n = _value_tokens(enc, value)
            total += n
            if key == "name":
                total += tokens_per_name
            elif key == "content" and message.get("role") == "assistant":
                assistant += n
    return total + 3, assistant  # every reply is primed with <|start|>assistant<|message|>


def num_assistant_tokens_from_messages(
    messages: Sequence[Mapping[str, Any]],
    model: str = "gpt-4o",
    encoding: str | tiktoken.Encoding | None = None,
) -> int:
    """Tokens of the assistant messages' content: what the model is trained to write."""
    enc = encoding_for(model, encoding)
    return sum(
        _value_tokens(enc, m.get("content"))
        for m in messages
        if m.get("role") == "assistant"
    )


def example_token_counts(
    examples: Iterable[Mapping[str, Any]],
    model: str = "gpt-4o",
    encoding: str | tiktoken.Encoding | None = None,
) -> dict[str, list[int]]:
    """Per-example counts of a list of ``{"messages": [...]}`` examples: ``total_tokens``,
    ``assistant_tokens`` and ``n_messages`` (lists in the examples' order)."""
    enc = encoding_for(model, encoding)
    counts: dict[str, list[int]] = {"total_tokens": [], "assistant_tokens": [], "n_messages": []}
    for example in examples:
        messages = example["messages"]
        total, assistant = _count(messages, enc)  # one encode per value for both counts
        counts["total_tokens"].append(total)
        counts["assistant_tokens"].append(assistant)
        counts["n_messages"].append(len(messages))
    return counts


# The cookbook's defaults for the number of epochs (OpenAI picks epochs so that small data
# sets are seen about 100 times and large ones about 25,000 examples' worth).
TARGET_EPOCHS = 3


MIN_TARGET_EXAMPLES = 100


MAX_TARGET_EXAMPLES = 25_000


MIN_DEFAULT_EPOCHS = 1


MAX_DEFAULT_EPOCHS = 25


def estimate_epochs_and_cost(
    token_counts: Sequence[int],
    model: str = "gpt-4o",
    n_epochs: int | None = None,
    max_tokens_per_example: int | None = None,
) -> dict[str, int]:
    """The cookbook's estimate of the default number of epochs and the billed tokens.

    - epochs: 3, raised to ``100 // n`` (at most 25) when ``3 * n < 100`` examples, lowered to
      ``25000 // n`` (at least 1) when ``3 * n > 25000``; ``n_epochs`` overrides it;
    - ``billing_tokens`` = sum of ``min(limit, tokens)`` over examples, where ``limit`` is the
      model's per-example training limit (``max_tokens_per_example`` overrides it);
    - ``charged_tokens`` = ``n_epochs * billing_tokens``.

    An empty data set trains for 0 epochs and is charged nothing."""
    limit = max_tokens_per_example or training_token_limit(model)
    n = len(token_counts)
    if n_epochs is None:
        if n == 0:
            n_epochs = 0
        elif n * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
            n_epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n)
        elif n * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
            n_epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n)
        else:
            n_epochs = TARGET_EPOCHS
    billing = sum(min(limit, int(t)) for t in token_counts)
    return {"n_epochs": n_epochs, "billing_tokens": billing, "charged_tokens": n_epochs * billing}



# --------------------------------------------------------------------------- the checks' names


def encoding(name: str = "o200k_base"):
    from helpers import assets

    return assets.get_encoding(name)


def token_counts(examples: Sequence[Mapping[str, Any]],
                 model: str = "gpt-4o") -> tuple[list[int], list[int]]:
    """``token_counts`` of the notebook: ``(total_tokens, assistant_tokens)``."""
    counts = example_token_counts(examples, model=model)
    return counts["total_tokens"], counts["assistant_tokens"]


def estimate_training(counts: Sequence[int], max_tokens_per_example: int = 65_536) -> dict[str, int]:
    """``estimate_training`` of the notebook (gpt-4o's limit by default)."""
    return estimate_epochs_and_cost(counts, max_tokens_per_example=max_tokens_per_example)
