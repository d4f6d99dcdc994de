"""Mean-affinity agglomeration (Funke et al. 2019, IEEE TPAMI 41(7):1669-1680) of predicted affinities, by waterz.

``postprocess=mean_affinity``: a watershed of the nearest-neighbour affinities gives fragments, and neighbouring
fragments are merged, lowest first, by ``1 - mean affinity`` of their shared boundary until it reaches
``threshold``. waterz is the authors' maintained library; its wheel carries this scoring function compiled, so it
needs no compiler. Only the nearest-neighbour offsets are read (2-D slices run as volumes of depth 1).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from src.utils.errors import UserError


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence what C++ code prints to the process's standard output (waterz reports every step there)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def nearest_channels(offsets: Sequence[Sequence[int]]) -> list[int]:
    """The channels of the offsets ``-1`` along one axis each (z, y, x order; y, x in 2-D)."""
    ndim = len(offsets[0])
    wanted = [tuple(-1 if axis == i else 0 for axis in range(ndim)) for i in range(ndim)]
    found = [tuple(o) for o in offsets]
    missing = [list(w) for w in wanted if w not in found]
    if missing:
        raise UserError(f"postprocess=mean_affinity needs the nearest-neighbour offsets {missing} in model.offsets")
    return [found.index(w) for w in wanted]


def mean_affinity_cells(
    affinities: np.ndarray, offsets: Sequence[Sequence[int]], threshold: float, low: float
) -> np.ndarray:
    """Cells (1, 2, ...; 0 = border) of an affinity map ``(K, H, W)`` or ``(K, D, H, W)``, merged up to
    ``threshold``; pixels with no nearest-neighbour affinity above ``low`` join no fragment (border)."""
    import waterz

    nearest = affinities[nearest_channels(offsets)].astype(np.float32)
    if nearest.ndim == 3:  # a slice: a volume of depth 1 whose z affinities are never read
        nearest = np.concatenate([np.zeros_like(nearest[:1]), nearest])[:, None]
    with quiet_stdout():
        cells = next(waterz.agglomerate(np.ascontiguousarray(nearest), [threshold], aff_threshold_low=low)).copy()
    _, numbered = np.unique(cells, return_inverse=True)
    return (numbered.reshape(cells.shape) + (cells.min() > 0)).reshape(affinities.shape[1:]).astype(np.int32)


@dataclass(frozen=True)
class MeanAffinity:
    """``postprocess=mean_affinity``: waterz fragments merged while ``1 - mean affinity`` is below ``threshold``;
    ``low``: a pixel whose nearest-neighbour affinities are all below it stays border (0), rather than joining
    a fragment along a near-zero affinity (membrane pixels would, and take their fragment's mean down)."""

    threshold: float = 0.5
    low: float = 0.3
    offsets: tuple = field(default=())

    input = "affinities"

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0 or not 0.0 < self.low < 1.0:
            raise UserError(f"postprocess.threshold={self.threshold} and low={self.low} must be in (0, 1)")

    def with_offsets(self, offsets: Sequence[Sequence[int]]) -> MeanAffinity:
        offsets = tuple(tuple(int(o) for o in offset) for offset in offsets)
        nearest_channels(offsets)
        return MeanAffinity(self.threshold, self.low, offsets)

    def __call__(self, affinities: np.ndarray) -> np.ndarray:
        if not self.offsets:
            raise UserError("postprocess=mean_affinity needs a network trained with model.target=affinities")
        return mean_affinity_cells(np.asarray(affinities), self.offsets, self.threshold, self.low)
