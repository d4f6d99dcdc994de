"""torchmetrics wrappers of the ISBI 2012 scores, accumulating per-slice results that sync across processes."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from src.metrics.isbi import THRESHOLDS, best_over_thresholds, pixel_error, slice_scores


class ISBIScores(Metric):
    """V_rand, V_info (best threshold of the slice means) and pixel error over whole slices.

    ``update(interior_prob, label, slice_ids)`` takes ``(B, H, W)`` probabilities and binary labels. Results are
    kept per slice (with the slice's id, so slices repeated by a distributed sampler count once) and gathered
    with ``cat`` across DDP processes before ``compute``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, thresholds: tuple[float, ...] = THRESHOLDS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.thresholds = tuple(thresholds)
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

    def per_slice(self) -> dict[int, dict[str, float]]:
        """Scores of each slice at the best thresholds, keyed by slice id (after sync)."""
        with self.sync_context():
            ids, scores, errors = self._gathered()
        best = best_over_thresholds(scores, self.thresholds)
        t_rand = self.thresholds.index(best["threshold"])
        t_info = self.thresholds.index(best["vinfo_threshold"])
        return {
            int(i): {"vrand": float(s[t_rand, 0]), "vinfo": float(s[t_info, 1]), "pixel_error": float(e)}
            for i, s, e in zip(ids, scores, errors, strict=True)
        }

    def _gathered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def cat(state):
            return torch.cat(state) if isinstance(state, list) else state

        ids = cat(self.slice_ids).cpu().numpy()
        scores = cat(self.scores).cpu().numpy()
        errors = cat(self.pixel_errors).cpu().numpy()
        _, first = np.unique(ids, return_index=True)
        return ids[first], scores[first], errors[first]

    def compute(self) -> dict[str, torch.Tensor]:
        _, scores, errors = self._gathered()
        best = best_over_thresholds(scores, self.thresholds)
        out = {key: torch.tensor(value, dtype=torch.float32) for key, value in best.items()}
        out["pixel_error"] = torch.tensor(float(errors.mean()), dtype=torch.float32)
        return out
