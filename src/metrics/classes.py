"""Per-class Dice and IoU from one confusion matrix, in plain numpy (no torch: ``src.score`` starts in a second).

One ``bincount`` of ``label * C + prediction`` counts every class at once; unlabelled pixels
(:data:`~src.data.labels.IGNORE`) are left out. A class that is neither labelled nor predicted anywhere has no
defined score: it is left out of the per-class results and of the mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from src.data.labels import IGNORE


def confusion_matrix(pred: np.ndarray, label: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` counts, rows the labelled class, columns the predicted one; unlabelled pixels left out."""
    label = np.asarray(label).ravel()
    pred = np.asarray(pred).ravel()
    keep = label != IGNORE
    index = label[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores_of_confusion(matrix, names: Sequence[str]) -> dict:
    """``{"dice": {name: ..}, "iou": {name: ..}, "mean_dice", "mean_iou", "accuracy"}`` of a confusion matrix
    (a numpy array, or a CPU tensor)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    labelled, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    union = labelled + predicted - tp
    dice = {n: float(2 * tp[i] / (labelled[i] + predicted[i])) for i, n in enumerate(names) if union[i] > 0}
    iou = {n: float(tp[i] / union[i]) for i, n in enumerate(names) if union[i] > 0}
    total = matrix.sum()
    return {
        "dice": dice,
        "iou": iou,
        "mean_dice": float(np.mean(list(dice.values()))) if dice else 0.0,
        "mean_iou": float(np.mean(list(iou.values()))) if iou else 0.0,
        "accuracy": float(tp.sum() / total) if total else 0.0,
    }


def class_scores(pred: np.ndarray, label: np.ndarray, names: Sequence[str]) -> dict:
    """:func:`scores_of_confusion` of a predicted class-id stack against a labelled one."""
    return scores_of_confusion(confusion_matrix(pred, label, len(names)), names)


def score_keys(names: Sequence[str], prefix: str = "") -> list[str]:
    """The keys of the scores :class:`~src.metrics.torchmetrics_classes.ClassScores` logs for classes ``names``
    (a class with no defined score in a stage is left out there)."""
    per_class = [f"{prefix}{score}/{name}" for score in ("dice", "iou") for name in names]
    return [f"{prefix}accuracy", f"{prefix}dice/mean", *per_class]
