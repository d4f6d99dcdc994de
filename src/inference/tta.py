"""Test-time augmentation: the 8 flips/rotations of the square (the dihedral group), applied and undone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from src.utils.errors import UserError

DIHEDRAL = tuple(range(8))  # k rotations by 90 degrees, then a flip for 4..7


def dihedral(x: torch.Tensor, index: int) -> torch.Tensor:
    """Element ``index`` of the dihedral group of the square applied to the last two axes."""
    if index >= 4:
        x = x.flip(-1)
    return torch.rot90(x, index % 4, dims=(-2, -1))


def dihedral_inverse(x: torch.Tensor, index: int) -> torch.Tensor:
    x = torch.rot90(x, -(index % 4), dims=(-2, -1))
    return x.flip(-1) if index >= 4 else x


def dihedral_box(box: tuple[int, int, int, int], side: int, index: int) -> tuple[int, int, int, int]:
    """Where the box ``(top, bottom, left, right)`` of a ``side``-pixel square lands under ``dihedral(., index)``."""
    top, bottom, left, right = box
    mask = torch.zeros(side, side, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    rows, cols = dihedral(mask, index).nonzero(as_tuple=True)
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def tta_transforms(value: Any, key: str = "tta") -> tuple[int, ...]:
    """A ``tta`` setting as transform indices: ``false`` -> identity, ``true`` -> all 8, or a list of 0..7."""
    if value is None or value is False:
        return (0,)
    if value is True:
        return DIHEDRAL
    if isinstance(value, Sequence) and not isinstance(value, str) and value and all(v in DIHEDRAL for v in value):
        return tuple(int(v) for v in value)
    raise UserError(f"{key}={value} must be true, false or a list of transforms 0..7 (0 = identity)")


def tta_mean(
    x: torch.Tensor, transforms: Sequence[int], predict: Callable[[torch.Tensor, int], torch.Tensor]
) -> torch.Tensor:
    """Mean over ``transforms`` of ``predict(dihedral(x, t), t)``, each mapped back to ``x``'s orientation (float32).

    ``predict`` gets the transform's index too, for work that depends on it (a box turned with the tile).
    """
    views = [dihedral_inverse(predict(dihedral(x, t), t), t).float() for t in transforms]
    return views[0] if len(views) == 1 else torch.stack(views).mean(dim=0)


def tta_mean_affinities(
    x: torch.Tensor,
    transforms: Sequence[int],
    predict: Callable[[torch.Tensor, int], torch.Tensor],
    offsets: Sequence[Sequence[int]],
) -> torch.Tensor:
    """:func:`tta_mean` of outputs whose last ``len(offsets)`` channels are affinities (the others are averaged as
    they are): each view's channels turned back by :func:`turned_back_affinities`, averaged where a view has them."""
    total = count = None
    for t in transforms:
        values, valid = turned_back_affinities(dihedral_inverse(predict(dihedral(x, t), t), t).float(), t, offsets)
        total = values if total is None else total + values
        count = valid if count is None else count + valid
    return total / count.clamp_min(1)


def turned_back_affinities(
    view: torch.Tensor,
    t: int,
    offsets: Sequence[Sequence[int]],
    origin: Sequence[int] = (0, 0),
    image: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The outputs ``(B, C + K, H, W)`` of transform ``t``'s view, already turned back, with their affinity channels
    put where they belong, and a mask ``(1, C + K, H, W)`` of the values this view gives.

    A turned-back channel for offset ``o`` holds the affinity for the turned offset; it is moved to that offset's
    channel or, where the set holds its negative ``-u``, shifted by ``u`` (``A_u(p) = A_-u(p + u)``): given only
    where ``p + u`` lies inside the view and inside the image. ``origin``: the view's first pixel in an image of
    shape ``image`` (default: the view is the image), for blocks cut from a larger slice.
    """
    from src.models.affinities import channel_sources

    keep, shape = len(offsets), view.shape[-2:]
    image = tuple(shape) if image is None else tuple(image)
    values, valid = torch.zeros_like(view), torch.zeros_like(view[:1, :])
    values[:, :-keep], valid[:, :-keep] = view[:, :-keep], 1
    sources = channel_sources(offsets, lambda grid: dihedral_inverse(grid, t))
    for j, (i, sign) in enumerate(sources):
        channel, source = view.shape[1] - keep + j, view.shape[1] - keep + i
        if sign == 1:
            values[:, channel], valid[:, channel] = view[:, source], 1
            continue
        here, there = [], []
        for u, n, o, size in zip(offsets[j], shape, origin, image, strict=True):
            low, high = max(0, -u, -o - u), min(n, n - u, size - o - u)
            here.append(slice(low, max(low, high)))
            there.append(slice(low + u, max(low, high) + u))
        values[:, channel][(slice(None), *here)] = view[:, source][(slice(None), *there)]
        valid[:, channel][(slice(None), *here)] = 1
    return values, valid
