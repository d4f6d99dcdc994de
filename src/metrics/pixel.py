"""Pixel accuracy, Dice and IoU of binary masks from one count of their confusion matrix, as a torchmetrics Metric.

torchmetrics' ``BinaryAccuracy``, ``BinaryF1Score`` and ``BinaryJaccardIndex`` in one ``MetricCollection``
make two passes over every batch (stat scores, and a confusion matrix); counting the true positives and the
predicted and labelled positives once serves all three, several times faster (docs/speed.md).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class PixelScores(Metric):
    """``update(pred, label)``: boolean masks, or probabilities thresholded at 0.5 (``> 0.5``, as torchmetrics);
    labels 0/1. ``compute()`` gives ``{prefix}accuracy``, ``{prefix}dice`` and ``{prefix}iou`` (0 where undefined)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, prefix: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix
        for name in ("tp", "predicted", "labelled", "total"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, label: torch.Tensor) -> None:
        pred = pred.detach()
        if pred.dtype != torch.bool:
            pred = pred > 0.5
        positive = label.detach().bool()
        # count_nonzero, not sum: a boolean sum widens every element to int64 first
        self.tp += torch.count_nonzero(pred & positive)
        self.predicted += torch.count_nonzero(pred)
        self.labelled += torch.count_nonzero(positive)
        self.total += pred.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        tp, fp, fn = self.tp, self.predicted - self.tp, self.labelled - self.tp
        tn = self.total - tp - fp - fn

        def ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.where(b > 0, a.float() / b.clamp_min(1).float(), torch.zeros((), device=a.device))

        return {
            f"{self.prefix}accuracy": ratio(tp + tn, self.total),
            f"{self.prefix}dice": ratio(2 * tp, 2 * tp + fp + fn),
            f"{self.prefix}iou": ratio(tp, tp + fp + fn),
        }
