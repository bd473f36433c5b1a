"""Assignment 01's reference metrics (autograder.reference.metrics) against scikit-learn, and helpers.metrics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from autograder.reference import metrics as reference_metrics
from helpers import metrics


def _sklearn(predictions, labels):
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predictions, average="binary",
                                                               zero_division=0)
    return {"accuracy": accuracy_score(labels, predictions), "precision": precision, "recall": recall,
            "f1": f1}


@pytest.mark.parametrize("seed", range(5))
def test_matches_scikit_learn_on_random_logits(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(57, 2))
    labels = rng.integers(0, 2, size=57)
    result = reference_metrics.classification_metrics(logits, labels)
    expected = _sklearn(logits.argmax(-1), labels)
    assert result == pytest.approx(expected)
    assert list(result) == list(metrics.METRIC_NAMES)


def test_predictions_and_logits_give_the_same_result():
    logits = np.array([[0.1, 0.9], [2.0, -1.0], [0.3, 0.2], [-1.0, 1.0]])
    labels = np.array([1, 0, 1, 1])
    assert reference_metrics.classification_metrics(logits, labels) == reference_metrics.classification_metrics(
        np.array([1, 0, 0, 1]), labels
    )


def test_hand_computed_values():
    # predictions 1 1 0 0 1 against labels 1 0 0 1 1: tp=2 fp=1 fn=1
    result = reference_metrics.classification_metrics(np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1]))
    assert result == pytest.approx({"accuracy": 0.6, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})


@pytest.mark.parametrize(
    ("predictions", "labels"),
    [([0, 0, 0], [1, 0, 1]), ([1, 1], [0, 0]), ([0, 0], [0, 0]), ([1], [1])],
)
def test_one_class_batches_neither_crash_nor_warn(predictions, labels):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = reference_metrics.classification_metrics(np.array(predictions), np.array(labels))
    assert all(np.isfinite(list(result.values())))
    assert result == pytest.approx(_sklearn(predictions, labels))


def test_compute_metrics_accepts_eval_prediction_and_tuple():
    from transformers import EvalPrediction

    logits = np.array([[0.2, 0.1], [0.0, 3.0]], dtype=np.float32)
    labels = np.array([0, 1])
    assert reference_metrics.compute_metrics(EvalPrediction(predictions=logits, label_ids=labels))["accuracy"] == 1.0
    assert reference_metrics.compute_metrics((logits, labels))["f1"] == 1.0


def test_logits_tuple_and_tensor():
    import torch

    logits = torch.tensor([[0.2, 0.1], [0.0, 3.0]])
    assert metrics.to_predictions(logits).tolist() == [0, 1]
    assert metrics.to_predictions((logits.numpy(), "hidden states")).tolist() == [0, 1]


def test_confusion_matrix_matches_scikit_learn():
    rng = np.random.default_rng(0)
    predictions = rng.integers(0, 2, size=40)
    labels = rng.integers(0, 2, size=40)
    assert metrics.confusion_matrix(predictions, labels).tolist() == confusion_matrix(labels, predictions).tolist()


@pytest.mark.parametrize(
    ("values", "labels", "match"),
    [
        (np.zeros((2, 2, 2)), [0, 1], "shape"),
        (np.array([0.5, 0.7]), [0, 1], "non-integer"),
        (np.array([0, 1, 1]), [0, 1], "differ in length"),
        (np.array([], dtype=int), [], "empty"),
    ],
)
def test_bad_input_says_what_is_wrong(values, labels, match):
    with pytest.raises(ValueError, match=match):
        reference_metrics.classification_metrics(values, np.array(labels))


def test_plot_confusion_matrix_writes_the_counts():
    figure = metrics.plot_confusion_matrix(np.array([[5, 1], [2, 7]]), title="t")
    texts = sorted(t.get_text() for t in figure.axes[0].texts)
    assert texts == ["1", "2", "5", "7"]
