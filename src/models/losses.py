"""Training losses, chosen with the ``loss=`` config group: ce, weighted_ce, dice, dice_ce, dice_weighted_ce.

Every loss is called as ``loss(logits, label, weight=None)`` with logits ``(B, C, H, W)``, integer labels
``(B, H, W)`` and an optional per-pixel weight map ``(B, H, W)`` (the paper's border weights, cropped and
deformed with the label by the data module). Losses are computed in float32 whatever the autocast precision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropy(nn.Module):
    """Pixel-wise cross-entropy; with ``weighted=True`` each pixel's term is scaled by the weight map.

    The weighted mean is normalised by the sum of the weights, so the loss scale (and a good learning rate)
    does not depend on ``w0``. Without a weight map (validation on whole slices) the plain mean is returned.
    """

    def __init__(self, weighted: bool = False, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.weighted = weighted
        self.label_smoothing = label_smoothing

    @property
    def needs_weight_map(self) -> bool:
        return self.weighted

    def forward(self, logits: torch.Tensor, label: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        per_pixel = F.cross_entropy(logits.float(), label, reduction="none", label_smoothing=self.label_smoothing)
        if not self.weighted or weight is None:
            return per_pixel.mean()
        weight = weight.float()
        return (per_pixel * weight).sum() / weight.sum().clamp_min(1e-12)


class Dice(nn.Module):
    """Soft Dice loss, ``1 - mean over classes of 2|P·Y| / (|P| + |Y|)``, summed over the whole batch.

    Both classes count by default (membranes are the minority class and the one whose gaps matter).
    """

    def __init__(self, include_background: bool = True, smooth: float = 1.0) -> None:
        super().__init__()
        self.include_background = include_background
        self.smooth = smooth

    needs_weight_map = False

    def forward(self, logits: torch.Tensor, label: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        prob = logits.float().softmax(dim=1)
        target = F.one_hot(label, prob.shape[1]).permute(0, 3, 1, 2).to(prob.dtype)
        if not self.include_background:
            prob, target = prob[:, 1:], target[:, 1:]
        dims = (0, 2, 3)
        overlap = (prob * target).sum(dims)
        total = prob.sum(dims) + target.sum(dims)
        return 1 - ((2 * overlap + self.smooth) / (total + self.smooth)).mean()


class DiceCrossEntropy(nn.Module):
    """``dice_weight * Dice + ce_weight * CrossEntropy`` (nnU-Net's default loss); ``weighted`` as in CE."""

    def __init__(self, dice_weight: float = 1.0, ce_weight: float = 1.0, weighted: bool = False) -> None:
        super().__init__()
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight
        self.dice = Dice()
        self.ce = CrossEntropy(weighted=weighted)

    @property
    def needs_weight_map(self) -> bool:
        return self.ce.weighted

    def forward(self, logits: torch.Tensor, label: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return self.dice_weight * self.dice(logits, label) + self.ce_weight * self.ce(logits, label, weight)
