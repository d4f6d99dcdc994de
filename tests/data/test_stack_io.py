import numpy as np
import pytest
import tifffile

from src.data.stack_io import binary_labels, normalize_slices, read_stack
from src.utils.errors import UserError


def test_reads_stacks_and_single_images(tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((3, 8, 9), np.uint16))
    tifffile.imwrite(tmp_path / "i.tif", np.zeros((8, 9), np.float32))
    assert read_stack(tmp_path / "s.tif").shape == (3, 8, 9)
    assert read_stack(tmp_path / "i.tif").shape == (1, 8, 9)


def test_bad_files_get_clear_errors(tmp_path):
    (tmp_path / "not.tif").write_text("hello")
    with pytest.raises(UserError, match="could not be read as a TIFF"):
        read_stack(tmp_path / "not.tif")
    with pytest.raises(UserError, match="not found"):
        read_stack(tmp_path / "missing.tif")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(UserError, match="RGB or multi-channel"):
        read_stack(tmp_path / "rgb.tif")


def test_labels_must_be_binary():
    assert binary_labels(np.array([[0, 255]], np.uint8)).tolist() == [[0, 1]]
    with pytest.raises(UserError, match="not binary"):
        binary_labels(np.array([[0, 1, 2]], np.uint8))


def test_normalisation_is_per_slice_and_bit_depth_independent():
    stack8 = np.random.default_rng(0).integers(0, 256, (2, 16, 16)).astype(np.uint8)
    a = normalize_slices(stack8)
    b = normalize_slices(stack8.astype(np.uint16) * 257)
    assert np.allclose(a, b, atol=1e-5)
    assert np.allclose(a.mean(axis=(1, 2)), 0, atol=1e-5) and np.allclose(a.std(axis=(1, 2)), 1, atol=1e-4)
    with pytest.raises(UserError, match="NaN or infinite"):
        normalize_slices(np.array([[[np.nan, 1.0]]]))
