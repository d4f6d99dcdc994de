"""Wider membranes in the training labels: each cell's interior eroded by a few pixels.

The challenge's protocol thins every proposed border to a one-pixel line before scoring, and leaves the
ground truth's membrane pixels out of the count, so a prediction whose membranes are too thick costs almost
nothing, while a one-pixel gap in a membrane merges two cells. Training on labels whose membranes are widened
by ``pixels`` on each side asks the network to draw a wider band wherever it sees a membrane. Cells that the
erosion would remove entirely (small cross-sections of thin neurites) keep their original interior, so
no cell disappears from the labels. Only the training labels are widened; validation, test and scores use the
stack's own labels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def widen_membranes(interior: np.ndarray, pixels: int) -> np.ndarray:
    """``(N, H, W)`` or ``(H, W)`` interior masks (1 = cell) with each cell eroded by ``pixels`` (4-connected)."""
    if pixels < 0:
        raise ValueError(f"membrane widening must be 0 or more pixels, got {pixels}")
    interior = np.asarray(interior)
    if pixels == 0:
        return interior.copy()
    if interior.ndim == 3:
        return np.stack([widen_membranes(s, pixels) for s in interior])
    cells, _ = ndimage.label(interior > 0, structure=_FOUR_CONNECTED)
    eroded = ndimage.binary_erosion(interior > 0, structure=_FOUR_CONNECTED, iterations=pixels, border_value=1)
    kept = np.unique(cells[eroded])
    vanished = (cells > 0) & ~np.isin(cells, kept)
    return (eroded | vanished).astype(interior.dtype)


def widen_boundary(classes: np.ndarray, pixels: int, boundary: int) -> np.ndarray:
    """Class-id stacks with the ``boundary`` class widened by ``pixels`` into every other labelled class (the cells
    of :func:`widen_membranes` are the pixels of any other class); unlabelled pixels stay unlabelled."""
    from src.data.labels import IGNORE

    if pixels == 0:
        return np.array(classes, copy=True)
    cells = (classes != boundary) & (classes != IGNORE)
    kept = widen_membranes(cells.astype(np.uint8), pixels).astype(bool)
    return np.where(cells & ~kept, boundary, classes).astype(classes.dtype)
