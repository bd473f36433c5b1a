"""helpers.imdb: the packaged IMDB copy offline, the lab's subsets, tokenization without padding."""

from __future__ import annotations

import pytest

from autograder.reference import classifier as reference_classifier
from autograder.reference import imdb as reference_imdb
from helpers import imdb


@pytest.fixture(scope="module")
def packaged():
    return imdb.load_imdb(prefer_hub=False)


def test_offline_load_has_the_hub_shape_and_says_where_it_came_from(packaged):
    data = packaged.dataset
    assert packaged.source == "packaged"
    assert "offline copy" in packaged.description and "not reachable" in packaged.description
    assert set(data) == {"train", "test"}
    for split in data.values():
        assert split.column_names == ["text", "label"]
        assert split.features["label"].names == ["neg", "pos"]
    # IMDB's 25,000 training reviews less its exact duplicates
    assert 24_500 < len(data["train"]) + len(data["test"]) <= 25_000


def test_offline_test_split_is_disjoint_and_balanced(packaged):
    data = packaged.dataset
    train_texts = set(data["train"]["text"])
    assert not train_texts & set(data["test"]["text"])
    for split in data.values():
        share = sum(split["label"]) / len(split)
        assert share == pytest.approx(0.5, abs=0.001)


def test_offline_splits_are_sorted_by_label_as_the_hubs_are(packaged):
    """The lab's pitfall is real offline: the first reviews of each split are all negative, the
    last all positive, and only a shuffle mixes them."""
    for split in packaged.dataset.values():
        labels = split["label"]
        assert labels == sorted(labels)
        assert set(labels[:1000]) == {0} and set(labels[-1000:]) == {1}
    shuffled = packaged.dataset["train"].shuffle(seed=imdb.SEED).select(range(imdb.TRAIN_SIZE))
    assert 0.4 < sum(shuffled["label"]) / imdb.TRAIN_SIZE < 0.6


def test_offline_split_is_the_same_on_every_load(packaged):
    again = imdb.load_packaged()
    assert again["test"]["text"][:20] == packaged.dataset["test"]["text"][:20]


def test_hub_failure_falls_back_and_says_why(monkeypatch):
    def broken():
        raise ConnectionError("no route to host")

    monkeypatch.setattr(imdb, "_load_from_hub", broken)
    data = imdb.load_imdb(prefer_hub=True)
    assert data.source == "packaged"
    assert "ConnectionError" in data.description


def test_offline_mode_never_tries_the_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(imdb, "_load_from_hub", lambda: pytest.fail("the hub was tried"))
    from helpers import platform

    platform.hub_reachable.cache_clear()
    try:
        assert imdb.load_imdb().source == "packaged"
    finally:
        platform.hub_reachable.cache_clear()


def test_seed_subsets_are_the_labs_and_deterministic(packaged):
    data = packaged.dataset
    train, evaluation = reference_imdb.seed_subsets(data, 100, 50)
    assert train["text"] == data["train"].shuffle(seed=42).select(range(100))["text"]
    assert evaluation["text"] == data["test"].shuffle(seed=42).select(range(50))["text"]
    assert 0.3 < sum(train["label"]) / 100 < 0.7


def test_subset_sizes_shrink_only_in_fast_mode():
    assert imdb.subset_sizes(fast=False) == (1000, 500)
    train, evaluation = imdb.subset_sizes(fast=True)
    assert 10 <= train <= 100 and 10 <= evaluation <= 100


@pytest.fixture(scope="module")
def tokenizer():
    from helpers import classifier

    return reference_classifier.load_tokenizer(classifier.choose_backbone(fast=True))


def test_tokenize_dataset_truncates_without_padding(packaged, tokenizer):
    train, _ = reference_imdb.seed_subsets(packaged.dataset, 20, 5)
    tokenized = reference_imdb.tokenize_dataset(train, tokenizer, max_length=64)
    assert set(tokenized.column_names) == {"label", "input_ids", "attention_mask"}
    lengths = [len(ids) for ids in tokenized["input_ids"]]
    assert max(lengths) <= 64
    full = [min(len(tokenizer(text, verbose=False)["input_ids"]), 64) for text in train["text"]]
    assert lengths == full
    assert all(set(mask) == {1} for mask in tokenized["attention_mask"])


def test_padding_report_counts_positions():
    report = imdb.padding_report([10, 20, 30, 200], max_length=100, batch_size=2, seed=0)
    assert report["truncated"] == 1
    assert report["real_tokens"] == 10 + 20 + 30 + 100
    assert report["max_length_positions"] == 400
    # grouped: batches (10, 20) and (30, 100) -> 2*20 + 2*100
    assert report["grouped_positions"] == 240
    assert report["real_tokens"] <= report["grouped_positions"] <= report["dynamic_positions"] <= 400
    assert report["saving"] == pytest.approx(1 - report["dynamic_positions"] / 400)
    assert report["lengths"] == [10, 20, 30, 100]


def test_padding_report_accepts_a_tokenized_dataset(packaged, tokenizer):
    train, _ = reference_imdb.seed_subsets(packaged.dataset, 16, 5)
    tokenized = reference_imdb.tokenize_dataset(train, tokenizer, max_length=512)
    from_dataset = imdb.padding_report(tokenized, 512, 8)
    from_lengths = imdb.padding_report(imdb.token_lengths(train, tokenizer), 512, 8)
    assert from_dataset["real_tokens"] == from_lengths["real_tokens"]
    assert from_dataset["max_length_positions"] == 16 * 512


def test_padding_report_rejects_nothing():
    with pytest.raises(ValueError, match="no lengths"):
        imdb.padding_report([], 128, 8)
