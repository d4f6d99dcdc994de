"""Per-class Dice and IoU as a torchmetrics Metric: one confusion matrix a batch, summed across DDP processes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from src.data.labels import IGNORE
from src.metrics.classes import scores_of_confusion


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
        return scores_of_confusion(self.matrix.view(len(self.names), -1).cpu(), self.names)

    def compute(self) -> dict[str, torch.Tensor]:
        scores = self.scores()
        out = {f"{self.prefix}accuracy": scores["accuracy"], f"{self.prefix}dice/mean": scores["mean_dice"]}
        out.update({f"{self.prefix}dice/{name}": value for name, value in scores["dice"].items()})
        out.update({f"{self.prefix}iou/{name}": value for name, value in scores["iou"].items()})
        return {key: torch.tensor(value, dtype=torch.float32) for key, value in out.items()}
