"""Assignment 01's reference answers (instructor-only): the metrics of step 5.

Accuracy, and precision, recall and F1 of the positive class, from logits or class ids; a zero
denominator gives 0.0 (scikit-learn's ``zero_division=0``). The checks compare the student's
metrics with scikit-learn's, computed independently (``autograder.checks.gpt2_imdb``); this
module serves the instructor's own training runs (``autograder.reference.classifier``) and the
benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from helpers.metrics import to_predictions


def _safe_divide(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def classification_metrics(
    logits_or_predictions: Any, labels: Sequence[int] | np.ndarray, positive_label: int = 1
) -> dict[str, float]:
    """Accuracy, and precision, recall and F1 of the positive class.

    ``logits_or_predictions``: logits ``(n, 2)`` or class ids ``(n,)``. Zero denominators give
    ``0.0`` (scikit-learn's ``zero_division=0``), so a one-class batch never crashes.
    """
    preds = to_predictions(logits_or_predictions)
    truth = np.asarray(labels).astype(np.int64)
    if preds.shape != truth.shape:
        raise ValueError(
            f"predictions and labels differ in length: {preds.shape[0]} predictions for "
            f"{truth.shape[0]} labels"
        )
    if truth.size == 0:
        raise ValueError("no examples to score: labels is empty")
    true_pos = float(np.sum((preds == positive_label) & (truth == positive_label)))
    false_pos = float(np.sum((preds == positive_label) & (truth != positive_label)))
    false_neg = float(np.sum((preds != positive_label) & (truth == positive_label)))
    precision = _safe_divide(true_pos, true_pos + false_pos)
    recall = _safe_divide(true_pos, true_pos + false_neg)
    return {
        "accuracy": float(np.mean(preds == truth)),
        "precision": precision,
        "recall": recall,
        "f1": _safe_divide(2 * precision * recall, precision + recall),
    }


def compute_metrics(eval_pred: Any) -> dict[str, float]:
    """A ready-made ``compute_metrics`` for the ``Trainer``: takes an ``EvalPrediction`` (or a
    ``(logits, labels)`` pair) and returns `classification_metrics`."""
    if hasattr(eval_pred, "predictions"):
        logits, labels = eval_pred.predictions, eval_pred.label_ids
    else:
        logits, labels = eval_pred
    return classification_metrics(logits, labels)
