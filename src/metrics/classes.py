"""Per-class Dice and IoU from one confusion matrix, as a torchmetrics Metric and as plain numpy.

One ``bincount`` of ``label * C + prediction`` a batch counts every class at once; unlabelled pixels
(:data:`~src.data.labels.IGNORE`) are left out. A class that is neither labelled nor predicted anywhere has no
defined score: it is left out of the per-class results and of the mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric

from src.data.labels import IGNORE


def confusion_matrix(pred: np.ndarray, label: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` counts, rows the labelled class, columns the predicted one; unlabelled pixels left out."""
    label = np.asarray(label).ravel()
    pred = np.asarray(pred).ravel()
    keep = label != IGNORE
    index = label[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores_of_confusion(matrix: np.ndarray | torch.Tensor, names: Sequence[str]) -> dict:
    """``{"dice": {name: ..}, "iou": {name: ..}, "mean_dice", "mean_iou", "accuracy"}`` of a confusion matrix."""
    matrix = np.asarray(matrix.cpu() if isinstance(matrix, torch.Tensor) else matrix, dtype=np.float64)
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


class ClassScores(Metric):
    """``update(pred, label)``: predicted class ids (or ``(B, C, H, W)`` scores, argmax taken) and labelled ids.
    ``compute()`` gives ``{prefix}accuracy``, ``{prefix}dice/mean``, ``{prefix}dice/<name>`` and
    ``{prefix}iou/<name>`` for every class with a defined score."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, names: Sequence[str], prefix: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.names = list(names)
        self.prefix = prefix
        size = len(self.names)
        self.add_state("matrix", default=torch.zeros(size * size, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, label: torch.Tensor) -> None:
        pred = pred.detach()
        if pred.dim() == label.dim() + 1:
            pred = pred.argmax(dim=1)
        label = label.detach()
        size = len(self.names)
        keep = label != IGNORE
        index = label[keep].long() * size + pred[keep].long()
        self.matrix += torch.bincount(index, minlength=size * size)

    def scores(self) -> dict:
        return scores_of_confusion(self.matrix.view(len(self.names), -1), self.names)

    def compute(self) -> dict[str, torch.Tensor]:
        scores = self.scores()
        out = {f"{self.prefix}accuracy": scores["accuracy"], f"{self.prefix}dice/mean": scores["mean_dice"]}
        out.update({f"{self.prefix}dice/{name}": value for name, value in scores["dice"].items()})
        out.update({f"{self.prefix}iou/{name}": value for name, value in scores["iou"].items()})
        return {key: torch.tensor(value, dtype=torch.float32) for key, value in out.items()}
