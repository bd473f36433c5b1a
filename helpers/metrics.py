"""Classification metrics for the GPT-2 / IMDB assignment, from logits or from predictions.

Everything here is binary classification with label ``1`` ("positive") as the positive class,
as in the lab. Precision, recall and F1 are those of the positive class (not averaged over both
classes), and a batch with no predicted or no actual positives gives ``0.0`` instead of a
division-by-zero error or a warning.

>>> import numpy as np
>>> classification_metrics(np.array([[2.0, -1.0], [0.1, 0.3]]), np.array([0, 1]))
{'accuracy': 1.0, 'precision': 1.0, 'recall': 1.0, 'f1': 1.0}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: The metric names `classification_metrics` returns, in order.
METRIC_NAMES = ("accuracy", "precision", "recall", "f1")


def to_predictions(logits_or_predictions: Any) -> np.ndarray:
    """Class ids from model output.

    A 2-D array ``(n, num_labels)`` of logits (or probabilities) becomes its ``argmax`` over the
    last axis; a 1-D array of ids is returned as integers. A tuple, as some models return
    ``(logits, hidden_states)``, uses its first element. Raises ``ValueError`` for anything else.
    """
    values = logits_or_predictions
    if isinstance(values, tuple):
        values = values[0]
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim == 2:
        return array.argmax(axis=-1).astype(np.int64)
    if array.ndim == 1:
        if array.size and not np.all(np.equal(np.mod(array, 1), 0)):
            raise ValueError(
                "got a 1-D array of non-integer values: pass logits as a 2-D array "
                "(examples x classes) or class ids as integers"
            )
        return array.astype(np.int64)
    raise ValueError(
        f"expected logits of shape (examples, classes) or class ids of shape (examples,), "
        f"got shape {array.shape}"
    )


def _safe_divide(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def confusion_matrix(
    predictions: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray, num_labels: int = 2
) -> np.ndarray:
    """``num_labels x num_labels`` counts: row = true label, column = predicted label
    (scikit-learn's convention). ``predictions`` may also be logits."""
    preds = to_predictions(predictions)
    truth = np.asarray(labels).astype(np.int64)
    if preds.shape != truth.shape:
        raise ValueError(
            f"predictions and labels differ in length: {preds.shape[0]} predictions for "
            f"{truth.shape[0]} labels"
        )
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (truth, preds), 1)
    return matrix


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


def plot_confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str] = ("negative", "positive"), title: str = ""
):
    """A matplotlib ``Figure`` of a confusion matrix with the counts written in the cells."""
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(4, 3.5))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), labels=class_names)
    ax.set_yticks(range(len(class_names)), labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(col, row, str(count), ha="center", va="center",
                color="white" if count > threshold else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    plt.close(fig)
    return fig
