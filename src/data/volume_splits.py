"""Folds of a volume read lazily: held-out ranges along one axis, the training pieces left, the held-out boxes.

Along ``z`` (the default) a fold is a range of whole slices, as in memory; along ``y`` or ``x`` it is a band of
every slice, for volumes with few slices. Training crops are drawn inside the pieces outside every held-out range,
so none overlaps them; validation and test score a fixed, evenly spread set of boxes of the held-out range.
"""

from __future__ import annotations

import numpy as np

from src.data.volume import Box
from src.utils.errors import UserError

FOLD_AXES = ("z", "y", "x")


def _complement(held: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """The ranges of ``0..size`` outside every range of ``held``."""
    kept, start = [], 0
    for a, b in sorted(held):
        if a > start:
            kept.append((start, a))
        start = max(start, b)
    if start < size:
        kept.append((start, size))
    return kept


def _pieces_of(shape: tuple[int, int, int], axis: int, ranges: list[tuple[int, int]]) -> list[Box]:
    """Every slice's rectangles covering ``ranges`` along ``axis`` (whole slices for ``z``)."""
    depth, height, width = shape
    if axis == 0:
        return [Box(z, (0, height), (0, width)) for a, b in ranges for z in range(a, b)]
    if axis == 1:
        return [Box(z, (a, b), (0, width)) for z in range(depth) for a, b in ranges]
    return [Box(z, (0, height), (a, b)) for z in range(depth) for a, b in ranges]


def training_pieces(shape: tuple[int, int, int], axis: str, held: list[tuple[int, int]]) -> list[Box]:
    """The rectangles of the volume outside the ``held`` ranges along ``axis``, from which training crops come."""
    if axis not in FOLD_AXES:
        raise UserError(f"data.fold_axis={axis} must be one of {', '.join(FOLD_AXES)}")
    index = FOLD_AXES.index(axis)
    pieces = _pieces_of(shape, index, _complement(held, shape[index]))
    if not pieces:
        raise UserError("no part of the volume is left for training; lower data.num_folds or unset data.val_fold")
    return pieces


def _starts(begin: int, end: int, side: int) -> list[int]:
    """Starts of windows of ``side`` covering ``begin..end``, the last moved back to end there."""
    starts = list(range(begin, end - side + 1, side))
    if not starts or starts[-1] + side < end:
        starts.append(end - side)
    return starts


def held_out_boxes(shape: tuple[int, int, int], axis: str, held: tuple[int, int], side: int, count: int) -> list[Box]:
    """``count`` boxes of ``side`` (whole slices or bands when smaller) evenly spread over the tiling of the ``held``
    range along ``axis``; all of them when the tiling has no more."""
    if side < 1 or count < 1:
        raise UserError(f"data.eval_box={side} and data.eval_boxes={count} must be positive")
    index = FOLD_AXES.index(axis)
    tiles = []
    for piece in _pieces_of(shape, index, [held]):
        sy, sx = (min(side, n) for n in piece.shape)
        tiles += [
            Box(piece.z, (top, top + sy), (left, left + sx))
            for top in _starts(*piece.y, sy)
            for left in _starts(*piece.x, sx)
        ]
    if len(tiles) <= count:
        return tiles
    return [tiles[i] for i in np.unique(np.linspace(0, len(tiles) - 1, count).round().astype(int))]
