"""The mutex watershed (Wolf et al., ECCV 2018 / TPAMI 2020): cells from attractive and repulsive affinities.

Every pixel is a node; offset ``k`` links each pixel ``p`` to ``p + offsets[k]`` with the predicted affinity
``a`` (1: same cell). The first ``attractive`` offsets (the nearest neighbours) pull with priority ``a``, the
others push apart with priority ``1 - a``; ``bias`` is added to every pull's priority (below 0, a pull waits
for repulsions up to ``-bias`` weaker than it, so cells are cut more readily). All edges are visited once,
highest priority first: an attractive edge joins its two clusters unless a mutual exclusion (mutex) lies between
them; a repulsive edge between two clusters records a mutex. No threshold and no seeds: the partition is the graph's.

Written with numba (affogato, the authors' library, ships only as C++ source, which needs a compiler here):
clusters are a union-find forest; the mutexes between current roots are keys of one hash set (an O(1) test per
edge), and each root keeps a linked list of its mutex partners, read through ``find``, which is spliced in O(1)
when two clusters join and walked (the shorter of the two) to move the joined cluster's keys.

With ``fragments_h > 0`` the nodes are regions instead of pixels (as the authors' library also offers, a mutex
watershed clustering of a region graph): a watershed of the attractive affinities, seeded at their h-maxima,
cuts the image into fragments, and each pair of fragments gets one attractive edge, the mean affinity of the
attractive pixel pairs between them, and one repulsive edge, the mean of the repulsive ones. Means over many
pixel pairs are surer than any one pair, so a few unsure affinities no longer split or join cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numba
import numpy as np
from scipy import ndimage
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from src.utils.errors import UserError


def pair_slices(offset: Sequence[int], shape: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Where the pairs ``(p, p + offset)`` inside ``shape`` start and end: ``p`` over the first slices, ``p +
    offset`` over the second (a pair's affinity is stored at ``p``)."""
    source = tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(offset, shape, strict=True))
    target = tuple(slice(max(0, o), n - max(0, -o)) for o, n in zip(offset, shape, strict=True))
    return source, target


def offset_edges(shape: tuple[int, ...], offsets: np.ndarray, strides: Sequence[int] | None = None):
    """The pixel pairs of every offset: flat indices ``u``, ``v = u + offset`` and the offset index of each edge.

    ``strides[k] > 1`` keeps one edge in ``strides[k]`` along every axis for offset ``k`` (long-range repulsive
    edges are many and alike: the paper samples them the same way).
    """
    index = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    us, vs, ks = [], [], []
    for k, offset in enumerate(offsets):
        source, target = pair_slices(offset, shape)
        u, v = index[source], index[target]
        step = 1 if strides is None else int(strides[k])
        if step > 1:
            every = (slice(None, None, step),) * len(shape)
            u, v = u[every], v[every]
        us.append(u.ravel())
        vs.append(v.ravel())
        ks.append(np.full(u.size, k, np.int32))
    return np.concatenate(us), np.concatenate(vs), np.concatenate(ks)


@numba.njit(cache=True)
def _find(parent: np.ndarray, node: int) -> int:
    root = node
    while parent[root] != root:
        root = parent[root]
    while parent[node] != root:  # path compression
        parent[node], node = root, parent[node]
    return root


@numba.njit(cache=True)
def _pair(a: int, b: int, nodes: int) -> int:
    return min(a, b) * nodes + max(a, b)


@numba.njit(cache=True)
def _mutex_watershed(nodes: int, u, v, attractive, order, mutex_capacity: int) -> np.ndarray:
    parent = np.arange(nodes)
    exclusive = numba.typed.Dict.empty(key_type=numba.types.int64, value_type=numba.types.boolean)
    head = np.full(nodes, -1, np.int64)
    tail = np.full(nodes, -1, np.int64)
    count = np.zeros(nodes, np.int64)
    following = np.full(mutex_capacity, -1, np.int64)
    partner = np.empty(mutex_capacity, np.int64)
    used = 0
    for edge in order:
        a = _find(parent, u[edge])
        b = _find(parent, v[edge])
        if a == b or _pair(a, b, nodes) in exclusive:
            continue
        if attractive[edge]:
            if count[a] < count[b]:
                a, b = b, a
            parent[b] = a  # b joins a: its mutexes are a's now, and its list is spliced onto a's
            entry = head[b]
            while entry != -1:
                other = _find(parent, partner[entry])
                if exclusive.pop(_pair(b, other, nodes), False):
                    exclusive[_pair(a, other, nodes)] = True
                entry = following[entry]
            if head[b] != -1:
                if head[a] == -1:
                    head[a] = head[b]
                else:
                    following[tail[a]] = head[b]
                tail[a] = tail[b]
                count[a] += count[b]
        else:
            exclusive[_pair(a, b, nodes)] = True
            for this, other in ((a, b), (b, a)):
                partner[used] = other
                if head[this] == -1:
                    head[this] = used
                else:
                    following[tail[this]] = used
                tail[this] = used
                count[this] += 1
                used += 1
    labels = np.empty(nodes, np.int64)
    for node in range(nodes):
        labels[node] = _find(parent, node)
    return labels


def _checked(affinities: np.ndarray, offsets: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    affinities, offsets = np.asarray(affinities, np.float32), np.asarray(offsets, np.int64)
    if offsets.ndim != 2 or offsets.shape != (len(affinities), affinities.ndim - 1):
        raise ValueError(
            f"{len(affinities)} affinity channels of {affinities.ndim - 1}-D need as many offsets of that length"
        )
    return affinities, offsets


def _cluster(nodes: int, u: np.ndarray, v: np.ndarray, pulls: np.ndarray, weight: np.ndarray, bias: float):
    """Each node's root after the mutex watershed of edges ``(u, v)`` with affinity ``weight``: pulls (``pulls``)
    with priority ``weight + bias``, repulsions with ``1 - weight``, highest first."""
    priority = np.where(pulls, weight + bias, 1.0 - weight)
    order = np.argsort(-priority, kind="stable")
    return _mutex_watershed(nodes, u, v, pulls, order, 2 * int((~pulls).sum()))


def mutex_watershed(
    affinities: np.ndarray,
    offsets: Sequence[Sequence[int]],
    attractive: int,
    strides: Sequence[int] | None = None,
    bias: float = 0.0,
) -> np.ndarray:
    """Cells (numbered 1, 2, ... in order of first pixel) of an affinity map ``(K, *shape)``, 2-D or 3-D.

    ``offsets[k]`` is channel ``k``'s displacement; the first ``attractive`` channels attract, the rest repel.
    """
    affinities, offsets = _checked(affinities, offsets)
    shape = affinities.shape[1:]
    u, v, k = offset_edges(shape, offsets, strides)
    flat = affinities.reshape(len(affinities), -1)
    weight = flat[k, u]
    pulls = k < attractive
    roots = _cluster(int(np.prod(shape)), u, v, pulls, weight, bias)
    _, labels = np.unique(roots, return_inverse=True)
    return (labels + 1).reshape(shape)


def fragments(affinities: np.ndarray, offsets: np.ndarray, attractive: int, h: float) -> np.ndarray:
    """Watershed regions (1, 2, ...) of the attractive affinities, 2-D or 3-D: each pixel's relief is the lowest
    affinity of the attractive pairs it belongs to (low on membranes), seeded at the relief's h-maxima."""
    shape = affinities.shape[1:]
    relief = np.ones(shape, np.float32)
    for channel in range(attractive):
        source, target = pair_slices(offsets[channel], shape)
        pair = affinities[channel][source]
        relief[source] = np.minimum(relief[source], pair)
        relief[target] = np.minimum(relief[target], pair)
    seeds, count = ndimage.label(h_maxima(relief, h))
    if count == 0:  # a flat relief: one fragment
        return np.ones(shape, np.int32)
    return watershed(-relief, markers=seeds, connectivity=1)


def region_mutex_watershed(
    regions: np.ndarray,
    affinities: np.ndarray,
    offsets: np.ndarray,
    attractive: int,
    strides: Sequence[int],
    bias: float = 0.0,
) -> np.ndarray:
    """Cells (1, 2, ...) of the mutex watershed on the graph of ``regions`` (labelled 1..n, every pixel): each
    region pair's attractive edge weighs the mean affinity of the attractive pixel pairs between them, its
    repulsive edge the mean of the repulsive ones."""
    nodes = int(regions.max()) + 1
    u, v, k = offset_edges(regions.shape, offsets, strides)
    flat = regions.ravel()
    a, b = flat[u], flat[v]
    between = a != b
    pulls = k[between] < attractive
    key = (np.minimum(a, b)[between].astype(np.int64) * nodes + np.maximum(a, b)[between]) * 2 + ~pulls
    weight = affinities.reshape(len(affinities), -1)[k[between], u[between]]
    edges, index = np.unique(key, return_inverse=True)
    mean = np.bincount(index, weights=weight) / np.bincount(index)
    attracts = edges % 2 == 0
    pairs = edges // 2
    roots = _cluster(nodes, pairs // nodes, pairs % nodes, attracts, mean, bias)
    _, numbered = np.unique(roots[1:], return_inverse=True)
    return (numbered + 1)[regions - 1]


@dataclass(frozen=True)
class MutexWatershed:
    """``postprocess=mutex_watershed``: the cells of a predicted affinity map (the network's offsets).

    Args:
        attractive: how many leading offsets attract (the nearest neighbours: 2 in 2-D, 3 in 3-D).
        stride: keep one repulsive edge in ``stride`` along each axis (1 = all).
        min_size: cells smaller than this many pixels become border (0), which the scoring floods from the
            neighbours as the challenge thins borders.
        fragments_h: 0: every pixel is a node; above 0: the nodes are watershed fragments of the attractive
            affinities seeded at h-maxima of this height (:func:`fragments`, :func:`region_mutex_watershed`).
        bias: added to every attractive edge's priority, in [-1, 1]; below 0 a pull waits for repulsions up to
            ``-bias`` weaker than it, so cells are cut more readily (fewer false merges, more false splits).
        offsets: filled from the checkpoint's network; empty in the config.
    """

    attractive: int = 2
    stride: int = 1
    min_size: int = 0
    fragments_h: float = 0.0
    bias: float = 0.0
    offsets: tuple = field(default=())

    input = "affinities"

    def __post_init__(self) -> None:
        if (
            self.attractive < 1
            or self.stride < 1
            or self.min_size < 0
            or not 0 <= self.fragments_h < 1
            or not -1 <= self.bias <= 1
        ):
            raise UserError(
                f"postprocess: attractive={self.attractive} and stride={self.stride} must be >= 1, "
                f"min_size={self.min_size} >= 0, fragments_h={self.fragments_h} in [0, 1), bias={self.bias} in [-1, 1]"
            )

    def with_offsets(self, offsets: Sequence[Sequence[int]]) -> MutexWatershed:
        return replace(self, offsets=network_offsets(offsets, self.attractive))

    def __call__(self, affinities: np.ndarray) -> np.ndarray:
        if not self.offsets:
            raise UserError("postprocess=mutex_watershed needs a network trained with model.target=affinities")
        strides = [1] * self.attractive + [self.stride] * (len(self.offsets) - self.attractive)
        if self.fragments_h > 0:
            affinities, offsets = _checked(affinities, self.offsets)
            regions = fragments(affinities, offsets, self.attractive, self.fragments_h)
            cells = region_mutex_watershed(regions, affinities, offsets, self.attractive, strides, self.bias)
        else:
            cells = mutex_watershed(affinities, self.offsets, self.attractive, strides, self.bias)
        return drop_small(cells, self.min_size)


def network_offsets(offsets: Sequence[Sequence[int]], attractive: int) -> tuple:
    """A network's offsets as a decoder keeps them (tuples of ints), refused where none is left to repel."""
    offsets = tuple(tuple(int(o) for o in offset) for offset in offsets)
    if len(offsets) <= attractive:
        raise UserError(
            f"postprocess.attractive={attractive} leaves none of the network's {len(offsets)} affinity offsets to "
            "repel; lower it"
        )
    return offsets


def drop_small(cells: np.ndarray, min_size: int) -> np.ndarray:
    """``cells`` with every cell under ``min_size`` pixels set to 0 (border), the rest renumbered 1, 2, ..."""
    if min_size <= 1:
        return cells.astype(np.int32)
    sizes = np.bincount(cells.ravel())
    keep = sizes >= min_size
    keep[0] = False
    numbers = np.where(keep, np.cumsum(keep), 0)
    return numbers[cells].astype(np.int32)
