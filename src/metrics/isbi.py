"""The ISBI 2012 challenge's segmentation scores (Arganda-Carreras et al. 2015, Front. Neuroanat. 9:142).

The protocol, as in the challenge's Fiji evaluation:

* ground-truth cells are the 4-connected regions of the label interior; membrane pixels of the ground truth
  are left out of the count (the *foreground restriction*);
* the proposal is the interior probability thresholded at ``t``; its borders are thinned to one-pixel lines
  by a 4-connected watershed seeded from its interior regions, and each remaining line pixel is a segment
  of its own;
* from the contingency table ``p_ij`` over ground-truth foreground pixels, V_rand is the F-score of Rand
  precision ``sum p_ij^2 / sum b_j^2`` and recall ``sum p_ij^2 / sum a_i^2``, and V_info is the F-score of
  ``I / H(proposal)`` and ``I / H(truth)``, i.e. ``2 I / (H(truth) + H(proposal))``;
* scores are averaged over slices for each threshold and the best threshold is reported.

The table arithmetic is written once here and used by the torchmetrics classes, ``src.score`` and reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(10))
_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def truth_segments(label: np.ndarray) -> np.ndarray:
    """4-connected cells of a binary label slice (interior > 0); membrane pixels get 0."""
    cells, _ = ndimage.label(label > 0, structure=_FOUR_CONNECTED)
    return cells


def thinned_segments(interior: np.ndarray) -> np.ndarray:
    """Proposal segments of a binary interior mask after border thinning.

    The interior's 4-connected regions seed a 4-connected watershed over the mask, which floods the borders
    and leaves one-pixel watershed lines between regions. Every line pixel becomes a segment of its own,
    numbered after the regions.
    """
    interior = interior.astype(bool)
    seeds, count = ndimage.label(interior, structure=_FOUR_CONNECTED)
    if count == 0:
        segments = np.zeros(interior.shape, np.int64)
    else:
        segments = watershed((~interior).astype(np.uint8), markers=seeds, connectivity=1, watershed_line=True).astype(
            np.int64
        )
    lines = segments == 0
    segments[lines] = count + 1 + np.arange(int(lines.sum()))
    return segments


@dataclass(frozen=True)
class SliceScores:
    vrand: float
    vinfo: float
    rand_split: float  # Rand recall: low when true cells are split
    rand_merge: float  # Rand precision: low when true cells are merged


def _f_score(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def scores_from_segments(truth: np.ndarray, proposal: np.ndarray) -> SliceScores:
    """V_rand and V_info of ``proposal`` segments against ``truth`` segments (0 = ground-truth membrane)."""
    mask = truth > 0
    t = truth[mask].astype(np.int64)
    p = proposal[mask].astype(np.int64)
    n = t.size
    if n == 0:
        raise ValueError("the ground truth slice has no foreground pixels; V_rand and V_info are undefined")
    _, t = np.unique(t, return_inverse=True)
    _, p = np.unique(p, return_inverse=True)
    joint = np.unique(t * (int(p.max()) + 1) + p, return_counts=True)[1] / n
    a = np.bincount(t) / n
    b = np.bincount(p) / n
    sum_p2, sum_a2, sum_b2 = float((joint**2).sum()), float((a**2).sum()), float((b**2).sum())
    merge, split = sum_p2 / sum_b2, sum_p2 / sum_a2
    h_joint = float(-(joint * np.log(joint)).sum())
    h_truth = float(-(a * np.log(a)).sum())
    h_prop = float(-(b * np.log(b)).sum())
    info = h_truth + h_prop - h_joint
    vinfo = 1.0 if h_truth + h_prop == 0 else 2 * info / (h_truth + h_prop)
    return SliceScores(vrand=_f_score(merge, split), vinfo=vinfo, rand_split=split, rand_merge=merge)


def slice_scores(
    interior_prob: np.ndarray, label: np.ndarray, thresholds: tuple[float, ...] = THRESHOLDS
) -> np.ndarray:
    """Array ``(len(thresholds), 2)`` of (V_rand, V_info) for one slice at each threshold."""
    truth = truth_segments(label)
    out = np.empty((len(thresholds), 2))
    for k, threshold in enumerate(thresholds):
        scores = scores_from_segments(truth, thinned_segments(interior_prob > threshold))
        out[k] = scores.vrand, scores.vinfo
    return out


def pixel_error(interior_prob: np.ndarray, label: np.ndarray) -> float:
    """Fraction of pixels whose class at threshold 0.5 differs from the label."""
    return float(((interior_prob > 0.5) != (label > 0)).mean())


def best_over_thresholds(per_slice: np.ndarray, thresholds: tuple[float, ...] = THRESHOLDS) -> dict:
    """Given ``(slices, thresholds, 2)`` scores, the best slice-mean V_rand and V_info with their thresholds."""
    mean = per_slice.mean(axis=0)
    best_rand, best_info = int(mean[:, 0].argmax()), int(mean[:, 1].argmax())
    return {
        "vrand": float(mean[best_rand, 0]),
        "threshold": float(thresholds[best_rand]),
        "vinfo": float(mean[best_info, 1]),
        "vinfo_threshold": float(thresholds[best_info]),
    }
