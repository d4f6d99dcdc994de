"""Tile origins, owned ranges and Gaussian weights."""

import pytest

from src.inference.tile_grid import gaussian_weights, owned_ranges, tile_starts


def test_tile_geometry():
    starts = tile_starts(300, 100, 48, 16)
    assert starts[0] == 0 and starts[-1] + 100 >= 300 and all(s % 16 == 0 for s in starts)
    assert all(b - a <= 48 for a, b in zip(starts, starts[1:], strict=False))
    assert tile_starts(50, 100, 48, 16) == [0]
    weights = gaussian_weights(64, 0.125)
    assert weights.max() == pytest.approx(1.0) and weights.min() > 0 and weights[0, 0] < 0.01


def test_each_pixel_is_owned_by_the_tile_whose_centre_is_nearest():
    starts, tile, size = [0, 48, 96], 64, 160
    ranges = owned_ranges(starts, tile, size)
    assert ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))  # no gap, no overlap
    for pixel in range(size):
        owner = next(i for i, (lo, hi) in enumerate(ranges) if lo <= pixel < hi)
        distances = [abs(pixel + 0.5 - (s + tile / 2)) for s in starts]
        assert distances[owner] == min(distances)
