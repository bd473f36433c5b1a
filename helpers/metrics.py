"""Looking at a classifier's predictions (GPT-2 / IMDB assignment): class ids from logits, the
confusion matrix and its plot. Label ``1`` ("positive") is the positive class, as in the lab.

Computing accuracy, precision, recall and F1 (``compute_metrics``) is the assignment's task:
you write it in the notebook (the course's own answer is instructor-only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: The metric names assignment 01 reports, in order.
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
