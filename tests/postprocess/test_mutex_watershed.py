"""The mutex watershed on hand-worked graphs, and on the affinities of known cells in 2-D and 3-D."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.segmentation import watershed

from src.metrics.isbi import scores_from_segments
from src.models.affinities import affinities_of_cells
from src.postprocess.mutex_watershed import (
    MutexWatershed,
    drop_small,
    fragments,
    mutex_watershed,
    offset_edges,
    region_mutex_watershed,
)
from src.utils.errors import UserError

LINE = [[0, 1], [0, 2]]  # a row of 4 pixels: neighbours attract, pixels two apart repel


def _line(neighbours, two_apart):
    affinities = np.zeros((2, 1, 4), np.float32)
    affinities[0, 0, :3] = neighbours
    affinities[1, 0, :2] = two_apart
    return affinities


def test_a_strong_repulsion_keeps_two_clusters_apart():
    # By hand, highest priority first: 0-1 joins (0.9), 2-3 joins (0.85), 0-2 repels (1 - 0.2 = 0.8): a mutex
    # between {0, 1} and {2, 3}, so 1-2 (0.6) may not join them; 1-3 (0.5) is between the same two clusters.
    cells = mutex_watershed(_line([0.9, 0.6, 0.85], [0.2, 0.5]), LINE, attractive=1)
    assert cells.tolist() == [[1, 1, 2, 2]]


def test_a_weak_repulsion_comes_too_late():
    # 0-1 (0.9), 2-3 (0.85), then 1-2 (0.6) joins everything before 0-2 (0.5) and 1-3 (0.55) are seen.
    cells = mutex_watershed(_line([0.9, 0.6, 0.85], [0.5, 0.45]), LINE, attractive=1)
    assert cells.tolist() == [[1, 1, 1, 1]]


def test_a_mutex_carries_over_when_clusters_merge():
    # Row of 3: 0-1 joins (0.9); 0-2 repels (0.8) -> mutex {0,1} | {2}; 1-2 (0.7) is refused although it
    # touches pixel 1, which never had a repulsive edge of its own.
    affinities = np.zeros((2, 1, 3), np.float32)
    affinities[0, 0, :2] = [0.9, 0.7]
    affinities[1, 0, 0] = 0.2
    assert mutex_watershed(affinities, LINE, attractive=1).tolist() == [[1, 1, 2]]


def _cells(shape, seed):
    rng = np.random.default_rng(seed)
    cells, _ = ndimage.label(ndimage.gaussian_filter(rng.random(shape), 2) > 0.5)
    return cells


@pytest.mark.parametrize(
    ("shape", "offsets"),
    [
        ((48, 40), [[-1, 0], [0, -1], [-4, 0], [0, -4], [-6, -6], [6, -6]]),
        ((6, 24, 20), [[-1, 0, 0], [0, -1, 0], [0, 0, -1], [-2, 0, 0], [0, -5, 0], [0, 0, -5]]),
    ],
)
def test_the_affinities_of_known_cells_give_them_back(shape, offsets):
    cells = _cells(shape, seed=1)
    affinities, _ = affinities_of_cells(cells, offsets)
    rng = np.random.default_rng(0)
    noisy = np.clip(affinities + rng.normal(0, 0.1, affinities.shape), 0, 1)
    found = mutex_watershed(noisy, offsets, attractive=len(shape))
    inside = cells > 0
    # Each true cell is one found cell, and no two true cells share one (the boundary pixels go anywhere).
    pairs = np.unique(np.stack([cells[inside], found[inside]]), axis=1)
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1] == cells.max()


def _tiled_cells(shape, seed, count=8):
    """Cells that tile the image with one-pixel membranes (0) between them, as in EM."""
    rng = np.random.default_rng(seed)
    markers = np.zeros(shape, np.int32)
    markers[tuple(rng.integers(0, n, count) for n in shape)] = np.arange(1, count + 1)
    distance = ndimage.distance_transform_edt(markers == 0)
    return watershed(distance, markers, connectivity=1, watershed_line=True)


@pytest.mark.parametrize(
    ("shape", "offsets", "least"),
    [
        ((48, 40), [[-1, 0], [0, -1], [-4, 0], [0, -4], [-6, -6], [6, -6]], 0.97),
        ((6, 24, 20), [[-1, 0, 0], [0, -1, 0], [0, 0, -1], [-2, 0, 0], [0, -5, 0], [0, 0, -5]], 0.9),
    ],
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_region_graph_gives_known_cells_back(shape, offsets, least, seed):
    # Independent noise on every pair is the pixel graph's best case (it finds these cells exactly). The region
    # graph loses the membrane pixels' own repulsions (they join a fragment), so a small cell whose fragments no
    # long-range pair links to its neighbour's can merge with it: it is held to a V_rand bound.
    cells = _tiled_cells(shape, seed)
    affinities, _ = affinities_of_cells(cells, offsets)
    noisy = np.clip(affinities + np.random.default_rng(0).normal(0, 0.1, affinities.shape), 0, 1)
    found = MutexWatershed(attractive=len(shape), fragments_h=0.1).with_offsets(offsets)(noisy)
    scores = scores_from_segments(cells.ravel(), found.ravel())
    assert scores.vrand >= least, scores


REGION_LINE = [[0, -1], [0, -3]]  # a row of 6 pixels in two regions of 3: neighbours attract, pixels 3 apart repel


def _region_line(across, three_apart):
    affinities = np.full((2, 1, 6), 0.9, np.float32)  # channel k at p: the pair (p, p + offset k)
    affinities[0, 0, 3] = across  # the one attractive pair between the regions: pixels 3 and 2
    affinities[1, 0, 3:] = three_apart  # the repulsive pairs 3-0, 4-1, 5-2, all between the regions
    return affinities


def test_region_edges_weigh_the_mean_of_their_pixel_pairs():
    regions = np.array([[1, 1, 1, 2, 2, 2]])
    # By hand: the regions attract with 0.6 and repel with 1 - mean(0.2, 0.3, 0.4) = 0.7, which comes first.
    cells = region_mutex_watershed(regions, _region_line(0.6, [0.2, 0.3, 0.4]), np.array(REGION_LINE), 1, [1, 1])
    assert cells.tolist() == [[1, 1, 1, 2, 2, 2]]
    # One pair alone (0.1: repel with 0.9) would keep them apart; the mean (1 - 0.5 = 0.5) comes after 0.6.
    cells = region_mutex_watershed(regions, _region_line(0.6, [0.1, 0.7, 0.7]), np.array(REGION_LINE), 1, [1, 1])
    assert cells.tolist() == [[1, 1, 1, 1, 1, 1]]


def test_a_negative_bias_lets_the_repulsions_come_first():
    # Pixels 0-3 of a row: neighbours attract with 0.95 but 0.7 between pixels 1 and 2; pixels two apart (0-2, 1-3)
    # repel with 1 - 0.4 = 0.6. By hand, bias 0: 0.95, 0.95, then 0.7 joins the halves before any repulsion: one
    # cell. Bias -0.2: the pulls weigh 0.75, 0.75 and 0.5, so after the halves form the 0.6 repulsions put a
    # mutex between them and the 0.5 pull is refused: two cells.
    offsets = [[0, -1], [0, -2]]  # channel k at p: the pair (p, p + offsets[k])
    affinities = np.array([[[0.0, 0.95, 0.7, 0.95]], [[0.0, 0.0, 0.4, 0.4]]], np.float32)
    assert mutex_watershed(affinities, offsets, attractive=1).tolist() == [[1, 1, 1, 1]]
    assert mutex_watershed(affinities, offsets, attractive=1, bias=-0.2).tolist() == [[1, 1, 2, 2]]
    # The region graph likewise: attraction 0.6 against a mean repulsion of 1 - 0.5 = 0.5 joins the regions at
    # bias 0 and, lowered by 0.2 to 0.4, comes after the repulsion at bias -0.2.
    regions, line = np.array([[1, 1, 1, 2, 2, 2]]), _region_line(0.6, [0.1, 0.7, 0.7])
    assert region_mutex_watershed(regions, line, np.array(REGION_LINE), 1, [1, 1]).tolist() == [[1] * 6]
    cells = region_mutex_watershed(regions, line, np.array(REGION_LINE), 1, [1, 1], bias=-0.2)
    assert cells.tolist() == [[1, 1, 1, 2, 2, 2]]
    decode = MutexWatershed(attractive=1, bias=-0.2).with_offsets(offsets)
    assert decode.bias == -0.2 and decode(affinities).tolist() == [[1, 1, 2, 2]]


def test_fragments_are_the_basins_of_the_attractive_affinities():
    affinities = np.full((2, 6, 8), 0.9, np.float32)
    affinities[1, :, 4] = 0.1  # the pairs (p, p - (0, 1)) across a membrane between columns 3 and 4
    regions = fragments(affinities, np.array([[-1, 0], [0, -1]]), attractive=2, h=0.1)
    assert len(np.unique(regions)) == 2
    assert len(np.unique(regions[:, :3])) == len(np.unique(regions[:, 5:])) == 1
    assert regions[0, 0] != regions[0, 7]


def test_a_flat_affinity_map_is_one_fragment_and_one_cell():
    decode = MutexWatershed(fragments_h=0.1).with_offsets([[-1, 0], [0, -1], [0, -3]])
    for value in (0.0, 0.5, 1.0):
        assert np.unique(decode(np.full((3, 8, 8), value, np.float32))).tolist() == [1]


def test_offset_edges_pair_every_pixel_with_its_neighbour_inside_the_image():
    u, v, k = offset_edges((2, 3), np.array([[0, 1], [1, -1]]))
    assert list(zip(u.tolist(), v.tolist(), k.tolist(), strict=True)) == [
        (0, 1, 0),
        (1, 2, 0),
        (3, 4, 0),
        (4, 5, 0),
        (1, 3, 1),
        (2, 4, 1),
    ]
    u, _, k = offset_edges((4, 4), np.array([[0, 1], [0, 2]]), strides=[1, 2])
    assert (k == 1).sum() == 2  # one edge in 2 along each axis of the 4 x 2 pairs: rows 0 and 2, column 0


def test_drop_small_makes_border_of_small_cells_and_renumbers():
    cells = np.array([[1, 1, 2], [3, 3, 3]])
    assert drop_small(cells, 3).tolist() == [[0, 0, 0], [1, 1, 1]]
    assert drop_small(cells, 0).tolist() == cells.tolist()


def test_the_postprocess_needs_offsets_and_repulsive_ones():
    with pytest.raises(UserError, match="model.target=affinities"):
        MutexWatershed()(np.zeros((2, 4, 4), np.float32))
    with pytest.raises(UserError, match="fragments_h"):
        MutexWatershed(fragments_h=1.0)
    with pytest.raises(UserError, match="leaves none"):
        MutexWatershed(attractive=2).with_offsets([[-1, 0], [0, -1]])
    with pytest.raises(UserError, match="stride"):
        MutexWatershed(stride=0)
    with pytest.raises(UserError, match="bias"):
        MutexWatershed(bias=-1.5)
    # Rows 0-2 and 3-5 of a 6 x 5 slice: every pull 0.9 but 0.1 across rows 2|3, and rows 3-5 repel the rows three
    # above them (affinity 0, priority 1): the mutexes come first and keep the halves apart.
    affinities = np.full((3, 6, 5), 0.9, np.float32)
    affinities[0, 3] = 0.1
    affinities[2] = 1.0
    affinities[2, 3:] = 0.0
    cells = MutexWatershed(min_size=2).with_offsets([[-1, 0], [0, -1], [-3, 0]])(affinities)
    assert cells.tolist() == [[1] * 5] * 3 + [[2] * 5] * 3
    assert MutexWatershed(min_size=16).with_offsets([[-1, 0], [0, -1], [-3, 0]])(affinities).max() == 0
