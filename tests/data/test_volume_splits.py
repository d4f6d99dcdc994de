import pytest

from src.data.volume import Box
from src.data.volume_splits import _complement, held_out_boxes, training_pieces
from src.utils.errors import UserError


def test_the_complement_of_held_out_ranges_covers_the_rest():
    assert _complement([(4, 6)], 10) == [(0, 4), (6, 10)]
    assert _complement([(6, 8), (0, 2), (1, 3)], 8) == [(3, 6)]
    assert _complement([(0, 10)], 10) == []


def test_training_pieces_are_whole_slices_along_z_and_bands_along_y_or_x():
    shape = (5, 40, 60)
    pieces = training_pieces(shape, "z", [(3, 4), (3, 4)])
    assert [p.z for p in pieces] == [0, 1, 2, 4] and all(p.shape == (40, 60) for p in pieces)
    bands = training_pieces(shape, "y", [(10, 20), (30, 40)])
    assert bands[:2] == [Box(0, (0, 10), (0, 60)), Box(0, (20, 30), (0, 60))] and len(bands) == 10
    columns = training_pieces(shape, "x", [(0, 30)])
    assert all(p.x == (30, 60) and p.y == (0, 40) for p in columns) and len(columns) == 5
    with pytest.raises(UserError, match="no part of the volume is left"):
        training_pieces(shape, "y", [(0, 40)])
    with pytest.raises(UserError, match="fold_axis=t"):
        training_pieces(shape, "t", [(0, 1)])


def test_held_out_boxes_tile_the_range_and_are_spread_evenly():
    whole = held_out_boxes((6, 30, 40), "z", (2, 4), 64, 8)  # boxes larger than the slice: the slices
    assert whole == [Box(2, (0, 30), (0, 40)), Box(3, (0, 30), (0, 40))]
    tiles = held_out_boxes((2, 100, 100), "z", (0, 2), 40, 100)
    assert len(tiles) == 2 * 3 * 3 and all(b.shape == (40, 40) for b in tiles)
    assert {b.y for b in tiles} == {(0, 40), (40, 80), (60, 100)}  # the last tile moved back inside
    chosen = held_out_boxes((2, 100, 100), "z", (0, 2), 40, 4)
    assert chosen == [tiles[0], tiles[6], tiles[11], tiles[17]]
    band = held_out_boxes((3, 100, 50), "y", (80, 100), 64, 10)
    assert all(b.y == (80, 100) and b.x in ((0, 50),) for b in band) and len(band) == 3
    with pytest.raises(UserError, match="eval_box=0"):
        held_out_boxes((2, 10, 10), "z", (0, 1), 0, 4)
