"""Affinity outputs (``model.target=affinities``): targets from the labels, their loss, and offset checks.

Channel ``k`` of an affinity map says whether pixel ``p`` and ``p + offsets[k]`` lie in the same cell
(Turaga et al. 2010; Lee et al. 2017; Wolf et al. 2018). The labels here are classes, so the cells are the
4-connected regions of the pixels that are neither the boundary class nor unlabelled, found in each training crop
after augmentation (geometry moves the labels, never the affinities). A pair is 1 when both pixels lie in the same
cell and 0 otherwise: a boundary pixel belongs to no cell, so every pair that touches one is 0 and the membranes
come out as cuts, as in the ISBI models of the mutex watershed paper (``model.affinity_boundary=cut``; the
other rule, ``nearest_cell``, gives each boundary pixel to its nearest cell, so the cuts run along the membranes'
middles). Pairs that leave the crop or touch an unlabelled pixel are masked out of the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from src.data.labels import IGNORE
from src.utils.errors import UserError

AFFINITY_LOSSES = ("dice", "bce", "dice_bce", "dice_malis")


def cells_of_labels(label: np.ndarray, boundary: int | None, nearest_cell: bool = False) -> np.ndarray:
    """The 4-connected cells (1, 2, ...; 0 elsewhere) of a class-label slice: not boundary, not unlabelled.
    ``nearest_cell``: each boundary pixel joins the cell nearest to it, so a membrane is cut along its middle."""
    labelled = label != IGNORE
    inside = labelled & (label != boundary) if boundary is not None else labelled
    cells, count = ndimage.label(inside)
    if nearest_cell and count and not inside.all():
        nearest = ndimage.distance_transform_edt(cells == 0, return_distances=False, return_indices=True)
        cells = np.where(labelled, cells[tuple(nearest)], 0)
    return cells


def pairs_inside(shape: Sequence[int], offset: Sequence[int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Index boxes of ``p`` and ``p + offset`` over the pixels whose pair stays inside ``shape``."""
    source = tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(offset, shape, strict=True))
    target = tuple(slice(max(0, o), n - max(0, -o)) for o, n in zip(offset, shape, strict=True))
    return source, target


def affinities_of_cells(cells: np.ndarray, offsets: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Affinity targets ``(K, *shape)`` float32 of a cell labelling (0 = no cell) and where each pair is inside."""
    target = np.zeros((len(offsets), *cells.shape), np.float32)
    inside = np.zeros(target.shape, bool)
    for k, offset in enumerate(offsets):
        source, moved = pairs_inside(cells.shape, offset)
        a, b = cells[source], cells[moved]
        target[k][source] = (a == b) & (a > 0)
        inside[k][source] = True
    return target, inside


def affinity_targets(
    label: torch.Tensor, offsets: Sequence[Sequence[int]], boundary: int | None, nearest_cell: bool = False
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Targets and loss mask ``(B, K, H, W)`` of a class-label batch ``(B, H, W)`` (module docstring), and the
    cells ``(B, H, W)`` they were made from (:func:`cells_of_labels`), for a loss that needs them."""
    labels = label.cpu().numpy()
    cells = np.stack([cells_of_labels(slice_label, boundary, nearest_cell) for slice_label in labels])
    targets, masks = [], []
    for slice_label, slice_cells in zip(labels, cells, strict=True):
        target, inside = affinities_of_cells(slice_cells, offsets)
        labelled = slice_label != IGNORE
        for k, offset in enumerate(offsets):
            source, moved = pairs_inside(labelled.shape, offset)
            inside[k][source] &= labelled[source] & labelled[moved]
        targets.append(target)
        masks.append(inside)
    as_tensor = lambda x: torch.from_numpy(np.stack(x)).to(label.device)  # noqa: E731
    return as_tensor(targets), as_tensor(masks), cells


class AffinityLoss(nn.Module):
    """Masked loss of affinity logits ``(B, K, H, W)``: ``dice`` (Sørensen-Dice of each channel, on the cut and the
    joined pairs alike, as the mutex watershed paper trains), ``bce``, ``dice_bce`` (their sum) or ``dice_malis``
    (Dice plus constrained MALIS on the nearest-neighbour channels, which needs the crops' ``cells``)."""

    def __init__(self, kind: str = "dice", smooth: float = 1.0, offsets: Sequence[Sequence[int]] = ()) -> None:
        super().__init__()
        if kind not in AFFINITY_LOSSES:
            raise UserError(f"model.affinity_loss={kind!r} is not one of {', '.join(AFFINITY_LOSSES)}")
        self.kind = kind
        self.smooth = smooth
        # dice_malis: MALIS on the nearest-neighbour channels (src.models.malis)
        self.unit_channels = [k for k, o in enumerate(offsets) if sum(abs(int(v)) for v in o) == 1]
        self.unit_offsets = [list(offsets[k]) for k in self.unit_channels]
        if kind == "dice_malis" and not self.unit_channels:
            raise UserError("model.affinity_loss=dice_malis needs nearest-neighbour offsets ([-1, 0], [0, -1])")
        self.needs_cells = kind == "dice_malis"

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, cells: np.ndarray | None = None
    ) -> torch.Tensor:
        logits = logits.float()
        mask = mask.to(logits.dtype)
        loss = logits.new_zeros(())
        if self.kind in ("dice", "dice_bce", "dice_malis"):
            # Both sides from four sums per channel: the pairs (m), the joined targets (t m), the predicted
            # affinities (s m) and their overlap (s t m); the cut side's are what the joined side leaves of m.
            dims = (0, 2, 3)
            joined = logits.sigmoid() * mask
            pairs, targets = mask.sum(dims), (target * mask).sum(dims)
            predicted, overlap = joined.sum(dims), (joined * target).sum(dims)
            cut_overlap = pairs - predicted - targets + overlap
            dice = torch.cat(
                [
                    (2 * overlap + self.smooth) / (predicted + targets + self.smooth),
                    (2 * cut_overlap + self.smooth) / (2 * pairs - predicted - targets + self.smooth),
                ]
            )
            loss = loss + 1 - dice.mean()
        if self.kind in ("bce", "dice_bce"):
            per_pair = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
            loss = loss + (per_pair * mask).sum() / mask.sum().clamp_min(1)
        if self.kind == "dice_malis":
            if cells is None:
                raise ValueError("affinity_loss=dice_malis needs the crops' cells (affinity_targets gives them)")
            from src.models.malis import malis_loss  # it builds on pairs_inside above

            units = self.unit_channels
            loss = loss + malis_loss(logits[:, units], cells, mask[:, units], self.unit_offsets)
        return loss


def transformed_offset(offset: Sequence[int], inverse) -> tuple[int, ...]:
    """Where a displacement lands under an image transform: a marker at ``centre + offset`` of an odd square,
    moved by ``inverse`` (a function of a ``(side, side)`` tensor), found again relative to the centre."""
    radius = max(abs(int(v)) for v in offset)
    grid = torch.zeros(2 * radius + 1, 2 * radius + 1)
    grid[radius + offset[0], radius + offset[1]] = 1
    y, x = (int(i) for i in inverse(grid).nonzero()[0])
    return (y - radius, x - radius)


def channel_sources(offsets: Sequence[Sequence[int]], inverse) -> list[tuple[int, int]]:
    """For each offset ``u``, the channel ``i`` of a transformed view whose offset maps back to ``u`` (``+1``) or
    to ``-u`` (``-1``) after ``inverse``: ``(i, sign)``. Raises ValueError when the set is not closed."""
    back = [transformed_offset(o, inverse) for o in offsets]
    sources = []
    for offset in offsets:
        u = tuple(offset)
        negative = tuple(-v for v in u)
        if u in back:
            sources.append((back.index(u), 1))
        elif negative in back:
            sources.append((back.index(negative), -1))
        else:
            raise ValueError(f"offset {list(u)} has no flipped/rotated counterpart in the offsets")
    return sources
