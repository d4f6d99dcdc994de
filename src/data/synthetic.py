"""A procedurally generated EM-like stack: irregular cells, dark membranes, texture and noise.

Deterministic by seed. Used for fast tests and offline demos; it is not a substitute for real data.
Consecutive slices share their cells with small drifts, as serial sections do.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field / (field.std() + 1e-8)


def synthetic_stack(
    num_slices: int = 12,
    size: int = 256,
    num_cells: int = 60,
    membrane_width: float = 2.5,
    noise: float = 0.08,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)``, both uint8 ``(N, size, size)``; labels are 0 (membrane) or 255 (interior)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, size, (num_cells, 2))
    velocities = rng.normal(0, 1.5, (num_cells, 2))
    images = np.empty((num_slices, size, size), np.uint8)
    labels = np.empty((num_slices, size, size), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for z in range(num_slices):
        points = np.clip(centres + z * velocities, 0, size - 1)
        # Warp the coordinates with a smooth field so that cell borders curve like real membranes.
        wy = yy + 6 * _smooth_noise(rng, (size, size), 12)
        wx = xx + 6 * _smooth_noise(rng, (size, size), 12)
        seeds = np.zeros((size, size), bool)
        iy, ix = np.round(points).astype(int).T
        seeds[iy, ix] = True
        _, (ny, nx) = ndimage.distance_transform_edt(~seeds, return_indices=True)
        coords = np.stack([np.clip(wy, 0, size - 1), np.clip(wx, 0, size - 1)]).round().astype(int)
        cell = (ny * size + nx)[coords[0], coords[1]]
        border = np.zeros((size, size), bool)
        border[:-1] |= cell[:-1] != cell[1:]
        border[:, :-1] |= cell[:, :-1] != cell[:, 1:]
        membrane = ndimage.distance_transform_edt(~border) < membrane_width
        labels[z] = np.where(membrane, 0, 255)
        # Intensity: bright cytoplasm with texture and a few dark organelles, dark blurred membranes.
        interior = 0.72 + 0.06 * _smooth_noise(rng, (size, size), 3)
        organelles = _smooth_noise(rng, (size, size), 4) > 2.2
        interior = np.where(organelles, 0.45, interior)
        image = np.where(membrane, 0.22, interior)
        image = ndimage.gaussian_filter(image, 1.0) + noise * rng.standard_normal((size, size))
        images[z] = np.clip(image * 255, 0, 255).astype(np.uint8)
    return images, labels
