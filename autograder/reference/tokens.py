"""Assignment 02's reference answers: the cookbook's token counting and its epoch and cost
estimate ("Data preparation and analysis for chat model fine-tuning", OpenAI cookbook).

An example counts as 3 tokens per message (``tokens_per_message``), the tokens of every string
value of the message, 1 more per ``name`` key (``tokens_per_name``) and 3 tokens that prime the
assistant's reply; the assistant count is the tokens of the assistant messages' content.
Encodings load offline through :mod:`helpers.assets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def encoding(name: str = "o200k_base"):
    from helpers import assets

    return assets.get_encoding(name)


def num_tokens_from_messages(messages: Sequence[Mapping[str, Any]], encoding_name: str = "o200k_base",
                             tokens_per_message: int = 3, tokens_per_name: int = 1) -> int:
    enc = encoding(encoding_name)
    total = 0
    for message in messages:
        total += tokens_per_message
        for key, value in message.items():
            total += len(enc.encode(value, disallowed_special=()))
            if key == "name":
                total += tokens_per_name
    return total + 3


def num_assistant_tokens_from_messages(messages: Sequence[Mapping[str, Any]],
                                       encoding_name: str = "o200k_base") -> int:
    enc = encoding(encoding_name)
    return sum(len(enc.encode(m["content"], disallowed_special=()))
               for m in messages if m.get("role") == "assistant")


def token_counts(examples: Sequence[Mapping[str, Any]],
                 encoding_name: str = "o200k_base") -> tuple[list[int], list[int]]:
    return ([num_tokens_from_messages(e["messages"], encoding_name) for e in examples],
            [num_assistant_tokens_from_messages(e["messages"], encoding_name) for e in examples])


def estimate_training(token_counts: Sequence[int],
                      max_tokens_per_example: int = 65_536) -> dict[str, int]:
    n = len(token_counts)
    n_epochs = TARGET_EPOCHS
    if n == 0:
        n_epochs = 0
    elif n * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        n_epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n)
    elif n * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        n_epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n)
    billing = sum(min(max_tokens_per_example, int(t)) for t in token_counts)
    return {"n_epochs": n_epochs, "billing_tokens": billing, "charged_tokens": n_epochs * billing}
