import numpy as np
import pytest
from scipy import ndimage

from src.data.datamodule import EMDataModule
from src.data.label_widening import widen_membranes
from src.data.sources import SyntheticSource
from src.utils.errors import UserError


def _two_cells_and_a_speck() -> np.ndarray:
    interior = np.ones((20, 20), np.uint8)
    interior[:, 9] = 0  # a one-pixel membrane between two large cells
    interior[2:5, 13:16] = 0  # a ring of membrane around a 1-pixel cell
    interior[3, 14] = 1
    return interior


def test_membranes_grow_by_the_given_pixels_on_each_side():
    interior = _two_cells_and_a_speck()
    widened = widen_membranes(interior, 1)
    assert np.array_equal(widened[10], np.r_[np.ones(8), np.zeros(3), np.ones(9)].astype(np.uint8))
    assert widened[10].sum() == interior[10].sum() - 2
    assert widened.dtype == interior.dtype
    # Only interior pixels turn into membrane, never the reverse; the image border is not a membrane.
    assert not (widened & ~interior.astype(bool)).any()
    assert widened[0, 0] == 1 and widened[19, 19] == 1


def test_no_cell_disappears():
    interior = _two_cells_and_a_speck()
    widened = widen_membranes(interior, 2)
    assert widened[3, 14] == 1  # the 1-pixel cell, which erosion alone would remove
    cells, count = ndimage.label(interior, structure=ndimage.generate_binary_structure(2, 1))
    assert count == 3
    assert all(widened[cells == k].any() for k in range(1, count + 1))
    # Cells large enough to survive the erosion are not restored: the large ones lost their rim.
    assert widened[cells == 1].sum() < (cells == 1).sum()


def test_zero_pixels_is_a_copy_and_stacks_are_widened_slice_by_slice():
    interior = _two_cells_and_a_speck()
    same = widen_membranes(interior, 0)
    assert np.array_equal(same, interior) and same is not interior
    stack = np.stack([interior, interior.T])
    widened = widen_membranes(stack, 1)
    assert np.array_equal(widened[0], widen_membranes(interior, 1))
    assert np.array_equal(widened[1], widen_membranes(interior.T, 1))
    with pytest.raises(ValueError, match="0 or more pixels"):
        widen_membranes(interior, -1)


def test_datamodule_widens_training_labels_only():
    def module(pixels: int) -> EMDataModule:
        dm = EMDataModule(
            SyntheticSource(num_slices=10, size=64),
            crop_size=32,
            train_samples=4,
            num_workers=0,
            membrane_widening=pixels,
            seed=0,
        )
        dm.setup("fit")
        return dm

    plain, wide = module(0), module(2)
    train = plain.splits["train"]
    assert np.array_equal(plain.train_labels, plain.labels[train])
    assert np.array_equal(wide.train_labels, widen_membranes(wide.labels[train], 2))
    assert wide.train_labels.sum() < plain.train_labels.sum()
    # Validation and test slices keep the stack's own labels.
    for split in ("val", "test"):
        for a, b in zip(plain.subset(split), wide.subset(split), strict=True):
            assert np.array_equal(a["label"], b["label"])
    with pytest.raises(UserError, match="data.membrane_widening=-1"):
        EMDataModule(SyntheticSource(num_slices=10, size=64), membrane_widening=-1)
