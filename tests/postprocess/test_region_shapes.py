"""Shape features of region pairs: a filled disk and ball fill their ellipse, moments add up over a union, and
fragments of one cell join into a fuller region than two cells do."""

import numpy as np
import pytest

from src.postprocess.region_shapes import COUNT, pair_shapes


def _disk(shape, centre, radius):
    grid = np.indices(shape)
    return sum((axis - c) ** 2 for axis, c in zip(grid, centre, strict=True)) <= radius**2


def test_a_disk_and_a_ball_fill_their_ellipse_and_a_ring_does_not():
    for shape, centre, radius in (((64, 64), (32, 30), 20), ((32, 32, 32), (16, 15, 16), 10)):
        regions = np.ones(shape, np.int32)
        regions[_disk(shape, centre, radius)] = 2
        disk_fill = pair_shapes(regions, np.array([1]), np.array([2]))[0, 1]  # the smaller region: the disk
        assert disk_fill == pytest.approx(1.0, abs=0.02)
    ring = np.ones((64, 64), np.int32)
    ring[_disk((64, 64), (32, 32), 24) & ~_disk((64, 64), (32, 32), 18)] = 2
    assert pair_shapes(ring, np.array([1]), np.array([2]))[0, 1] < 0.6


def test_the_union_s_features_equal_those_of_the_joined_region():
    rng = np.random.default_rng(0)
    regions = rng.integers(3, 5, (20, 30)).astype(np.int32)
    regions[:, :10] = 1
    regions[:, 10:18] = 2  # two blocks side by side, and scattered pixels of 3 and 4 in the rest
    pairs = pair_shapes(regions, np.array([1, 3]), np.array([2, 4]))
    assert pairs.shape == (2, COUNT)
    joined = np.where(regions == 2, 1, regions)
    whole = pair_shapes(joined, np.array([1]), np.array([3]))[0]
    assert pairs[0, 0] == pytest.approx(whole[2])  # the union of 1 and 2 is the larger region of (1+2, 3)
    assert pairs[0, 0] == pytest.approx(20 * 18 / (4 * np.pi * np.sqrt((20**2 / 12) * (18**2 / 12))))  # a block


def test_halves_of_one_disk_join_fuller_and_nearer_than_two_touching_disks():
    halves = np.zeros((80, 80), np.int32)
    disk = _disk((80, 80), (40, 40), 25)
    halves[disk] = 1
    halves[disk & (np.indices((80, 80))[1] >= 40)] = 2
    two = np.zeros((80, 80), np.int32)
    two[_disk((80, 80), (40, 20), 15)] = 1
    two[_disk((80, 80), (40, 50), 15)] = 2
    split, cells = (pair_shapes(regions, np.array([1]), np.array([2]))[0] for regions in (halves, two))
    assert split[0] == pytest.approx(1.0, abs=0.02) and split[3] > 0.03  # the union fills more than either half
    assert cells[0] < 0.9 and cells[3] < -0.08  # two disks joined fill less than either disk
    assert split[4] < 0.5 < 0.75 < cells[4]  # centres 0.85 radius apart over the union's size, against 2 radii
