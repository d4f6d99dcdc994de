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

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(10))
STACK_KEYS = ("vrand", "threshold", "vinfo", "vinfo_threshold", "pixel_error")  # what validation logs of a stack
_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def truth_segments(label: np.ndarray) -> np.ndarray:
    """4-connected cells of a binary label slice (interior > 0); membrane pixels get 0."""
    cells, _ = ndimage.label(label > 0, structure=_FOUR_CONNECTED)
    return cells


def thinned_segments(interior: np.ndarray) -> np.ndarray:
    """Proposal segments of a binary interior mask after border thinning (its 4-connected regions, thinned)."""
    seeds, _ = ndimage.label(np.asarray(interior, bool), structure=_FOUR_CONNECTED)
    return thin_labels(seeds)


def thin_labels(labels: np.ndarray) -> np.ndarray:
    """Segments of a labelled slice (0 = border) after border thinning, as the challenge scores them.

    The labelled regions seed a 4-connected watershed over the border pixels, which floods the borders and
    leaves one-pixel watershed lines between regions. Every line pixel becomes a segment of its own, numbered
    after the regions. A slice without border pixels is returned as it is (as int64).
    """
    labels = np.asarray(labels)
    if labels.min(initial=0) < 0:
        raise ValueError("segment labels must be non-negative (0 marks border pixels)")
    segments = labels.astype(np.int64)
    border = segments == 0
    if not border.any():
        return segments
    top = int(segments.max())
    if top > 0:
        segments = watershed(border.astype(np.uint8), markers=segments, connectivity=1, watershed_line=True)
        segments = segments.astype(np.int64)
    lines = segments == 0
    segments[lines] = top + 1 + np.arange(int(lines.sum()))
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


SCORE_COLUMNS = ("vrand", "vinfo", "rand_split", "rand_merge")


def slice_scores(
    interior_prob: np.ndarray, label: np.ndarray, thresholds: tuple[float, ...] = THRESHOLDS
) -> np.ndarray:
    """Array ``(len(thresholds), 4)`` of :data:`SCORE_COLUMNS` for one slice at each threshold."""
    truth = truth_segments(label)
    out = np.empty((len(thresholds), len(SCORE_COLUMNS)))
    for k, threshold in enumerate(thresholds):
        scores = scores_from_segments(truth, thinned_segments(interior_prob > threshold))
        out[k] = scores.vrand, scores.vinfo, scores.rand_split, scores.rand_merge
    return out


def segmentation_scores(segmentation: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Array ``(1, 4)`` of :data:`SCORE_COLUMNS` for a labelled slice (0 = border), thinned as the protocol says."""
    scores = scores_from_segments(truth_segments(label), thin_labels(segmentation))
    return np.array([[scores.vrand, scores.vinfo, scores.rand_split, scores.rand_merge]])


def pixel_error(interior_prob: np.ndarray, label: np.ndarray) -> float:
    """Fraction of pixels whose class at threshold 0.5 differs from the label."""
    return float(((interior_prob > 0.5) != (label > 0)).mean())


def best_over_thresholds(per_slice: np.ndarray, thresholds: tuple[float, ...] = THRESHOLDS) -> dict:
    """Given ``(slices, thresholds, >=2)`` scores, the best slice-mean V_rand and V_info with their thresholds."""
    mean = per_slice.mean(axis=0)
    best_rand, best_info = int(mean[:, 0].argmax()), int(mean[:, 1].argmax())
    return {
        "vrand": float(mean[best_rand, 0]),
        "threshold": _threshold(thresholds[best_rand]),
        "vinfo": float(mean[best_info, 1]),
        "vinfo_threshold": _threshold(thresholds[best_info]),
    }


def _threshold(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def stack_report(
    per_slice: np.ndarray,
    pixel_errors: np.ndarray,
    thresholds: tuple[float | None, ...] = THRESHOLDS,
    slice_ids: list[int] | np.ndarray | None = None,
) -> dict:
    """The scores of a stack as plain data: best slice means, the threshold sweep and each slice's scores.

    ``per_slice`` is ``(slices, thresholds, 4)`` (see :data:`SCORE_COLUMNS`); a labelled segmentation has one
    "threshold", ``None``. Each slice is reported at the stack's best thresholds (V_rand's for V_rand and the
    Rand split/merge scores, V_info's for V_info).
    """
    per_slice = np.asarray(per_slice, dtype=np.float64)
    ids = list(range(len(per_slice))) if slice_ids is None else [int(i) for i in slice_ids]
    best = best_over_thresholds(per_slice, thresholds)
    t_rand = thresholds.index(best["threshold"]) if best["threshold"] is not None else 0
    t_info = thresholds.index(best["vinfo_threshold"]) if best["vinfo_threshold"] is not None else 0
    mean = per_slice.mean(axis=0)
    return {
        **best,
        "pixel_error": float(np.mean(pixel_errors)),
        "slices": len(ids),
        "per_threshold": [
            {"threshold": _threshold(t), **{c: float(v) for c, v in zip(SCORE_COLUMNS, row, strict=True)}}
            for t, row in zip(thresholds, mean, strict=True)
        ],
        "per_slice": [
            {
                "slice": i,
                "vrand": float(s[t_rand, 0]),
                "vinfo": float(s[t_info, 1]),
                "rand_split": float(s[t_rand, 2]),
                "rand_merge": float(s[t_rand, 3]),
                "pixel_error": float(e),
            }
            for i, s, e in zip(ids, per_slice, pixel_errors, strict=True)
        ],
    }


def _probability_slice(args: tuple[np.ndarray, np.ndarray, tuple[float, ...]]) -> tuple[np.ndarray, float]:
    prob, label, thresholds = args
    return slice_scores(prob, label, thresholds), pixel_error(prob, label)


def _segmentation_slice(args: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, float]:
    segmentation, label = args
    return segmentation_scores(segmentation, label), pixel_error(segmentation > 0, label)


def _map_slices(fn, items: list, workers: int) -> list:
    """``fn`` over ``items``, in ``workers`` processes when more than one (scoring is CPU-bound numpy)."""
    workers = min(workers if workers > 0 else os.cpu_count() or 1, len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    # fork: the workers inherit the arrays and need no importable __main__ (scripts without a main guard work).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method)) as pool:
        return list(pool.map(fn, items))


def score_probabilities(
    interior_probs: np.ndarray,
    labels: np.ndarray,
    thresholds: tuple[float, ...] = THRESHOLDS,
    slice_ids: list[int] | None = None,
    workers: int = 1,
) -> dict:
    """Score an ``(N, H, W)`` interior-probability stack against binary labels by the challenge protocol.

    Returns :func:`stack_report`'s dict. ``workers`` > 1 scores slices in that many processes (0: one per core).
    """
    thresholds = tuple(float(t) for t in thresholds)
    results = _map_slices(
        _probability_slice, [(p, lab, thresholds) for p, lab in zip(interior_probs, labels, strict=True)], workers
    )
    return stack_report(np.stack([r[0] for r in results]), np.array([r[1] for r in results]), thresholds, slice_ids)


def score_segmentations(
    segmentations: np.ndarray, labels: np.ndarray, slice_ids: list[int] | None = None, workers: int = 1
) -> dict:
    """Score an ``(N, H, W)`` stack of labelled cells (0 = border) against binary labels; no threshold sweep."""
    results = _map_slices(_segmentation_slice, list(zip(segmentations, labels, strict=True)), workers)
    return stack_report(np.stack([r[0] for r in results]), np.array([r[1] for r in results]), (None,), slice_ids)


def segment_errors(truth: np.ndarray, proposal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean maps of the pixels that make merge and split errors, for figures.

    Over ground-truth cells only: a pixel is a *merge* error when its proposal segment mostly covers another
    true cell, and a *split* error when its true cell mostly lies in another proposal segment. Single-pixel
    segments (thinned border lines) are not coloured.
    """
    mask = truth > 0
    merges = np.zeros(truth.shape, bool)
    splits = np.zeros(truth.shape, bool)
    if not mask.any():
        return merges, splits
    _, t = np.unique(truth[mask], return_inverse=True)
    _, p = np.unique(proposal[mask], return_inverse=True)
    n_p = int(p.max()) + 1
    pairs, counts = np.unique(t.astype(np.int64) * n_p + p, return_counts=True)
    pair_t, pair_p = pairs // n_p, pairs % n_p
    main_p = _dominant(pair_t, pair_p, counts, int(t.max()) + 1)
    main_t = _dominant(pair_p, pair_t, counts, n_p)
    real = np.bincount(p)[p] > 1
    merges[mask] = real & (main_t[p] != t)
    splits[mask] = real & (main_p[t] != p)
    return merges, splits


def _dominant(keys: np.ndarray, values: np.ndarray, counts: np.ndarray, size: int) -> np.ndarray:
    """For each key, the value it shares the most pixels with."""
    order = np.lexsort((-counts, keys))
    first = np.unique(keys[order], return_index=True)[1]
    out = np.full(size, -1, np.int64)
    out[keys[order][first]] = values[order][first]
    return out
