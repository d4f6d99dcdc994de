"""Cells from an interior-probability slice by merging watershed regions along their mean boundary.

Thresholding the probability joins two cells through the single weakest pixel of the membrane between them:
one gap of a few pixels in a long membrane merges the cells (single linkage). Here the whole shared boundary
decides, in the manner of average-linkage region merging on a watershed over-segmentation:

1. over-segmentation: a seeded watershed of the probability from its h-maxima (:class:`SeededWatershed`),
   with one-pixel watershed lines between the regions;
2. region adjacency: each line pixel links the regions in its 8-neighbourhood; the boundary of two regions is
   the set of line pixels that link them, weighed by its mean membrane probability ``1 - p``;
3. agglomeration: the two regions with the lowest mean boundary are merged, their boundaries with the
   others add up, and so on until one region is left; each merge is recorded at its *level*, the running
   maximum of the merged boundaries' means (a mean of boundaries that each lie above the last merge lies
   above it too, so the maximum only guards against rounding);
4. contour map: each line pixel gets the level at which every region around it has become one (an
   ultrametric contour map, Arbelaez et al. 2011, IEEE TPAMI 33(5):898-916), and the map is returned as
   ``1 - level`` on lines and 1 inside regions. Thresholding it at ``t`` gives the regions merged up to
   level ``1 - t``, with one-pixel borders: the challenge's threshold sweep over this map sweeps the merge
   hierarchy, and :class:`Agglomeration` cuts it at one threshold for labelled cells.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

import numpy as np

from src.postprocess.instances import ConnectedComponents, SeededWatershed, check_probability

_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def boundary_links(regions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which region pairs each border pixel (0) of a labelled slice separates.

    Returns ``(pixels, pairs, link_pair)``: the flat indices of the border pixels that touch two or more
    regions in their 8-neighbourhood, the distinct region pairs ``(a, b)`` with ``a < b`` that some border
    pixel separates, and one row per (pixel, pair) link as ``(index into pixels, index into pairs)``.
    """
    width = regions.shape[1]
    padded = np.pad(regions, 1)
    ys, xs = np.nonzero(regions == 0)
    around = np.stack([padded[ys + 1 + dy, xs + 1 + dx] for dy, dx in _NEIGHBOURS], axis=1)
    links = []
    for i, j in itertools.combinations(range(len(_NEIGHBOURS)), 2):
        a, b = around[:, i], around[:, j]
        hit = np.nonzero((a > 0) & (b > 0) & (a != b))[0]
        links.append(np.stack([hit, np.minimum(a[hit], b[hit]), np.maximum(a[hit], b[hit])], axis=1))
    links = np.unique(np.concatenate(links).astype(np.int64), axis=0)
    pixel_rows, link_pixel = np.unique(links[:, 0], return_inverse=True)
    pairs, link_pair = np.unique(links[:, 1:], axis=0, return_inverse=True)
    pixels = ys[pixel_rows] * width + xs[pixel_rows]
    return pixels, pairs, np.stack([link_pixel.ravel(), link_pair.ravel()], axis=1)


def merge_levels(pairs: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average-linkage merge level of each adjacent region pair (see the module's step 3).

    ``pairs[k] = (a, b)`` are adjacent regions whose boundary has membrane-probability sum ``sums[k]`` over
    ``counts[k]`` pixels. Returns, for each pair, the level at which ``a`` and ``b`` end up in one region.
    """
    level = np.ones(len(pairs))
    # neighbours[r][s] = [sum, count, original pair indices] of the boundary between current regions r and s
    neighbours: dict[int, dict[int, list]] = {}
    for k, (a, b) in enumerate(pairs.tolist()):
        edge = [float(sums[k]), int(counts[k]), [k]]
        neighbours.setdefault(a, {})[b] = edge
        neighbours.setdefault(b, {})[a] = edge
    heap = [(edge[0] / edge[1], a, b) for a, adj in neighbours.items() for b, edge in adj.items() if a < b]
    heapq.heapify(heap)
    current = 0.0
    while heap:
        mean, a, b = heapq.heappop(heap)
        edge = neighbours.get(a, {}).get(b)
        if edge is None or edge[0] / edge[1] != mean:
            continue  # a stale entry: one of the two regions has merged since it was pushed
        current = max(current, mean)
        level[edge[2]] = current
        if len(neighbours[a]) < len(neighbours[b]):
            a, b = b, a  # keep the region with more neighbours
        del neighbours[a][b]
        for other, other_edge in neighbours.pop(b).items():
            if other == a:
                continue
            del neighbours[other][b]
            kept = neighbours[a].get(other)
            if kept is None:
                kept = neighbours[a][other] = other_edge
                neighbours[other][a] = kept
            else:
                kept[0] += other_edge[0]
                kept[1] += other_edge[1]
                kept[2].extend(other_edge[2])
            heapq.heappush(heap, (kept[0] / kept[1], min(a, other), max(a, other)))
    return level


def contour_map(regions: np.ndarray, membrane: np.ndarray) -> np.ndarray:
    """The ultrametric contour map of a watershed slice, as ``1 - level`` on its lines and 1 inside regions.

    ``regions`` is labelled with 0 on one-pixel lines between regions; ``membrane`` is the membrane
    probability that weighs the boundaries. A line pixel that touches fewer than two regions gets 1.
    """
    interior = np.ones(regions.shape, np.float32)
    pixels, pairs, links = boundary_links(regions)
    if len(pairs) == 0:
        return interior
    values = membrane.ravel()[pixels][links[:, 0]]
    sums = np.bincount(links[:, 1], weights=values, minlength=len(pairs))
    counts = np.bincount(links[:, 1], minlength=len(pairs))
    pair_level = merge_levels(pairs, sums, counts)
    pixel_level = np.zeros(len(pixels))
    np.maximum.at(pixel_level, links[:, 0], pair_level[links[:, 1]])
    interior.ravel()[pixels] = 1.0 - pixel_level
    return interior


@dataclass(frozen=True)
class Agglomeration:
    """Watershed regions merged by mean boundary probability; cells where the contour map exceeds ``threshold``.

    Args:
        h: how far a maximum of the (smoothed) probability must rise to seed a region of the over-segmentation.
        sigma: Gaussian smoothing (pixels) of the probability before seeding and flooding; 0 = none.
        threshold: cut of the contour map for :meth:`__call__`: regions whose mean boundary is below
            ``1 - threshold`` are merged.
    """

    h: float = 0.07
    sigma: float = 0.0
    threshold: float = 0.55

    def __post_init__(self) -> None:
        # The over-segmentation and the cut are the project's watershed and components; building them here
        # checks h, sigma and threshold as those methods do, once.
        regions = SeededWatershed(markers="maxima", sigma=self.sigma, h=self.h, watershed_line=True)
        object.__setattr__(self, "_regions", regions)
        object.__setattr__(self, "_cut", ConnectedComponents(threshold=self.threshold))

    def contours(self, prob: np.ndarray) -> np.ndarray:
        """The contour map of one probability slice (float32, 1 inside regions, ``1 - level`` on borders)."""
        prob = check_probability(prob)
        return contour_map(self._regions(prob), 1.0 - prob)

    def cut(self, contours: np.ndarray) -> np.ndarray:
        """Labelled cells (0 = border) of a contour map: its 4-connected regions above ``threshold``."""
        return self._cut(contours)

    def __call__(self, prob: np.ndarray) -> np.ndarray:
        return self.cut(self.contours(prob))
