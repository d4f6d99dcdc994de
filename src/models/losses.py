"""Training losses, chosen with the ``loss=`` config group: ce, weighted_ce, dice, dice_ce, dice_weighted_ce,
dice_ce_cldice.

Every loss is called as ``loss(logits, label, weight=None)`` with logits ``(B, C, H, W)``, integer labels
``(B, H, W)`` and an optional per-pixel weight map ``(B, H, W)`` (the paper's border weights, cropped and
deformed with the label by the data module). Losses are computed in float32 whatever the autocast precision.

Dice and cross-entropy each take the class probabilities (or their logarithm) as well as the logits, so that
:class:`DiceCrossEntropy` computes one log-softmax for both, and the one-hot target is built by one comparison
rather than ``F.one_hot`` (int64, then permuted and converted): about half the time (docs/speed.md).
Pixels labelled :data:`~src.data.labels.IGNORE` (unlabelled) count in no loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from src.data.labels import IGNORE


def labelled(label: torch.Tensor) -> torch.Tensor | None:
    """The mask of labelled pixels, or None when every pixel is labelled (the common, cheaper case)."""
    valid = label != IGNORE
    return None if bool(valid.all()) else valid


class CrossEntropy(nn.Module):
    """Pixel-wise cross-entropy; with ``weighted=True`` each pixel's term is scaled by the weight map.

    The weighted mean is normalised by the sum of the weights, so the loss scale (and a good learning rate)
    does not depend on ``w0``. Without a weight map (validation on whole slices) the plain mean is returned.
    """

    def __init__(self, weighted: bool = False, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"loss.label_smoothing={label_smoothing} must be from 0 up to (not) 1")
        self.weighted = weighted
        self.label_smoothing = label_smoothing

    @property
    def needs_weight_map(self) -> bool:
        return self.weighted

    def forward(self, logits: torch.Tensor, label: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return self.from_log_probability(logits.float().log_softmax(dim=1), label, weight)

    def from_log_probability(
        self, log_prob: torch.Tensor, label: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The loss from log-softmax class scores ``(B, C, H, W)`` (what ``F.cross_entropy`` computes first)."""
        valid = labelled(label)
        per_pixel = F.nll_loss(log_prob, label, reduction="none", ignore_index=IGNORE)
        if self.label_smoothing:  # as F.cross_entropy: the target is (1 - eps) one-hot + eps uniform over classes
            per_pixel = (1 - self.label_smoothing) * per_pixel - self.label_smoothing * log_prob.mean(dim=1)
        if valid is not None:
            weight = valid.float() if not self.weighted or weight is None else weight.float() * valid
            return (per_pixel * weight).sum() / weight.sum().clamp_min(1e-12)
        if not self.weighted or weight is None:
            return per_pixel.mean()
        weight = weight.float()
        return (per_pixel * weight).sum() / weight.sum().clamp_min(1e-12)


def one_hot(label: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """``(B, H, W)`` class indices as a ``(B, C, H, W)`` one-hot map (one comparison, no int64 intermediate)."""
    classes = torch.arange(num_classes, device=label.device).view(1, num_classes, 1, 1)
    return (label.unsqueeze(1) == classes).to(dtype)


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
        return self.from_probability(logits.float().softmax(dim=1), label)

    def from_probability(self, prob: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The loss from softmax class probabilities ``(B, C, H, W)``."""
        target = one_hot(label, prob.shape[1], prob.dtype)  # an unlabelled pixel's row is all zeros
        valid = labelled(label)
        if valid is not None:
            prob = prob * valid.unsqueeze(1)
        if not self.include_background:
            prob, target = prob[:, 1:], target[:, 1:]
        dims = (0, 2, 3)
        overlap = (prob * target).sum(dims)
        total = prob.sum(dims) + target.sum(dims)
        return 1 - ((2 * overlap + self.smooth) / (total + self.smooth)).mean()


def _soft_erode(x: torch.Tensor) -> torch.Tensor:
    """Grey-value erosion of ``(..., H, W)`` by a 3x3 cross: each pixel's minimum with its 4 neighbours.

    One minimum over the five shifted views (outside the image counts as +inf): on a CPU its backward pass is
    faster than that of ``max_pool2d`` windows or of chained pairwise minima.
    """
    padded = F.pad(x, (1, 1, 1, 1), value=float("inf"))
    shifted = (padded[..., :-2, 1:-1], padded[..., 2:, 1:-1], padded[..., 1:-1, :-2], padded[..., 1:-1, 2:])
    return torch.stack((x, *shifted)).amin(0)


def _soft_dilate(x: torch.Tensor) -> torch.Tensor:
    """Grey-value dilation of ``(..., H, W)`` by a 3x3 square, as two 3-pixel maxima (rows, then columns)."""
    padded = F.pad(x, (1, 1, 0, 0), value=float("-inf"))
    rows = torch.stack((x, padded[..., :, :-2], padded[..., :, 2:])).amax(0)
    padded = F.pad(rows, (0, 0, 1, 1), value=float("-inf"))
    return torch.stack((rows, padded[..., :-2, :], padded[..., 2:, :])).amax(0)


def soft_skeleton(x: torch.Tensor, iterations: int) -> torch.Tensor:
    """Differentiable skeleton of a ``(B, 1, H, W)`` map in [0, 1] (Shit et al. 2021, arXiv 2003.07311).

    Morphological skeleton by successive erosions: what each erosion level loses under an opening is a ridge
    of that level, and the ridges of all levels together make the skeleton. ``iterations`` must reach half the
    width of the thickest structure to be thinned.
    """
    skeleton = F.relu(x - _soft_dilate(_soft_erode(x)))
    for _ in range(iterations):
        x = _soft_erode(x)
        ridge = F.relu(x - _soft_dilate(_soft_erode(x)))
        skeleton = skeleton + F.relu(ridge - skeleton * ridge)
    return skeleton


class CenterlineDice(nn.Module):
    """Soft clDice of one class (Shit et al., CVPR 2021): a loss on the connectivity of thin structures.

    Topology precision is the share of the predicted skeleton inside the true class, topology sensitivity the
    share of the true skeleton covered by the prediction; the loss is one minus their harmonic mean. For EM
    membranes (class 0) a gap in a predicted membrane leaves part of the true skeleton uncovered, which is what
    merges two cells, while plain Dice charges it only for the few pixels of the gap.
    """

    def __init__(self, foreground_class: int = 0, iterations: int = 5, smooth: float = 1.0) -> None:
        super().__init__()
        self.foreground_class = foreground_class
        self.iterations = iterations
        self.smooth = smooth

    needs_weight_map = False

    def forward(self, logits: torch.Tensor, label: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return self.from_probability(logits.float().softmax(dim=1), label)

    def from_probability(self, prob: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The loss from softmax class probabilities ``(B, C, H, W)``."""
        prob = prob[:, self.foreground_class : self.foreground_class + 1]
        target = (label == self.foreground_class).unsqueeze(1).to(prob.dtype)
        valid = labelled(label)
        if valid is not None:
            prob = prob * valid.unsqueeze(1)
        skeleton_pred = soft_skeleton(prob, self.iterations)
        with torch.no_grad():
            skeleton_true = soft_skeleton(target, self.iterations)
        precision = ((skeleton_pred * target).sum() + self.smooth) / (skeleton_pred.sum() + self.smooth)
        sensitivity = ((skeleton_true * prob).sum() + self.smooth) / (skeleton_true.sum() + self.smooth)
        return 1 - 2 * precision * sensitivity / (precision + sensitivity)


class DiceCrossEntropy(nn.Module):
    """``dice_weight * Dice + ce_weight * CrossEntropy`` (nnU-Net's default loss); ``weighted`` as in CE.

    ``cldice_weight`` > 0 adds that much :class:`CenterlineDice` of the membranes (``loss=dice_ce_cldice``).
    """

    def __init__(
        self,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        weighted: bool = False,
        cldice_weight: float = 0.0,
        cldice_iterations: int = 5,
    ) -> None:
        super().__init__()
        terms = {"dice_weight": dice_weight, "ce_weight": ce_weight, "cldice_weight": cldice_weight}
        if min(terms.values()) < 0 or not sum(terms.values()) > 0:  # a negative term would be maximised
            raise ValueError(
                f"loss.{', loss.'.join(f'{k}={v}' for k, v in terms.items())} must be 0 or more, not all 0"
            )
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight
        self.cldice_weight = cldice_weight
        self.dice = Dice()
        self.ce = CrossEntropy(weighted=weighted)
        self.cldice = CenterlineDice(iterations=cldice_iterations)

    @property
    def needs_weight_map(self) -> bool:
        return self.ce.weighted

    def forward(self, logits: torch.Tensor, label: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        log_prob = logits.float().log_softmax(dim=1)  # one softmax serves every part
        prob = log_prob.exp()
        loss = self.dice_weight * self.dice.from_probability(prob, label)
        loss = loss + self.ce_weight * self.ce.from_log_probability(log_prob, label, weight)
        if self.cldice_weight:
            loss = loss + self.cldice_weight * self.cldice.from_probability(prob, label)
        return loss
