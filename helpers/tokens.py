"""Token counting for chat fine-tuning data, the way OpenAI's cookbook does it.

The cookbook ("Data preparation and analysis for chat model fine-tuning") counts an example as::

    3 tokens per message + the tokens of every string value of the message
    + 1 more per ``name`` key + 3 tokens that prime the assistant's reply

and the assistant-only count as the tokens of the assistant messages' content. Both depend on
the tokenizer (the *encoding*) of the model you fine-tune:

- ``o200k_base``: the gpt-4o, gpt-4.1 and o-series (o1, o3, o4) families;
- ``cl100k_base``: gpt-4, gpt-4-turbo and gpt-35-turbo (OpenAI spells it gpt-3.5-turbo).

Model names may carry a version (``gpt-4o-2024-08-06``, ``gpt-35-turbo-0125``) or be a
fine-tuned model (Azure ``gpt-4o.ft-abc123``, OpenAI ``ft:gpt-4o-mini-2024-07-18:org::id``):
both resolve to their base model.

Encodings load offline through :mod:`helpers.assets`, never from tiktoken's blob store.

Typical use::

    from helpers import chat_data, tokens
    report = chat_data.validate_file("data/training_set.jsonl", model="gpt-4o")
    counts = tokens.example_token_counts(report.examples, model="gpt-4o")
    tokens.distribution(counts["total_tokens"])        # {'count': 40, 'min': ..., ...}
    tokens.estimate_epochs_and_cost(counts["total_tokens"], model="gpt-4o")
    tokens.plot_distributions(counts)                   # a matplotlib Figure
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from helpers import plots

if TYPE_CHECKING:  # imported lazily: the CLI stays cheap to start
    import tiktoken
    from matplotlib.figure import Figure

# --------------------------------------------------------------------------- models

#: Base model -> tiktoken encoding. Names are matched after dropping a version suffix
#: (``-2024-08-06``, ``-0125``) and a fine-tune suffix; see :func:`base_model`.
#: Source: tiktoken's own table (``tiktoken/model.py``) and OpenAI's model pages.
MODEL_ENCODINGS: dict[str, str] = {
    # o200k_base
    "gpt-4o": "o200k_base",
    "gpt-4o-mini": "o200k_base",
    "gpt-4.1": "o200k_base",
    "gpt-4.1-mini": "o200k_base",
    "gpt-4.1-nano": "o200k_base",
    "o1": "o200k_base",
    "o1-mini": "o200k_base",
    "o3": "o200k_base",
    "o3-mini": "o200k_base",
    "o4-mini": "o200k_base",
    # cl100k_base
    "gpt-4": "cl100k_base",
    "gpt-4-turbo": "cl100k_base",
    "gpt-35-turbo": "cl100k_base",
}

#: The encodings this module can load offline (``helpers.assets`` ships them).
ENCODINGS: tuple[str, ...] = ("o200k_base", "cl100k_base")

#: Most tokens one training example may have, per base model (or model version).
#: A longer example is rejected by the service (Azure) or truncated (OpenAI), so
#: ``helpers.chat_data`` reports it as ``example_too_long``.
TRAINING_TOKEN_LIMITS: dict[str, int] = {
    # Azure OpenAI fine-tuning model table ("Training example context length"),
    # learn.microsoft.com/azure/ai-foundry/openai/concepts/models#fine-tuning-models:
    "gpt-4o": 65_536,  # gpt-4o (2024-08-06): 65,536 tokens per training example
    "gpt-4o-mini": 65_536,  # gpt-4o-mini (2024-07-18): 65,536
    "gpt-4.1": 65_536,  # gpt-4.1 (2025-04-14): 65,536
    "gpt-4.1-mini": 65_536,  # gpt-4.1-mini (2025-04-14): 65,536
    "gpt-4.1-nano": 32_768,  # gpt-4.1-nano (2025-04-14): 32,768
    "o4-mini": 65_536,  # o4-mini (2025-04-16): 65,536
    # Same Azure table, "Max request (tokens)" of the gpt-35-turbo versions; the newest
    # fine-tunable version (0125) is the default for an unversioned name:
    "gpt-35-turbo": 16_385,  # gpt-35-turbo (0125): 16,385
    "gpt-35-turbo-0125": 16_385,  # gpt-35-turbo (0125): 16,385
    "gpt-35-turbo-1106": 16_385,  # gpt-35-turbo (1106): input 16,385
    # OpenAI fine-tuning guide, "Token limits" (platform.openai.com/docs/guides/fine-tuning):
    "gpt-35-turbo-0613": 4_096,  # gpt-3.5-turbo-0613: 4,096 tokens per training example
    "gpt-4": 8_192,  # gpt-4-0613 (experimental fine-tuning): its 8,192-token context
}


def _normalise(model: str) -> str:
    """Lower-case, drop fine-tune suffixes, and spell gpt-3.5 the Azure way (gpt-35)."""
    if not isinstance(model, str) or not model.strip():
        raise ValueError(
            f"model must be a model name such as 'gpt-4o', not {model!r}; known base models: "
            f"{_known_models()}"
        )
    name = model.strip().lower()
    if name.startswith("ft:"):  # OpenAI: ft:gpt-4o-mini-2024-07-18:org:suffix:id
        name = name[3:].split(":", 1)[0]
    name = name.split(".ft-", 1)[0]  # Azure: gpt-4o-2024-08-06.ft-<hex>[:ckpt-step-N]
    name = name.split(":", 1)[0]
    return name.replace("gpt-3.5-", "gpt-35-")


def _longest_match(name: str, table: Iterable[str]) -> str | None:
    """The longest key that is ``name`` itself or a prefix of it followed by ``-``."""
    best = None
    for key in table:
        if (name == key or name.startswith(key + "-")) and (best is None or len(key) > len(best)):
            best = key
    return best


def _known_models() -> str:
    return ", ".join(sorted(MODEL_ENCODINGS))


def base_model(model: str) -> str:
    """The base model a (versioned or fine-tuned) model name belongs to.

    >>> base_model("gpt-4o-2024-08-06.ft-0123abcd")
    'gpt-4o'
    >>> base_model("gpt-3.5-turbo-0125")
    'gpt-35-turbo'
    """
    key = _longest_match(_normalise(model), MODEL_ENCODINGS)
    if key is None:
        raise ValueError(
            f"Unknown model {model!r}: cannot tell which tokenizer it uses. Known base models "
            f"(a version or fine-tune suffix is fine): {_known_models()}. "
            "Or pass the encoding explicitly, e.g. encoding='o200k_base'."
        )
    return key


def encoding_name_for(model: str) -> str:
    """The tiktoken encoding name of ``model``: ``"o200k_base"`` or ``"cl100k_base"``.

    Raises ``ValueError`` naming the known models when the model is unknown."""
    return MODEL_ENCODINGS[base_model(model)]


def encoding_for(model: str = "gpt-4o", encoding: str | tiktoken.Encoding | None = None):
    """The ``tiktoken.Encoding`` to count ``model``'s tokens with, loaded offline.

    ``encoding`` overrides the choice: an encoding name (``"cl100k_base"``) or an
    ``Encoding`` object, returned as is."""
    if encoding is not None and not isinstance(encoding, str):
        return encoding  # already an Encoding
    name = encoding if encoding is not None else encoding_name_for(model)
    if name not in ENCODINGS:
        raise ValueError(
            f"Unknown encoding {name!r}; the course ships {', '.join(ENCODINGS)} "
            "(o200k_base for the gpt-4o/gpt-4.1/o-series families, cl100k_base for gpt-4 and "
            "gpt-35-turbo)."
        )
    from helpers import assets

    return assets.get_encoding(name)


def training_token_limit(model: str) -> int:
    """Most tokens one training example of ``model`` may have (see ``TRAINING_TOKEN_LIMITS``).

    Raises ``ValueError`` for a model that cannot be fine-tuned (o1, gpt-4-turbo, ...)."""
    base = base_model(model)  # raises for an unknown model
    same_base = [k for k in TRAINING_TOKEN_LIMITS if base_model(k) == base]
    key = _longest_match(_normalise(model), same_base)
    if key is None:
        tunable = ", ".join(k for k in TRAINING_TOKEN_LIMITS if k in MODEL_ENCODINGS)
        raise ValueError(
            f"{model!r} ({base}) cannot be fine-tuned, so it has no training-example token "
            f"limit. Fine-tunable base models: {tunable}."
        )
    return TRAINING_TOKEN_LIMITS[key]


# --------------------------------------------------------------------------- counting

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


# --------------------------------------------------------------------------- statistics

def distribution(values: Iterable[float]) -> dict[str, float | int | None]:
    """``count, min, max, mean, median, p10, p90`` of ``values`` (the cookbook's summary;
    quantiles interpolate linearly, like ``numpy.quantile``; floats are rounded to 4 decimals).
    Empty input gives ``count`` 0 and ``None`` for the rest."""
    data = sorted(values)
    n = len(data)
    if n == 0:
        return {"count": 0} | dict.fromkeys(("min", "max", "mean", "median", "p10", "p90"))

    def quantile(q: float) -> float:
        pos = (n - 1) * q
        lo, hi = math.floor(pos), math.ceil(pos)
        return round(float(data[lo] + (data[hi] - data[lo]) * (pos - lo)), 4)

    return {
        "count": n,
        "min": data[0],
        "max": data[-1],
        "mean": round(sum(data) / n, 4),
        "median": quantile(0.5),
        "p10": quantile(0.1),
        "p90": quantile(0.9),
    }


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


# --------------------------------------------------------------------------- plots

_LABELS = {
    "total_tokens": "tokens per example",
    "assistant_tokens": "assistant tokens per example",
    "n_messages": "messages per example",
}


def plot_distributions(
    series: Mapping[str, Sequence[float]] | None = None,
    /,
    *,
    title: str | None = None,
    bins: int = 20,
    token_limit: int | None = None,
    **named_series: Sequence[float],
) -> Figure:
    """Histograms of per-example counts, one panel per series, returned as a matplotlib
    ``Figure`` (displayed by Jupyter when it is a cell's value; never shown or kept by pyplot).

    Pass a mapping (``example_token_counts(...)`` gives one) and/or keyword series::

        plot_distributions(counts)
        plot_distributions(total_tokens=[46, 59, 48], title="training set")

    Each panel marks the mean and the median; ``token_limit`` draws the model's per-example
    limit on the total-token panel when the longest example comes within half of it."""
    data = dict(series or {}) | named_series
    data = {name: list(values) for name, values in data.items()}
    if not data:
        raise ValueError("plot_distributions needs at least one series, e.g. total_tokens=[...]")
    fig = plots.new_figure(figsize=(4.2 * len(data), 3.2), layout="constrained")
    axes = fig.subplots(1, len(data), squeeze=False)[0]
    for ax, (name, values) in zip(axes, data.items(), strict=True):
        label = _LABELS.get(name, name.replace("_", " "))
        if values:
            ax.hist(values, bins=bins, color="#4C72B0", edgecolor="white")
            stats = distribution(values)
            ax.axvline(stats["mean"], color="#DD8452", linestyle="--",
                       label=f"mean {stats['mean']:.1f}")
            ax.axvline(stats["median"], color="#55A868", linestyle=":",
                       label=f"median {stats['median']:.1f}")
            if token_limit is not None and name == "total_tokens" and max(values) > 0.5 * token_limit:
                ax.axvline(token_limit, color="#C44E52", label=f"limit {token_limit:,}")
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "no examples", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel("examples")
        ax.set_title(f"{label} (n={len(values)})", fontsize="medium")
    if title:
        fig.suptitle(title)
    return fig
