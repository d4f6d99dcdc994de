"""Instance post-processing: from an interior-probability slice to labelled cells (0 = border).

Two methods, each a small callable built from config (``conf/postprocess/``) and scored by the same ISBI
protocol as the raw probabilities (:func:`src.metrics.isbi.score_segmentations`):

* :class:`ConnectedComponents`: 4-connected regions of ``prob > threshold``. Scored through the protocol's
  thinning, this equals the raw threshold score at that threshold; a gap in a membrane merges two cells.
* :class:`SeededWatershed`: one marker per cell, from the h-maxima of the smoothed probability (``maxima``)
  or of the distance transform of the thresholded interior (``distance``), flooded over the inverted map.
  Two cells touching through a small gap in their membrane keep separate markers, so the flood closes the gap
  along the ridge of the membrane probability instead of merging them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hydra.utils import instantiate
from scipy import ndimage
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from src.utils.errors import UserError

_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = ndimage.generate_binary_structure(2, 2)
MARKERS = ("maxima", "distance")


def check_probability(prob: np.ndarray) -> np.ndarray:
    """One ``(H, W)`` probability slice as float32, as every post-processing method takes it."""
    prob = np.asarray(prob, dtype=np.float32)
    if prob.ndim != 2:
        raise ValueError(f"post-processing takes one (H, W) probability slice, got shape {prob.shape}")
    return prob


@dataclass(frozen=True)
class ConnectedComponents:
    """4-connected regions of ``prob > threshold``, numbered 1, 2, ...; everything else is border (0)."""

    threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold < 1.0:
            raise UserError(f"postprocess.threshold={self.threshold} must be in [0, 1)")

    def __call__(self, prob: np.ndarray) -> np.ndarray:
        labels, _ = ndimage.label(check_probability(prob) > self.threshold, structure=_FOUR)
        return labels.astype(np.int32)


@dataclass(frozen=True)
class SeededWatershed:
    """Marker-controlled watershed of the interior probability, closing small gaps in membranes.

    Args:
        markers: ``maxima``: h-maxima of the probability smoothed with ``sigma``; ``distance``: h-maxima of the
            Euclidean distance to the border of ``prob > threshold`` (``h`` in pixels then).
        sigma: Gaussian smoothing (pixels) of the probability before markers and flooding; 0 = none.
        h: how far a maximum must rise above its surroundings to seed a cell (probability units or pixels).
        threshold: interior threshold of the ``distance`` markers; with ``mask: true``, pixels at or below it
            stay border.
        mask: keep ``prob <= threshold`` pixels as border (0) instead of flooding every pixel.
        watershed_line: leave one-pixel border lines (0) between touching cells.
    """

    markers: str = "maxima"
    sigma: float = 2.0
    h: float = 0.05
    threshold: float = 0.5
    mask: bool = False
    watershed_line: bool = True

    def __post_init__(self) -> None:
        if self.markers not in MARKERS:
            raise UserError(f"postprocess.markers={self.markers!r} is not one of {', '.join(MARKERS)}")
        if self.sigma < 0 or self.h <= 0:
            raise UserError(f"postprocess.sigma={self.sigma} must be >= 0 and postprocess.h={self.h} > 0")
        if not 0.0 <= self.threshold < 1.0:
            raise UserError(f"postprocess.threshold={self.threshold} must be in [0, 1)")

    def __call__(self, prob: np.ndarray) -> np.ndarray:
        prob = check_probability(prob)
        smooth = ndimage.gaussian_filter(prob, self.sigma) if self.sigma > 0 else prob
        if self.markers == "maxima":
            relief = smooth
        else:
            relief = ndimage.distance_transform_edt(smooth > self.threshold).astype(np.float32)
        seeds, count = ndimage.label(h_maxima(relief, self.h), structure=_EIGHT)
        if count == 0:
            return np.zeros(prob.shape, np.int32)
        mask = smooth > self.threshold if self.mask else None
        labels = watershed(-relief, markers=seeds, mask=mask, connectivity=1, watershed_line=self.watershed_line)
        return labels.astype(np.int32)


def reads_affinities(method) -> bool:
    """Whether a post-processing makes cells from affinities (the mutex watershed) rather than a probability."""
    return getattr(method, "input", "probability") == "affinities"


def build_postprocess(config: dict, offsets: Sequence = (), optional: bool = False):
    """The post-processing of a ``_target_`` config; one that reads affinities gets the network's ``offsets`` and is
    refused for a network that predicts none (or, ``optional``, left out: None)."""
    method = instantiate(config)
    if not reads_affinities(method):
        return method
    if not offsets and optional:
        return None
    if not offsets:
        raise UserError(
            f"postprocess {type(method).__name__} reads affinities, but this network predicts classes only; train "
            "with model.target=affinities, or choose postprocess=agglomeration or watershed"
        )
    return method.with_offsets(offsets)


def cells_and_contours(method, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Labelled cells of one probability slice by ``method``, and its contour map where it has one
    (:class:`~src.postprocess.agglomeration.Agglomeration`: the cells are that map cut)."""
    if hasattr(method, "contours"):
        contours = method.contours(prob)
        return method.cut(contours), contours
    return method(prob), None


def postprocess_stack(method, probs: np.ndarray) -> np.ndarray:
    """Apply ``method`` to every slice of an ``(N, H, W)`` probability stack."""
    return np.stack([method(prob) for prob in probs])
