"""Constrained MALIS (Turaga et al., NIPS 2009; Funke et al., TPAMI 2019): a loss on the nearest-neighbour
affinities that weighs each pair of pixels by how many pairs of pixels its affinity decides.

Along the maximin path between two pixels, the weakest affinity decides whether a watershed (or any decoder that
joins the strongest links first) puts them in one cell. Two passes of Kruskal's algorithm over a crop's 4-connected
pixel grid find those edges: the positive pass sees only the pairs inside a cell (its maximum spanning tree inside
each cell) and credits each edge with the pixel pairs it joins, to be pulled towards 1; the negative pass starts
from the true cells already joined and credits each cut pair with the pairs of cell pixels its merge would join
across two cells, to be pushed towards 0. With the cells joined first ("constrained"), every component holds at
most one cell's pixels, so a merge's count is the product of the two components' cell-pixel counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import torch

from src.models.affinities import pairs_inside


@numba.njit(cache=True)
def _root(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True)
def _pass(order: np.ndarray, a: np.ndarray, b: np.ndarray, parent: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Kruskal over the edges ``(a[e], b[e])`` in ``order``: each edge that joins two components is credited with
    the product of their counts (pixel pairs it joins); the union keeps the larger root."""
    weight = np.zeros(len(a), np.float64)
    for e in order:
        ra, rb = _root(parent, a[e]), _root(parent, b[e])
        if ra == rb:
            continue
        weight[e] = count[ra] * count[rb]
        if count[ra] < count[rb]:
            ra, rb = rb, ra
        parent[rb] = ra
        count[ra] += count[rb]
    return weight


def grid_edges(shape: Sequence[int], offsets: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each unit offset (channel ``k``) and pixel ``p`` whose pair stays inside ``shape``: the flat indices of
    ``p`` and ``p + offset`` and of the affinity in a ``(K, H, W)`` map."""
    index = np.arange(int(np.prod(shape))).reshape(shape)
    sources, targets, channels = [], [], []
    for k, offset in enumerate(offsets):
        source, moved = pairs_inside(shape, offset)
        sources.append(index[source].ravel())
        targets.append(index[moved].ravel())
        channels.append(k * index.size + sources[-1])
    return np.concatenate(sources), np.concatenate(targets), np.concatenate(channels)


def crop_weights(
    affinity: np.ndarray, cells: np.ndarray, valid: np.ndarray, offsets: Sequence[Sequence[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative MALIS counts ``(K, H, W)`` of one crop: ``affinity`` the predicted unit-offset
    affinities ``(K, H, W)``, ``cells`` its true cells ``(H, W)`` (0 = none), ``valid`` ``(K, H, W)`` the pairs in
    the loss."""
    a, b, at = grid_edges(cells.shape, offsets)
    flat_cells = cells.ravel()
    keep = valid.ravel()[at]
    a, b, at = a[keep], b[keep], at[keep]
    joined = (flat_cells[a] == flat_cells[b]) & (flat_cells[a] > 0)
    # strongest first; 16-bit keys sort by radix, in linear time
    key = np.round((1 - np.clip(affinity.ravel()[at], 0, 1)) * 65535).astype(np.uint16)
    n = flat_cells.size
    positive = np.zeros(affinity.size, np.float64)
    negative = np.zeros(affinity.size, np.float64)
    inside = np.flatnonzero(joined)
    if len(inside):
        order = inside[np.argsort(key[inside], kind="stable")]
        weight = _pass(order, a, b, np.arange(n), np.ones(n, np.float64))
        positive[at[inside]] = weight[inside]
    cut = np.flatnonzero(~joined)
    if len(cut):
        # the true cells joined first: every pixel of a cell starts under one root (its first pixel), which counts
        # the cell's pixels; a pixel of no cell is its own root and counts none
        ids, first, sizes = np.unique(flat_cells, return_index=True, return_counts=True)
        root_of = np.zeros(int(ids[-1]) + 1, np.int64)
        root_of[ids] = first
        parent = np.where(flat_cells > 0, root_of[flat_cells], np.arange(n))
        count = np.zeros(n, np.float64)
        count[first[ids > 0]] = sizes[ids > 0]
        order = cut[np.argsort(key[cut], kind="stable")]
        weight = _pass(order, a, b, parent, count)
        negative[at[cut]] = weight[cut]
    return positive.reshape(affinity.shape), negative.reshape(affinity.shape)


def malis_loss(
    logits: torch.Tensor, cells: np.ndarray, mask: torch.Tensor, offsets: Sequence[Sequence[int]]
) -> torch.Tensor:
    """Mean over the crops of the MALIS-weighted squared error of the unit-offset affinity logits ``(B, K, H, W)``
    (``cells`` ``(B, H, W)``, ``mask`` ``(B, K, H, W)``), each crop's weights summing to one."""
    prob = logits.float().sigmoid()
    detached = prob.detach().cpu().numpy()
    valid = mask.cpu().numpy().astype(bool)
    losses = []
    for i in range(len(prob)):
        positive, negative = crop_weights(detached[i], cells[i], valid[i], offsets)
        total = positive.sum() + negative.sum()
        if total == 0:
            continue
        w_pos = torch.from_numpy(positive / total).to(prob)
        w_neg = torch.from_numpy(negative / total).to(prob)
        losses.append((w_pos * (1 - prob[i]) ** 2 + w_neg * prob[i] ** 2).sum())
    return torch.stack(losses).mean() if losses else prob.new_zeros(())
