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


def test_a_calibrated_stack_carries_its_voxel_size_in_resolution_tags_and_metadata(tmp_path):
    from src.data.tiff import Calibration, StackWriter, stack_metadata
    from src.data.volume import open_volume

    calibration = Calibration((50.0, 4.0, 4.6), "nanometer")
    with StackWriter(tmp_path / "c.tif", {"classes": ["membrane", "interior"]}, calibration) as writer:
        for page in np.arange(2 * 6 * 5, dtype=np.uint32).reshape(2, 6, 5):
            writer.write(page)
        writer.commit()
    with tifffile.TiffFile(tmp_path / "c.tif") as tif:
        for page in tif.pages:  # every page: 1 / (4.6 nm in cm) pixels per centimetre across, 1 / 4 nm down
            assert page.tags["ResolutionUnit"].value == 3  # centimetre
            x, y = page.tags["XResolution"].value, page.tags["YResolution"].value
            assert x[1] / x[0] * 1e7 == pytest.approx(4.6, rel=1e-6) and y[1] / y[0] * 1e7 == pytest.approx(4.0)
    assert stack_metadata(tmp_path / "c.tif") == {
        "shape": [2, 6, 5],
        "classes": ["membrane", "interior"],
        "voxel_size": [50.0, 4.0, 4.6],
        "unit": "nanometer",
    }
    with open_volume(tmp_path / "c.tif", None, "stack", "") as volume:  # read back as an input's calibration
        assert volume.voxel_size == (50.0, 4.0, 4.6) and volume.unit == "nanometer"
        assert Calibration.of(volume) == calibration
    with StackWriter(tmp_path / "p.tif", calibration=Calibration((1.0, 2.0, 2.0), "pixel")) as writer:
        writer.write(np.zeros((3, 3), np.uint8))
        writer.commit()
    with tifffile.TiffFile(tmp_path / "p.tif") as tif:  # not a length: per unit, with no absolute unit
        assert tif.pages[0].tags["ResolutionUnit"].value == 1 and tif.pages[0].tags["XResolution"].value == (1, 2)
    with StackWriter(tmp_path / "n.tif") as writer:  # none given: no calibration stated
        writer.write(np.zeros((3, 3), np.uint8))
        writer.commit()
    with open_volume(tmp_path / "n.tif", None, "stack", "") as volume:
        assert Calibration.of(volume) is None and "voxel_size" not in stack_metadata(tmp_path / "n.tif")


def test_a_given_voxel_size_overrides_the_input_and_bad_ones_are_one_line(tmp_path):
    from src.data.tiff import Calibration
    from src.data.volume import open_volume

    tifffile.imwrite(tmp_path / "ij.tif", np.zeros((2, 4, 4), np.uint8), imagej=True, resolution=(1 / 0.5, 1 / 0.25),
                     metadata={"spacing": 2.0, "unit": "micron"})  # fmt: skip
    with open_volume(tmp_path / "ij.tif", None, "input", "") as volume:
        assert Calibration.chosen(None, "nanometer", volume) == Calibration((2.0, 0.25, 0.5), "micron")
        assert Calibration.chosen([50, 4, 4], "nanometer", volume) == Calibration((50.0, 4.0, 4.0), "nanometer")
        for bad, unit in (([4, 4], "nm"), ([50, 0, 4], "nm"), ("x", "nm"), ([50, 4, 4], "")):
            with pytest.raises(UserError, match=r"is not a voxel size: give three positive numbers \(z, y, x\)"):
                Calibration.chosen(bad, unit, volume)
        # a unit is stated by the name OME-NGFF gives it; one that is no length (a typo) is refused in one line
        for written, name in (
            ("nm", "nanometer"),
            ("Nanometres", "nanometer"),
            ("µm", "micrometer"),
            ("A", "angstrom"),
        ):
            assert Calibration.chosen([50, 4, 4], written, volume).unit == name
        for bad in ("pixel", "nanometr", "a"):
            with pytest.raises(UserError, match=f"voxel_unit={bad} is not a unit of length: give one OME-NGFF names"):
                Calibration.chosen([50, 4, 4], bad, volume)
