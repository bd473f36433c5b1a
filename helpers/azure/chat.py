"""Chatting with a deployment: one reply, a table of answers to compare, the lab's messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily at run time: the SDK and pandas are heavy
    import pandas as pd
    from openai import AzureOpenAI

#: The upstream lab's four chat messages (from Azure's fine-tuning guide).
LAB_MESSAGES: tuple[dict[str, str], ...] = (
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Does Azure OpenAI support customer managed keys?"},
    {"role": "assistant", "content": "Yes, customer managed keys are supported by Azure OpenAI."},
    {"role": "user", "content": "Do other Azure AI services support this too?"},
)


def chat(
    client: AzureOpenAI,
    deployment: str,
    messages: Sequence[Mapping[str, str]],
    **kwargs: Any,
) -> str:
    """Send ``messages`` to a deployment and return the reply's text (``kwargs`` go to
    ``chat.completions.create``: ``max_tokens``, ``temperature``, ``seed`` ...)."""
    response = client.chat.completions.create(
        model=deployment, messages=[dict(m) for m in messages], **kwargs
    )
    return response.choices[0].message.content or ""


def compare_answers(
    client: AzureOpenAI,
    questions: Sequence[str],
    deployments: Mapping[str, str],
    *,
    system: str | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Ask each deployment each question; one row per question, one column per deployment
    (``deployments`` maps a column label to a deployment name)."""
    import pandas as pd

    rows = []
    for question in questions:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": question}
        ]
        row = {"question": question}
        for label, deployment in deployments.items():
            row[label] = chat(client, deployment, messages, **kwargs)
        rows.append(row)
    return pd.DataFrame(rows, columns=["question", *deployments])
