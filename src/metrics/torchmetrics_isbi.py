"""torchmetrics wrappers of the ISBI 2012 scores, accumulating per-slice results that sync across processes."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from src.metrics.isbi import STACK_KEYS, THRESHOLDS, pixel_error, slice_scores, stack_report


class ISBIScores(Metric):
    """V_rand, V_info (best threshold of the slice means) and pixel error over whole slices.

    ``update(interior_prob, label, slice_ids)`` takes ``(B, H, W)`` probabilities and binary labels. Results are
    kept per slice (with the slice's id, so slices repeated by a distributed sampler count once) and gathered
    with ``cat`` across DDP processes before ``compute``. ``compute`` returns a dict of scalar tensors
    (``vrand``, ``threshold``, ``vinfo``, ``vinfo_threshold``, ``pixel_error``); :meth:`report` the whole
    :func:`src.metrics.isbi.stack_report` (threshold sweep and per-slice scores).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, thresholds: tuple[float, ...] = THRESHOLDS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("pixel_errors", default=[], dist_reduce_fx="cat")
        self.add_state("slice_ids", default=[], dist_reduce_fx="cat")

    def update(self, interior_prob: torch.Tensor, label: torch.Tensor, slice_ids: torch.Tensor) -> None:
        probs = interior_prob.detach().float().cpu().numpy()
        labels = label.detach().cpu().numpy()
        for prob, lab in zip(probs, labels, strict=True):
            self.scores.append(torch.as_tensor(slice_scores(prob, lab, self.thresholds), device=self.device)[None])
            self.pixel_errors.append(torch.tensor([pixel_error(prob, lab)], device=self.device, dtype=torch.float64))
        self.slice_ids.append(slice_ids.detach().reshape(-1).to(self.device))

    def report(self) -> dict:
        """The full report of every slice seen by any process (threshold sweep and per-slice scores)."""
        with self.sync_context():
            return self._report()

    def _report(self) -> dict:
        def cat(state):
            return torch.cat(state) if isinstance(state, list) else state

        ids = cat(self.slice_ids).cpu().numpy()
        scores = cat(self.scores).cpu().numpy()
        errors = cat(self.pixel_errors).cpu().numpy()
        _, first = np.unique(ids, return_index=True)  # sorted by slice id; repeats from padding count once
        return stack_report(scores[first], errors[first], self.thresholds, ids[first])

    def compute(self) -> dict[str, torch.Tensor]:
        report = self._report()
        return {key: torch.tensor(report[key], dtype=torch.float32) for key in STACK_KEYS}


class _OneScore(ISBIScores):
    key = ""

    def compute(self) -> torch.Tensor:
        return super().compute()[self.key]


class VRand(_OneScore):
    """Foreground-restricted Rand score after thinning, at the best threshold of the slice means."""

    key = "vrand"


class VInfo(_OneScore):
    """Foreground-restricted information-theoretic score after thinning, at its best threshold."""

    key = "vinfo"


class PixelError(_OneScore):
    """Fraction of pixels classified wrongly at threshold 0.5."""

    key = "pixel_error"
    higher_is_better = False
