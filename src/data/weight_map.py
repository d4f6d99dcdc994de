"""The U-Net paper's border weight map (Ronneberger et al. 2015, eq. 2).

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))

``w_c`` balances the class frequencies of the slice, ``d1`` and ``d2`` are the distances to the nearest and
second-nearest cell. As in the paper's Fig. 3d, the border term is given to membrane (background) pixels:
it is large only in the thin gaps where two cells nearly touch, which is where a U-Net trained with plain
cross-entropy merges cells, and merges are what V_rand punishes most. (Inside a cell d1 = 0, so the formula
read literally would also weight every interior pixel near a membrane, which the paper's figure does not.)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def class_balance_weights(label: np.ndarray) -> np.ndarray:
    """``w_c``: each class weighted by ``total / (classes * count)``, so both classes weigh the same in sum."""
    counts = np.bincount(label.ravel(), minlength=2).astype(np.float64)
    present = counts > 0
    per_class = np.zeros_like(counts)
    per_class[present] = label.size / (present.sum() * counts[present])
    return per_class[label].astype(np.float32)


def nearest_two_cell_distances(label: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances ``d1 <= d2`` from every pixel to its nearest and second-nearest cell, capped at ``reach``.

    Cells are the 4-connected components of the interior mask. Each cell's distance transform is taken only in
    its bounding box grown by ``reach`` pixels: farther away, the border term is negligible, and this keeps the
    cost proportional to the slice's area rather than to area times the number of cells.
    """
    cells, count = ndimage.label(label > 0)
    d1 = np.full(label.shape, reach, dtype=np.float32)
    d2 = np.full(label.shape, reach, dtype=np.float32)
    margin = int(np.ceil(reach))
    height, width = label.shape
    for index, box in enumerate(ndimage.find_objects(cells), start=1):
        if box is None:
            continue
        top, bottom = max(0, box[0].start - margin), min(height, box[0].stop + margin)
        left, right = max(0, box[1].start - margin), min(width, box[1].stop + margin)
        window = (slice(top, bottom), slice(left, right))
        distance = ndimage.distance_transform_edt(cells[window] != index).astype(np.float32)
        np.minimum(distance, reach, out=distance)
        near, far = d1[window], d2[window]
        # Insert the new distance into the sorted pair (near <= far).
        np.minimum(far, np.maximum(near, distance), out=far)
        np.minimum(near, distance, out=near)
    return d1, d2


def border_weight_map(
    label: np.ndarray, w0: float = 10.0, sigma: float = 5.0, class_balance: bool = True
) -> np.ndarray:
    """The paper's weight map of one interior mask (1 = cell, 0 = membrane), as float32 of the same shape."""
    if label.ndim != 2:
        raise ValueError(f"border_weight_map takes one 2-D slice, not shape {label.shape}")
    if sigma <= 0:
        raise ValueError(f"data.weight_map.sigma={sigma} must be positive")
    label = (label > 0).astype(np.uint8)
    weights = class_balance_weights(label) if class_balance else np.ones(label.shape, np.float32)
    if w0 > 0:
        reach = 4.0 * sigma  # (d1 + d2) >= reach makes the term < w0 * exp(-8) ~ 3e-4 * w0
        d1, d2 = nearest_two_cell_distances(label, reach)
        border = w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
        weights += np.where(label == 0, border, 0).astype(np.float32)
    return weights


def border_weight_maps(labels: np.ndarray, w0: float = 10.0, sigma: float = 5.0, class_balance: bool = True):
    """:func:`border_weight_map` of every slice of an ``(N, H, W)`` stack."""
    return np.stack([border_weight_map(label, w0, sigma, class_balance) for label in labels])
