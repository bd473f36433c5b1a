"""Token statistics of chat fine-tuning data: the lab's counting loop against ``helpers.tokens``,
with tiktoken's raw encode of the same text as the floor.

Three ways to get the per-example total and assistant token counts (and their distributions) of
N chat examples, on the same examples, the same encoding (o200k_base, gpt-4o's) and in one process:

- **lab**: the upstream lab's cell, as written there (the cookbook's ``num_tokens_from_messages``
  and ``num_assistant_tokens_from_messages`` on a module-level encoding, a Python loop over the
  examples, numpy for the distribution; the lab used cl100k_base, here it gets o200k_base so the
  work is the same);
- **course**: ``autograder.reference.tokens.example_token_counts(examples, model="gpt-4o")`` and
  ``helpers.tokens.distribution`` on both series;
- **floor**: ``encoding.encode_ordinary`` once on every string the counts need (every message
  value), already collected in a list: what any implementation must at least pay. The threaded
  ``encode_ordinary_batch`` of the same strings is reported beside it for information.

Examples are built from the course's own chat data (``source/02-gpt4o-jsonl/data``), recombined
with a fixed seed (system, user and assistant messages drawn independently, some multi-turn,
some with a ``name``) to 10k, 100k and 1M examples. Both counting ways must agree exactly.

Run: ``python -m bench.token_stats [--profile smoke|default|long] [--sizes 10000,100000]``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autograder.reference import tokens as reference_tokens
from bench import common

NAME = "token_stats"
TITLE = "token counts: the lab's loop vs helpers.tokens vs raw tiktoken encode"
DATA_DIR = common.ROOT / "source" / "02-gpt4o-jsonl" / "data"
ENCODING = "o200k_base"

#: Example counts per profile. 1M examples take one to two minutes per variant on 2 cores,
#: so only the long profile runs them.
SIZES = {"smoke": [200], "default": [10_000, 100_000], "long": [10_000, 100_000, 1_000_000]}
REPEATS = {"smoke": 1, "default": 3, "long": 5}
#: Fewer repeats for the biggest size (a single 1M pass is long enough to be stable).
REPEATS_1M = {"smoke": 1, "default": 1, "long": 3}
TARGET_VS_FLOOR = 1.5  # issue 8: helpers.tokens within 1.5x of the raw encode floor


# --------------------------------------------------------------------------- the lab's cell

def lab_counts(dataset: Sequence[dict], encoding) -> dict[str, Any]:
    """The upstream lab's token-statistics cell (cookbook functions, loop, numpy distribution),
    returning instead of printing. Only the encoding object is passed in (the lab binds it at
    module level with ``tiktoken.get_encoding("cl100k_base")``)."""
    import numpy as np

    def num_tokens_from_messages(messages, tokens_per_message=3, tokens_per_name=1):
        num_tokens = 0
        for message in messages:
            num_tokens += tokens_per_message
            for key, value in message.items():
                num_tokens += len(encoding.encode(value))
                if key == "name":
                    num_tokens += tokens_per_name
        num_tokens += 3
        return num_tokens

    def num_assistant_tokens_from_messages(messages):
        num_tokens = 0
        for message in messages:
            if message["role"] == "assistant":
                num_tokens += len(encoding.encode(message["content"]))
        return num_tokens

    def distribution(values):
        return {
            "min": min(values), "max": max(values), "mean": float(np.mean(values)),
            "median": float(np.median(values)), "p10": float(np.quantile(values, 0.1)),
            "p90": float(np.quantile(values, 0.9)),
        }

    total_tokens = []
    assistant_tokens = []
    for ex in dataset:
        messages = ex.get("messages", {})
        total_tokens.append(num_tokens_from_messages(messages))
        assistant_tokens.append(num_assistant_tokens_from_messages(messages))
    return {
        "total_tokens": total_tokens, "assistant_tokens": assistant_tokens,
        "total": distribution(total_tokens), "assistant": distribution(assistant_tokens),
    }


def course_counts(dataset: Sequence[dict], encoding) -> dict[str, Any]:
    """The course's way: ``helpers.tokens`` (the encoding object is what ``model="gpt-4o"``
    resolves to; passing it keeps the encoding load out of the timing, as for the lab)."""
    from helpers import tokens

    counts = reference_tokens.example_token_counts(dataset, model="gpt-4o", encoding=encoding)
    return {
        "total_tokens": counts["total_tokens"], "assistant_tokens": counts["assistant_tokens"],
        "total": tokens.distribution(counts["total_tokens"]),
        "assistant": tokens.distribution(counts["assistant_tokens"]),
    }


def strings_of(dataset: Sequence[dict]) -> list[str]:
    """Every string value of every message: the text any count must encode at least once."""
    return [v for ex in dataset for m in ex["messages"] for v in m.values() if isinstance(v, str)]


def floor_counts(strings: Sequence[str], encoding) -> int:
    """Raw encode of each string once, on one thread: the floor."""
    encode = encoding.encode_ordinary
    return sum(len(encode(s)) for s in strings)


def floor_batch_counts(strings: Sequence[str], encoding) -> int:
    """tiktoken's threaded batch encode of the same strings (information only)."""
    return sum(len(ids) for ids in encoding.encode_ordinary_batch(list(strings)))


# --------------------------------------------------------------------------- data

_FALLBACK = [
    {"messages": [
        {"role": "system", "content": "You are a patient tutor who explains fine-tuning."},
        {"role": "user", "content": "Why does padding to the maximum length waste compute?"},
        {"role": "assistant", "content": "Every pad position goes through every layer, although "
                                         "the model ignores it: dynamic padding pads each batch "
                                         "only to its own longest example."},
    ]},
]


def load_pool(data_dir: Path = DATA_DIR) -> tuple[list[dict], str]:
    """The course's chat examples (training and validation files), or a built-in example when
    the data folder is missing. Returns ``(examples, description)``."""
    from helpers import chat_data

    examples: list[dict] = []
    files = sorted(data_dir.glob("*.jsonl")) if data_dir.is_dir() else []
    for path in files:
        examples.extend(chat_data.validate_file(path, min_examples=0).examples)
    examples = [e for e in examples if isinstance(e.get("messages"), list) and e["messages"]]
    if examples:
        return examples, f"{len(examples)} examples from {', '.join(p.name for p in files)}"
    return list(_FALLBACK), "the built-in example (course data folder not found)"


def synthesize(pool: Sequence[dict], n: int, seed: int = 8) -> list[dict]:
    """``n`` chat examples recombined from ``pool``'s messages: a system, a user and an
    assistant message drawn independently; every 7th example is multi-turn (two exchanges) and
    every 11th user message carries a ``name``. Message dicts are shared between examples (as
    strings would be) so a million examples fit in a few hundred MB."""
    rng = random.Random(seed)
    by_role: dict[str, list[dict]] = {"system": [], "user": [], "assistant": []}
    for example in pool:
        for message in example["messages"]:
            role = message.get("role")
            if role in by_role and isinstance(message.get("content"), str):
                by_role[role].append({"role": role, "content": message["content"]})
    if not by_role["user"] or not by_role["assistant"]:
        raise ValueError("the example pool needs user and assistant messages")
    named = [dict(m, name=f"learner_{i % 5}") for i, m in enumerate(by_role["user"])]
    systems = by_role["system"] or [None]
    out = []
    for i in range(n):
        messages = []
        system = rng.choice(systems)
        if system is not None:
            messages.append(system)
        users = named if i % 11 == 0 else by_role["user"]
        messages += [rng.choice(users), rng.choice(by_role["assistant"])]
        if i % 7 == 0:
            messages += [rng.choice(by_role["user"]), rng.choice(by_role["assistant"])]
        out.append({"messages": messages})
    return out


# --------------------------------------------------------------------------- benchmark

def run_size(result: common.Result, pool: Sequence[dict], n: int, encoding,
             repeats: int | None) -> dict[str, Any]:
    """Time the three ways on ``n`` synthesized examples; add the row and the ratios."""
    dataset = synthesize(pool, n)
    strings = strings_of(dataset)
    repeats = repeats or (REPEATS_1M if n >= 1_000_000 else REPEATS)[result.profile]
    outputs: dict[str, Any] = {}
    # warm-up (imports, first-call costs) on a slice, untimed
    lab_counts(dataset[:50], encoding), course_counts(dataset[:50], encoding)
    floor_counts(strings[:150], encoding)

    def keep(name, repeat, seconds, value):
        outputs[name] = value

    times = common.interleaved(
        {
            "lab": lambda: lab_counts(dataset, encoding),
            "course": lambda: course_counts(dataset, encoding),
            "floor": lambda: floor_counts(strings, encoding),
        },
        repeats=repeats, on_result=keep,
    )
    batch_seconds, _ = common.timed(lambda: floor_batch_counts(strings, encoding))
    lab, course = outputs["lab"], outputs["course"]
    agree = (lab["total_tokens"] == course["total_tokens"]
             and lab["assistant_tokens"] == course["assistant_tokens"])
    if not agree:
        result.note(f"n={n}: the lab's and the course's counts DIFFER")
    n_tokens = sum(course["total_tokens"])
    row = result.measure(
        examples=n, strings=len(strings), tokens=n_tokens, repeats=repeats, counts_agree=agree,
        **{f"{k}_s": common.median(v) for k, v in times.items()},
        **{f"{k}_runs_s": [round(x, 4) for x in v] for k, v in times.items()},
        floor_batch_s=batch_seconds,
        **{f"{k}_us_per_example": common.median(v) / n * 1e6 for k, v in times.items()},
    )
    print(f"  n={n:>9,}: lab {common.fmt_seconds(row['lab_s'])}, course "
          f"{common.fmt_seconds(row['course_s'])}, floor {common.fmt_seconds(row['floor_s'])} "
          f"(threaded batch {common.fmt_seconds(batch_seconds)}); {n_tokens:,} tokens; "
          f"counts agree: {agree}", flush=True)
    result.ratio(f"lab / course at {n:,} examples", row["lab_s"], row["course_s"],
                 "lab loop", "helpers.tokens")
    result.ratio(f"course / floor at {n:,} examples", row["course_s"], row["floor_s"],
                 "helpers.tokens", "raw encode", target=TARGET_VS_FLOOR, direction="max",
                 note="lower is better: how far above the raw encode")
    return row


def main(argv: list[str] | None = None) -> int:
    p = common.parser(NAME, __doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=None,
                   help="comma-separated example counts (default per profile: "
                        + "; ".join(f"{k}: {','.join(map(str, v))}" for k, v in SIZES.items()) + ")")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else SIZES[args.profile]

    from helpers import assets

    encoding = assets.get_encoding(ENCODING)
    pool, pool_description = load_pool()
    result = common.start(NAME, TITLE, args.profile, sizes=sizes, encoding=ENCODING,
                          pool=pool_description)
    result.note(f"examples recombined from {pool_description}; encoding {ENCODING} for all three "
                "(the lab used cl100k_base; the work is the same)")

    for n in sizes:
        run_size(result, pool, n, encoding, args.repeats or None)
    result.finish(args.out_dir, argv=argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
