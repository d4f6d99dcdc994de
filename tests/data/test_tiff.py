"""TIFF stacks read whole, with one clear line for files that are not stacks."""

import numpy as np
import pytest
import tifffile

from src.data.tiff import read_stack
from src.utils.errors import UserError


def test_reads_stacks_and_single_images(tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((3, 8, 9), np.uint16))
    tifffile.imwrite(tmp_path / "i.tif", np.zeros((8, 9), np.float32))
    assert read_stack(tmp_path / "s.tif").shape == (3, 8, 9)
    assert read_stack(tmp_path / "i.tif").shape == (1, 8, 9)


def test_bad_files_get_clear_errors(tmp_path):
    (tmp_path / "not.tif").write_text("hello")
    with pytest.raises(UserError, match=r"not.tif could not be opened .*is it a complete TIFF file"):
        read_stack(tmp_path / "not.tif")
    with pytest.raises(UserError, match="not found"):
        read_stack(tmp_path / "missing.tif")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(UserError, match="RGB or multi-channel"):
        read_stack(tmp_path / "rgb.tif")
