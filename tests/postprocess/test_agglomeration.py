"""Mean-boundary agglomeration: the merge order of average linkage, the contour map, gaps in real membranes."""

import itertools

import numpy as np
import pytest
from scipy import ndimage

from src.metrics.isbi import score_probabilities, score_segmentations
from src.postprocess.agglomeration import Agglomeration, boundary_links, contour_map, merge_levels
from src.postprocess.instances import ConnectedComponents
from src.utils.errors import UserError


def _reference_levels(pairs: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average linkage the slow way: every step recomputes each pair of clusters' boundary mean from scratch."""
    cluster = {int(r): {int(r)} for r in np.unique(pairs)}
    level = np.ones(len(pairs))
    while True:
        best = None
        for x, y in itertools.combinations(sorted(cluster), 2):
            crossing = [k for k, (a, b) in enumerate(pairs) if {a, b} & cluster[x] and {a, b} & cluster[y]]
            crossing = [k for k in crossing if not {pairs[k][0], pairs[k][1]} <= cluster[x]]
            crossing = [k for k in crossing if not {pairs[k][0], pairs[k][1]} <= cluster[y]]
            if crossing:
                mean = sums[crossing].sum() / counts[crossing].sum()
                if best is None or mean < best[0]:
                    best = (mean, x, y, crossing)
        if best is None:
            return level
        mean, x, y, crossing = best
        level[crossing] = mean
        cluster[x] |= cluster.pop(y)


@pytest.mark.parametrize("seed", range(5))
def test_merge_levels_follow_average_linkage(seed):
    rng = np.random.default_rng(seed)
    regions = 9
    pairs = np.array([(a, b) for a, b in itertools.combinations(range(1, regions + 1), 2) if rng.random() < 0.45])
    pairs = np.concatenate([pairs, [(r, r + 1) for r in range(1, regions)]])  # connected
    pairs = np.unique(pairs, axis=0)
    counts = rng.integers(1, 20, len(pairs))
    sums = rng.random(len(pairs)) * counts
    levels = merge_levels(pairs, sums, counts)
    np.testing.assert_allclose(levels, _reference_levels(pairs, sums, counts), atol=1e-12)
    assert (levels >= np.min(sums / counts) - 1e-12).all() and (levels <= 1.0).all()


def test_merge_levels_of_three_regions_by_hand():
    pairs = np.array([(1, 2), (2, 3), (1, 3)])
    # boundary means 0.2, 0.6 (5 pixels) and 0.9 (15 pixels): 1 and 2 merge at 0.2, then {1, 2} and 3 at
    # the mean of both of their boundaries, (0.6 * 5 + 0.9 * 15) / 20 = 0.825
    levels = merge_levels(pairs, np.array([0.2 * 4, 0.6 * 5, 0.9 * 15]), np.array([4, 5, 15]))
    np.testing.assert_allclose(levels, [0.2, 0.825, 0.825])


def test_boundary_links_name_the_regions_on_each_side_of_a_line():
    regions = np.array(
        [
            [1, 1, 0, 2, 2],
            [1, 1, 0, 2, 2],
            [0, 0, 0, 0, 0],
            [3, 3, 0, 4, 4],
        ]
    )
    pixels, pairs, links = boundary_links(regions)
    linked = {(int(pixels[p]), tuple(pairs[k])) for p, k in links}
    assert (0 * 5 + 2, (1, 2)) in linked and (3 * 5 + 2, (3, 4)) in linked
    assert (2 * 5 + 0, (1, 3)) in linked and (2 * 5 + 4, (2, 4)) in linked
    centre = {pair for pixel, pair in linked if pixel == 2 * 5 + 2}
    assert centre == set(itertools.combinations((1, 2, 3, 4), 2))  # the junction separates all four


def _isbi_slice_with_gaps(isbi_stack, index: int = 0, gaps: int = 40, seed: int = 0):
    """A real label slice as a smooth probability map, with ``gaps`` 7x7 holes punched in its membranes."""
    label = isbi_stack[1][index]
    prob = ndimage.gaussian_filter((label > 0).astype(np.float32), 1.0)
    rng = np.random.default_rng(seed)
    membrane = np.argwhere(label == 0)
    for y, x in membrane[rng.choice(len(membrane), gaps, replace=False)]:
        prob[max(y - 3, 0) : y + 4, max(x - 3, 0) : x + 4] = 0.95  # a few pixels the network missed
    return label, prob


def test_agglomeration_keeps_cells_apart_across_gaps_in_real_membranes(isbi_stack):
    label, prob = _isbi_slice_with_gaps(isbi_stack)
    thresholded = score_probabilities(prob[None], label[None])  # the protocol's sweep of the map itself
    method = Agglomeration(h=0.1, threshold=0.75)
    contours = method.contours(prob)
    swept = score_probabilities(contours[None], label[None])
    cells = score_segmentations(method(prob)[None], label[None])
    assert thresholded["vrand"] < 0.9  # each gap merges two cells at every threshold
    assert swept["vrand"] > 0.98 and swept["vinfo"] > 0.98
    assert cells["vrand"] > 0.98 and cells["vinfo"] > 0.98
    # the cells are the contour map thresholded as the protocol thresholds it, thinning included
    at_cut = score_probabilities(contours[None], label[None], thresholds=(0.75,))
    assert cells["vrand"] == pytest.approx(at_cut["vrand"], abs=1e-12)
    assert cells["vinfo"] == pytest.approx(at_cut["vinfo"], abs=1e-12)


def test_contour_map_is_a_hierarchy(isbi_stack):
    _, prob = _isbi_slice_with_gaps(isbi_stack, index=3)
    contours = Agglomeration(h=0.1).contours(prob)
    assert contours.dtype == np.float32 and contours.shape == prob.shape
    assert contours.min() >= 0.0 and contours.max() == 1.0
    assert ((contours < 1.0).mean()) < 0.2  # borders are one-pixel lines
    previous = None
    for threshold in np.linspace(0.0, 0.95, 20):  # higher thresholds merge less: each cut refines the last
        cells = ConnectedComponents(threshold=float(threshold))(contours)
        if previous is not None:
            inside = (cells > 0) & (previous > 0)
            pairs = np.unique(np.stack([previous[inside], cells[inside]]), axis=1)
            assert len(np.unique(pairs[1])) == pairs.shape[1]  # each finer cell lies in one coarser cell
            assert cells.max() >= previous.max()
        previous = cells


def test_a_slice_of_one_region_has_no_borders():
    regions = np.ones((8, 8), np.int32)
    assert (contour_map(regions, np.zeros((8, 8))) == 1.0).all()
    flat = np.full((16, 16), 0.9, np.float32)
    assert Agglomeration()(flat).max() == 1


@pytest.mark.parametrize(
    "kwargs,match",
    [({"h": 0.0}, "postprocess.h"), ({"sigma": -1.0}, "postprocess.sigma"), ({"threshold": 1.0}, "threshold")],
)
def test_bad_parameters_say_which(kwargs, match):
    with pytest.raises(UserError, match=match):
        Agglomeration(**kwargs)
