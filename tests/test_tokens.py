"""helpers.tokens: encodings per model, the cookbook's counts, limits, statistics, estimate, plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.reference import tokens as reference_tokens
from helpers import tokens

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference-data" / "mslearn-databricks"


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4o.ft-0123456789abcdef", "o200k_base"),
        ("gpt-4o-2024-08-06.ft-0123abcd:ckpt-step-30", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:my-org::abc123", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-4.1-nano-2025-04-14", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini-2025-04-16", "o200k_base"),
        ("GPT-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-turbo-2024-04-09", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("gpt-35-turbo-0125", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-35-turbo-0125.ft-abc", "cl100k_base"),
    ],
)
def test_encoding_name_per_model(model, encoding):
    assert tokens.encoding_name_for(model) == encoding


def test_base_model_strips_versions_and_fine_tune_suffixes():
    assert tokens.base_model("gpt-4o-2024-08-06.ft-0123abcd") == "gpt-4o"
    assert tokens.base_model("gpt-4o-mini") == "gpt-4o-mini"  # not gpt-4o
    assert tokens.base_model("gpt-4-turbo") == "gpt-4-turbo"  # not gpt-4
    assert tokens.base_model("gpt-3.5-turbo-0613") == "gpt-35-turbo"


@pytest.mark.parametrize("model", ["llama-3", "gpt-4x", "claude", "", "  "])
def test_unknown_model_is_a_clear_value_error(model):
    with pytest.raises(ValueError) as info:
        tokens.encoding_name_for(model)
    message = str(info.value)
    assert "gpt-4o" in message and "gpt-35-turbo" in message  # lists the known ones


def test_explicit_encoding_overrides_the_model():
    assert tokens.encoding_for("gpt-4o", encoding="cl100k_base").name == "cl100k_base"
    assert tokens.encoding_for("unknown-model", encoding="o200k_base").name == "o200k_base"
    enc = tokens.encoding_for("gpt-4o")
    assert tokens.encoding_for("gpt-35-turbo", encoding=enc) is enc
    with pytest.raises(ValueError, match="o200k_base"):
        tokens.encoding_for("gpt-4o", encoding="p50k_bas")


def test_encodings_differ_on_the_same_text():
    text = "Fine-tuning gpt-4o changes the answers' style."
    o200k = tokens.encoding_for("gpt-4o")
    cl100k = tokens.encoding_for("gpt-35-turbo")
    assert o200k.name == "o200k_base" and cl100k.name == "cl100k_base"
    assert o200k.decode(o200k.encode(text)) == text
    assert o200k.encode(text) != cl100k.encode(text)


def test_cookbook_accounting():
    enc = tokens.encoding_for("gpt-4o")
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hi there", "name": "ada"},
        {"role": "assistant", "content": "Hello!", "weight": 1},
    ]

    def n(s):
        return len(enc.encode(s))

    expected = (
        3 * 3  # per message
        + n("system") + n("You are helpful.")
        + n("user") + n("Hi there") + n("ada") + 1  # +1 per name
        + n("assistant") + n("Hello!")  # the weight number adds nothing
        + 3  # reply priming
    )
    assert reference_tokens.num_tokens_from_messages(messages, model="gpt-4o") == expected
    assert reference_tokens.num_assistant_tokens_from_messages(messages, model="gpt-4o") == n("Hello!")
    # the encoding override counts with cl100k
    cl = tokens.encoding_for("gpt-4")
    assert reference_tokens.num_assistant_tokens_from_messages(messages, encoding="cl100k_base") == len(
        cl.encode("Hello!")
    )


def test_special_token_text_is_counted_not_refused():
    messages = [{"role": "user", "content": "what is <|endoftext|>?"},
                {"role": "assistant", "content": "a special token"}]
    assert reference_tokens.num_tokens_from_messages(messages) > 10


def test_training_token_limits():
    assert tokens.training_token_limit("gpt-4o") == 65_536
    assert tokens.training_token_limit("gpt-4o-mini-2024-07-18") == 65_536
    assert tokens.training_token_limit("gpt-4o-2024-08-06.ft-abc") == 65_536
    assert tokens.training_token_limit("gpt-35-turbo") == 16_385
    assert tokens.training_token_limit("gpt-35-turbo-0125") == 16_385
    assert tokens.training_token_limit("gpt-3.5-turbo-0613") == 4_096
    assert tokens.training_token_limit("gpt-4.1-nano") == 32_768
    assert set(tokens.TRAINING_TOKEN_LIMITS.values()) <= {4_096, 8_192, 16_385, 32_768, 65_536}
    with pytest.raises(ValueError, match="cannot be fine-tuned"):
        tokens.training_token_limit("gpt-4-turbo")  # not gpt-4's limit by prefix
    with pytest.raises(ValueError, match="Unknown model"):
        tokens.training_token_limit("mistral-7b")


def test_every_limit_has_a_source_comment():
    source = Path(tokens.__file__).read_text()
    block = source.split("TRAINING_TOKEN_LIMITS: dict[str, int] = {", 1)[1].split("\n}", 1)[0]
    entries = [line for line in block.splitlines() if line.strip().startswith('"')]
    assert len(entries) == len(tokens.TRAINING_TOKEN_LIMITS)
    assert all("#" in line for line in entries), "each limit needs its source in a comment"


def test_distribution_matches_numpy():
    np = pytest.importorskip("numpy")
    values = [46, 59, 48, 47, 50, 49, 53, 46, 52, 48]
    d = tokens.distribution(values)
    assert list(d) == ["count", "min", "max", "mean", "median", "p10", "p90"]
    assert d["count"] == 10 and d["min"] == 46 and d["max"] == 59
    assert d["mean"] == pytest.approx(np.mean(values))
    assert d["median"] == pytest.approx(np.median(values))
    assert d["p10"] == pytest.approx(np.quantile(values, 0.1))
    assert d["p90"] == pytest.approx(np.quantile(values, 0.9))
    assert tokens.distribution([7]) == {
        "count": 1, "min": 7, "max": 7, "mean": 7.0, "median": 7.0, "p10": 7.0, "p90": 7.0
    }
    empty = tokens.distribution([])
    assert empty["count"] == 0 and empty["mean"] is None


@pytest.mark.parametrize(
    ("n_examples", "epochs"),
    [(1, 25), (3, 25), (10, 10), (33, 3), (34, 3), (100, 3), (8333, 3), (8334, 2), (30_000, 1)],
)
def test_cookbook_epochs(n_examples, epochs):
    est = reference_tokens.estimate_epochs_and_cost([100] * n_examples, model="gpt-4o")
    assert est["n_epochs"] == epochs
    assert est["billing_tokens"] == 100 * n_examples
    assert est["charged_tokens"] == epochs * 100 * n_examples


def test_billing_caps_each_example_at_the_model_limit():
    est = reference_tokens.estimate_epochs_and_cost([20_000, 100], model="gpt-35-turbo")
    assert est["billing_tokens"] == 16_385 + 100
    est = reference_tokens.estimate_epochs_and_cost([20_000, 100], model="gpt-4o")
    assert est["billing_tokens"] == 20_100
    assert set(est) == {"n_epochs", "billing_tokens", "charged_tokens"}
    assert reference_tokens.estimate_epochs_and_cost([50] * 40, n_epochs=2)["charged_tokens"] == 4_000
    assert reference_tokens.estimate_epochs_and_cost([]) == {
        "n_epochs": 0, "billing_tokens": 0, "charged_tokens": 0
    }


def test_plot_distributions_returns_a_figure_without_pyplot_state():
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    before = plt.get_fignums()
    fig = tokens.plot_distributions(
        {"total_tokens": [46, 59, 48, 50], "assistant_tokens": [13, 28, 14, 15]},
        title="training set", token_limit=60,
    )
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_xlabel() == "tokens per example"
    assert plt.get_fignums() == before  # nothing left open in pyplot
    fig2 = tokens.plot_distributions(total_tokens=[], n_messages=[3, 3])
    assert len(fig2.axes) == 2
    with pytest.raises(ValueError):
        tokens.plot_distributions()


PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_renders_to_png(tmp_path):
    fig = tokens.plot_distributions(total_tokens=[46, 59, 48])
    out = tmp_path / "plot.png"
    fig.savefig(out)
    assert out.read_bytes()[:8] == PNG
    assert fig._repr_png_()[:8] == PNG  # what Jupyter shows


def test_plot_displays_as_an_image_in_a_notebook_kernel():
    """A cell whose value is the figure shows one PNG, with or without pyplot imported."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    repo = Path(__file__).resolve().parents[1]
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from helpers import tokens\n"
                                  "tokens.plot_distributions(total_tokens=[46, 59, 48])"),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\n"
                                  "tokens.plot_distributions(total_tokens=[46, 59, 48])"),
    ]
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(repo)}})
    client.execute()
    for cell in nb.cells:
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, cell.outputs


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference-data is not present")
@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", {"min": 46, "max": 59, "mean": 49.8, "median": 48.5}),
        ("gpt-35-turbo", {"min": 47, "max": 62, "mean": 52.1, "median": 50.5}),
    ],
)
def test_reference_data_distribution(model, expected):
    raw = (REFERENCE / "training_set.jsonl").read_text(encoding="utf-8-sig")
    examples = [json.loads(line) for line in raw.splitlines() if line.strip()]
    counts = reference_tokens.example_token_counts(examples, model=model)
    d = tokens.distribution(counts["total_tokens"])
    assert d["count"] == 10
    assert {k: d[k] for k in expected} == pytest.approx(expected)
    assert all(a < t for a, t in zip(counts["assistant_tokens"], counts["total_tokens"], strict=True))


def test_example_token_counts_are_the_cookbook_counts_by_hand() -> None:
    """example_token_counts encodes each value once; its counts are checked against counts made
    here by hand from the raw encodings (not against the module's own per-example functions, which
    share its code): names, multi-turn, a numeric weight and content parts included."""
    examples = [
        {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "name": "ada", "content": "Hi there"},
                      {"role": "assistant", "content": "Hello!"},
                      {"role": "user", "content": "And again?"},
                      {"role": "assistant", "name": "bot", "content": "Hello again.", "weight": 1}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]},
                      {"role": "assistant", "content": "ok"}]},
    ]
    import tiktoken

    from helpers import assets

    assets.ensure_tiktoken_encodings()
    for model, name in (("gpt-4o", "o200k_base"), ("gpt-35-turbo", "cl100k_base")):
        enc = tiktoken.get_encoding(name)

        def n(text: str, enc=enc) -> int:
            return len(enc.encode(text))

        first_total = (5 * 3 + 3  # five messages, then the reply's priming
                       + n("system") + n("Be brief.")
                       + n("user") + n("ada") + 1 + n("Hi there")
                       + n("assistant") + n("Hello!")
                       + n("user") + n("And again?")
                       + n("assistant") + n("bot") + 1 + n("Hello again."))
        second_total = 2 * 3 + 3 + n("user") + n("parts") + n("assistant") + n("ok")
        counts = reference_tokens.example_token_counts(examples, model=model)
        assert counts["total_tokens"] == [first_total, second_total]
        assert counts["assistant_tokens"] == [n("Hello!") + n("Hello again."), n("ok")]
        assert counts["n_messages"] == [5, 2]
