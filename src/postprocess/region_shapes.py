"""Shape features of pairs of regions, for the learned edges (``postprocess.shapes=true``).

Cells in EM sections are compact, so the union of two fragments of one cell is about as compact as a whole cell,
while two cells joined across a faint membrane make a longer, waisted region. Each region's shape is taken from its
pixels' moments (count, mean, covariance), which add up over a union, so every pair is measured without
relabelling. A region's fill is its size over the volume of the ellipse (ellipsoid) of the same covariance: 1 for
a filled ellipse, lower for a spread, bent or waisted one.
"""

from __future__ import annotations

from math import gamma, pi

import numpy as np

COUNT = 5  # features per pair: see pair_shapes


def pair_shapes(regions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """For each pair (``low``, ``high``) of ``regions`` (labelled 1..n, 2-D or 3-D), ``(E, COUNT)`` features: the
    fill of their union, of the smaller and of the larger region, the union's fill less the higher of the two
    regions', and the distance between the regions' centres over the union's size to the power 1 / dimensions."""
    count, sums, products = _moments(regions)
    fill, centre = _fill(count, sums, products)
    union, _ = _fill(count[low] + count[high], sums[low] + sums[high], products[low] + products[high])
    first_smaller = count[low] <= count[high]
    small, large = np.where(first_smaller, low, high), np.where(first_smaller, high, low)
    spread = np.linalg.norm(centre[low] - centre[high], axis=1) / (count[low] + count[high]) ** (1 / regions.ndim)
    columns = [union, fill[small], fill[large], union - np.maximum(fill[low], fill[high]), spread]
    return np.stack(columns, 1)


def _moments(regions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each label's pixel count ``(n,)``, coordinate sums ``(n, d)`` and coordinate products' sums ``(n, d, d)``."""
    flat = regions.ravel()
    nodes = int(flat.max()) + 1
    coordinates = np.indices(regions.shape, dtype=np.float64).reshape(regions.ndim, -1)
    count = np.bincount(flat, minlength=nodes).astype(np.float64)
    sums = np.stack([np.bincount(flat, axis, nodes) for axis in coordinates], 1)
    products = np.empty((nodes, regions.ndim, regions.ndim))
    for i, first in enumerate(coordinates):
        for j in range(i, regions.ndim):
            products[:, i, j] = products[:, j, i] = np.bincount(flat, first * coordinates[j], nodes)
    count[count == 0] = 1  # an unused label (0): any finite shape
    return count, sums, products


def _fill(count: np.ndarray, sums: np.ndarray, products: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each region's size over its covariance ellipsoid's volume, and its centre. A uniform d-ball of radius r has
    variance r^2 / (d + 2) along each axis; every pixel adds its own square's variance, 1/12."""
    dims = sums.shape[1]
    centre = sums / count[:, None]
    covariance = products / count[:, None, None] - centre[:, :, None] * centre[:, None, :] + np.eye(dims) / 12
    ball = pi ** (dims / 2) / gamma(dims / 2 + 1) * (dims + 2) ** (dims / 2)
    return count / (ball * np.sqrt(np.clip(np.linalg.det(covariance), 1e-12, None))), centre
