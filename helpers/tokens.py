"""Tokens of chat fine-tuning data: which encoding a model uses, its per-example limit, and the
summaries and plots of token counts.

Which tokenizer (the *encoding*) counts depends on the model you fine-tune:

- ``o200k_base``: the gpt-4o, gpt-4.1 and o-series (o1, o3, o4) families;
- ``cl100k_base``: gpt-4, gpt-4-turbo and gpt-35-turbo (OpenAI spells it gpt-3.5-turbo).

Model names may carry a version (``gpt-4o-2024-08-06``, ``gpt-35-turbo-0125``) or be a
fine-tuned model (Azure ``gpt-4o.ft-abc123``, OpenAI ``ft:gpt-4o-mini-2024-07-18:org::id``):
both resolve to their base model.

Counting an example's tokens the cookbook's way, and estimating epochs and billed tokens, are
assignment 02's tasks: you write them in the notebook (the course's own answers are
instructor-only). Encodings load offline through :mod:`helpers.assets`, never from tiktoken's blob
store.

Typical use::

    from helpers import chat_data, tokens
    report = chat_data.validate_file("data/training_set.jsonl", model="gpt-4o")
    tokens.encoding_name_for("gpt-4o")                  # 'o200k_base'
    tokens.distribution(my_counts)                      # {'count': 40, 'min': ..., ...}
    tokens.plot_distributions({"total_tokens": my_counts})   # a matplotlib Figure
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

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
