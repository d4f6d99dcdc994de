"""Where the tiles of a slice lie and how their outputs are weighted (origins, owned ranges, Gaussian weights), and
the tiling settings checked before any work."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from src.inference.tta import DIHEDRAL


def gaussian_weights(size: int, sigma_scale: float) -> np.ndarray:
    """Square importance map: 1 at the centre, falling as a Gaussian of sigma ``sigma_scale * size``."""
    if sigma_scale <= 0:
        return np.ones((size, size), np.float32)
    axis = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(axis**2) / (2 * (sigma_scale * size) ** 2))
    weights = np.outer(g, g)
    return np.maximum(weights / weights.max(), 1e-4).astype(np.float32)


def tile_starts(size: int, tile: int, step: int, align: int) -> list[int]:
    """Origins of output tiles covering ``[0, size)``: multiples of ``align``, ``step`` apart, the last one
    moved back (or forward to the next multiple of ``align``) to reach the end."""
    if size <= tile:
        return [0]
    last = math.ceil((size - tile) / align) * align
    return sorted(set(range(0, last, step)) | {last})


STITCHINGS = ("crop", "gaussian")


def owned_ranges(starts: Sequence[int], tile: int, size: int) -> list[tuple[int, int]]:
    """For each tile along one axis, the pixels ``[lo, hi)`` of ``[0, size)`` whose nearest tile centre is its own."""
    bounds = [0] + [(a + b + tile) // 2 for a, b in zip(starts, starts[1:], strict=False)] + [size]
    return [(max(0, lo), min(size, hi)) for lo, hi in zip(bounds, bounds[1:], strict=False)]


def check_tiling(
    overlap: float, batch_size: int, stitching: str, tta: Sequence[int], sigma_scale: float = 0.0, halo: int = 0
) -> None:
    """Tiling settings checked before any work: a ValueError names the bad one."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap={overlap} must be in [0, 1)")
    if not sigma_scale >= 0.0:
        raise ValueError(f"sigma_scale={sigma_scale} must be 0 (flat) or more, a fraction of the tile")
    if halo < 0:
        raise ValueError(f"halo={halo} must be 0 or more pixels")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    if stitching not in STITCHINGS:
        raise ValueError(f"stitching={stitching!r} must be one of {', '.join(STITCHINGS)}")
    bad = [t for t in tta if t not in DIHEDRAL]
    if bad or not tta:
        raise ValueError(f"tta={list(tta)} must list dihedral transforms 0..7 (0 = identity)")
