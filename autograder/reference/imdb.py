"""Assignment 01's reference answers (instructor-only): the subsets of step 3 and the tokenization
of step 2, as the lab's ``shuffle(seed=42).select(range(n))`` and ``tokenizer(texts,
truncation=True, max_length=...)`` without padding (a ``DataCollatorWithPadding`` pads each batch
at training time)."""

from __future__ import annotations

from helpers.imdb import SEED, subset_sizes


def seed_subsets(dataset, train_size: int | None = None, eval_size: int | None = None,
                 seed: int = SEED):
    """The lab's subsets: ``dataset["train"].shuffle(seed=42).select(range(train_size))`` and the
    same on ``dataset["test"]`` with ``eval_size``. Sizes default to `subset_sizes`."""
    default_train, default_eval = subset_sizes()
    train_size = default_train if train_size is None else train_size
    eval_size = default_eval if eval_size is None else eval_size
    train = dataset["train"].shuffle(seed=seed).select(range(train_size))
    evaluation = dataset["test"].shuffle(seed=seed).select(range(eval_size))
    return train, evaluation


def tokenize_batch(tokenizer, texts: list[str], max_length: int) -> dict:
    """Tokenize a batch of texts: truncation to ``max_length`` tokens and no padding."""
    return tokenizer(texts, truncation=True, max_length=max_length)


def tokenize_dataset(dataset, tokenizer, max_length: int, num_proc: int | None = None):
    """``dataset.map`` with `tokenize_batch` (batched), dropping the ``text`` column so that the
    data collator sees only ``input_ids``, ``attention_mask`` and ``label``."""
    return dataset.map(
        lambda batch: tokenize_batch(tokenizer, batch["text"], max_length),
        batched=True,
        remove_columns=["text"],
        num_proc=num_proc,
        desc="Tokenizing",
    )
