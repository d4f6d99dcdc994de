"""The mutex watershed on hand-worked graphs, and on the affinities of known cells in 2-D and 3-D."""

import numpy as np
import pytest
from scipy import ndimage

from src.models.affinities import affinities_of_cells
from src.postprocess.mutex_watershed import MutexWatershed, drop_small, mutex_watershed, offset_edges
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
    with pytest.raises(UserError, match="leaves none"):
        MutexWatershed(attractive=2).with_offsets([[-1, 0], [0, -1]])
    with pytest.raises(UserError, match="stride"):
        MutexWatershed(stride=0)
    # Rows 0-2 and 3-5 of a 6 x 5 slice: every pull 0.9 but 0.1 across rows 2|3, and rows 3-5 repel the rows three
    # above them (affinity 0, priority 1): the mutexes come first and keep the halves apart.
    affinities = np.full((3, 6, 5), 0.9, np.float32)
    affinities[0, 3] = 0.1
    affinities[2] = 1.0
    affinities[2, 3:] = 0.0
    cells = MutexWatershed(min_size=2).with_offsets([[-1, 0], [0, -1], [-3, 0]])(affinities)
    assert cells.tolist() == [[1] * 5] * 3 + [[2] * 5] * 3
    assert MutexWatershed(min_size=16).with_offsets([[-1, 0], [0, -1], [-3, 0]])(affinities).max() == 0
