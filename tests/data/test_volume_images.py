"""TIFF, PNG and folders of slices: calibration from ImageJ's metadata, name order, one shape for every slice."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from src.data.volume import open_volume
from src.utils.errors import UserError


def test_imagej_calibration_gives_the_voxel_size(tmp_path):
    path = tmp_path / "cal.tif"
    stack = np.arange(2 * 6 * 8, dtype=np.uint16).reshape(2, 6, 8)
    tifffile.imwrite(path, stack, imagej=True, resolution=(1 / 4.0, 1 / 5.0), metadata={"spacing": 50.0, "unit": "nm"})
    with open_volume(path) as volume:
        assert (volume.voxel_size, volume.unit, volume.chunks) == ((50.0, 5.0, 4.0), "nm", (1, 6, 8))
        np.testing.assert_array_equal(volume.read_box((slice(1, 2), slice(2, 5), slice(None))), stack[1:2, 2:5])


def test_a_folder_is_read_in_natural_name_order_and_a_png_is_one_slice(tmp_path):
    for index in (10, 2, 1):
        Image.fromarray(np.full((4, 5), index, np.uint8)).save(tmp_path / f"s{index}.png")
    with open_volume(tmp_path) as volume:
        assert volume.shape == (3, 4, 5)
        assert [int(volume.read(i)[0, 0]) for i in range(3)] == [1, 2, 10]
    with open_volume(tmp_path / "s2.png") as volume:
        assert volume.shape == (1, 4, 5) and volume.format == "PNG"


def test_slices_of_another_shape_or_colour_are_refused(tmp_path):
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((4, 6), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(UserError, match=r"slice b.png is \(4, 6\) uint8 but a.png is \(4, 5\) uint8"):
        open_volume(tmp_path)
    rgb = tmp_path / "rgb" / "c.png"
    rgb.parent.mkdir()
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(rgb)
    with pytest.raises(UserError, match=r"c.png has shape \(4, 5, 3\); every slice must be a greyscale 2-D image"):
        open_volume(rgb.parent)
    with pytest.raises(UserError, match="is a folder with no PNG or TIFF slices"):
        open_volume(rgb.parent.parent / "empty" if (rgb.parent.parent / "empty").mkdir() is None else None)
