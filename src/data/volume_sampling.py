"""Per-slice normalisation statistics, and where each class lies, from a sample of a volume (lazy training).

A slice larger than the sample is read in ``boxes`` boxes of ``box`` x ``box`` pixels at places drawn from
``(seed, slice)``, so every process, and every format of the same volume, reads the same pixels and gets the same
numbers; a slice no larger than the sample is read whole, and its statistics are then those
:func:`src.data.normalize.normalize_slices` computes. The sampled labels give each slice's class positions, from
which class-balanced crops are centred.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from src.data.labels import IGNORE, ClassMap
from src.data.normalize import standardise
from src.utils.errors import UserError

POINTS_PER_CLASS = 64  # sampled positions kept per class and slice, for class-balanced crops


@dataclass
class VolumeStatistics:
    """Per-slice ``mean``, ``std``, ``low`` and ``high`` (raw values, float64, ``(Z,)``) of the sampled pixels,
    ``sampled`` pixels per slice, and ``points[z][class_id]``: ``(k, 2)`` sampled (y, x) positions of that class."""

    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray
    high: np.ndarray
    sampled: np.ndarray
    points: list[dict[int, np.ndarray]] = field(default_factory=list)

    def standardise(self, raw: np.ndarray, z: int) -> np.ndarray:
        """``raw`` pixels of slice ``z`` at zero mean and unit variance (float32), as the network is trained."""
        return standardise(raw, self.mean[z], self.std[z])

    def unit_range(self, z: int) -> tuple[float, float]:
        """The standardised sample's lowest value and span of slice ``z``: crops are scaled to [0, 1] by them for
        albumentations' intensity transforms."""
        scale = max(self.std[z], 1e-6)
        low = (self.low[z] - self.mean[z]) / scale
        return float(low), float(max((self.high[z] - self.low[z]) / scale, 1e-6))

    def record(self) -> dict:
        """What the run records (JSON): the per-slice numbers and how many pixels each came from."""
        return {
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "sampled_pixels": self.sampled.tolist(),
        }


def sample_boxes(height: int, width: int, boxes: int, box: int, rng: np.random.Generator) -> list[tuple[slice, slice]]:
    """``boxes`` windows of ``box`` pixels (clipped to the slice) at random places; the whole slice when it holds
    no more pixels than the sample would."""
    if height * width <= boxes * box * box:
        return [(slice(0, height), slice(0, width))]
    bh, bw = min(box, height), min(box, width)
    tops = rng.integers(0, height - bh + 1, boxes)
    lefts = rng.integers(0, width - bw + 1, boxes)
    return [(slice(t, t + bh), slice(q, q + bw)) for t, q in zip(tops.tolist(), lefts.tolist(), strict=True)]


def _class_points(classes: np.ndarray, offsets: np.ndarray, rng: np.random.Generator) -> dict[int, np.ndarray]:
    points = {}
    for class_id in np.unique(classes[classes != IGNORE]).tolist():
        where = np.flatnonzero(classes == class_id)
        chosen = rng.choice(where, size=min(POINTS_PER_CLASS, where.size), replace=False)
        points[int(class_id)] = offsets[chosen]
    return points


def sample_statistics(
    images,
    labels=None,
    class_map: ClassMap | None = None,
    boxes: int = 16,
    box: int = 256,
    seed: int = 0,
) -> VolumeStatistics:
    """Statistics of every slice of the ``images`` volume (and class positions from ``labels``) from a sample."""
    if boxes < 1 or box < 1:
        raise UserError(f"data.statistics_boxes={boxes} and data.statistics_box={box} must be positive")
    depth, height, width = images.shape
    stats = np.zeros((5, depth))
    points, encoded_all = [], []
    for z in range(depth):
        rng = np.random.default_rng([seed, z])
        windows = sample_boxes(height, width, boxes, box, rng)
        pixels = np.concatenate([images.read_box((slice(z, z + 1), *w)).ravel() for w in windows]).astype(np.float64)
        if not np.isfinite(pixels).all():
            raise UserError(
                f"image stack {images.where} holds NaN or infinite pixels in slice {z}; clean or mask them before use"
            )
        mean = pixels.mean()
        stats[:, z] = (
            mean,
            np.sqrt(max(np.square(pixels).mean() - mean**2, 0.0)),
            pixels.min(),
            pixels.max(),
            pixels.size,
        )
        if labels is None or class_map is None:
            continue
        encoded, offsets = [], []
        for rows, cols in windows:
            raw = labels.read_box((slice(z, z + 1), rows, cols))[0]
            encoded.append(class_map.encode(raw, labels.where, warn=False).ravel())
            grid = np.stack(
                np.meshgrid(np.arange(rows.start, rows.stop), np.arange(cols.start, cols.stop), indexing="ij")
            )
            offsets.append(grid.reshape(2, -1).T)
        encoded_all.append(np.concatenate(encoded))
        points.append(_class_points(encoded_all[-1], np.concatenate(offsets), rng))
    if encoded_all:
        class_map.warn_if_inverted(np.concatenate(encoded_all), labels.where)
    return VolumeStatistics(*stats[:4], stats[4].astype(np.int64), points)
