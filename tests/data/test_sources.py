"""Where stacks come from: a user's TIFFs (checked), the generated stack, the ISBI files (verified)."""

import numpy as np
import pytest
import tifffile

from src.data.sources import IsbiSource, SyntheticSource, TiffSource
from src.utils.errors import UserError
from tests.conftest import write_volume_copies


def test_tiff_source_reads_images_and_labels_as_stored(synthetic_tiffs):
    images_path, labels_path = synthetic_tiffs
    source = TiffSource(str(images_path), str(labels_path))
    source.prepare()
    images, labels = source.load()
    assert images.shape == labels.shape == (10, 96, 96)
    assert np.array_equal(images, tifffile.imread(images_path))
    assert np.array_equal(labels, tifffile.imread(labels_path))  # classes are the data module's job


def test_tiff_source_refuses_missing_files_folders_and_mismatched_stacks(synthetic_tiffs, tmp_path):
    images_path, labels_path = synthetic_tiffs
    with pytest.raises(UserError, match="not found"):
        TiffSource(str(tmp_path / "none.tif"), str(labels_path)).prepare()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty is a folder with no PNG or TIFF slices"):
        TiffSource(str(tmp_path / "empty"), str(labels_path)).load()
    tifffile.imwrite(tmp_path / "short.tif", tifffile.imread(labels_path)[:4])
    with pytest.raises(UserError, match="must match slice for slice"):
        TiffSource(str(images_path), str(tmp_path / "short.tif")).load()


def test_a_source_reads_hdf5_and_zarr_copies_by_key_as_the_tiffs(synthetic_tiffs, tmp_path):
    images_path, labels_path = synthetic_tiffs
    images, labels = TiffSource(str(images_path), str(labels_path)).load()
    image_copies = write_volume_copies(images, tmp_path / "images")
    label_copies = write_volume_copies(labels, tmp_path / "labels")
    for kind in ("hdf5", "zarr3", "n5"):
        (image_path, image_key), (label_path, label_key) = image_copies[kind], label_copies[kind]
        source = TiffSource(str(image_path), str(label_path), image_key=image_key, label_key=label_key)
        source.prepare()
        copy_images, copy_labels = source.load()
        assert np.array_equal(copy_images, images) and np.array_equal(copy_labels, labels)
    with pytest.raises(UserError, match=r"v.h5 has no dataset 'raw' .*check data.source.images / image_key"):
        TiffSource(str(image_copies["hdf5"][0]), str(labels_path), image_key="raw").load()


def test_synthetic_source_is_deterministic_by_seed():
    a, b, c = (SyntheticSource(num_slices=2, size=32, num_cells=5, seed=s).load() for s in (1, 1, 2))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and not np.array_equal(a[0], c[0])
    assert set(np.unique(a[1])) <= {0, 255}


def test_isbi_source_takes_the_verified_files_from_a_mirror(isbi_dir, tmp_path):
    source = IsbiSource(root=str(tmp_path / "isbi"), mirror=str(isbi_dir))
    source.prepare()
    images, labels = source.load()
    assert images.shape == labels.shape == (30, 512, 512) and set(np.unique(labels)) == {0, 255}
    with pytest.raises(UserError, match="not a isbi2012 file"):
        IsbiSource(root=str(tmp_path / "isbi"), image_file="other.tif").prepare()


def test_sources_state_their_images_voxel_size(isbi_dir, synthetic_tiffs, tmp_path):
    from src.data.sources import source_calibration
    from src.data.tiff import Calibration

    isbi = IsbiSource(root=str(tmp_path / "isbi"), mirror=str(isbi_dir))
    assert source_calibration(isbi) == Calibration((50.0, 4.0, 4.0), "nanometer")  # its description's 4x4x50 nm
    images, labels = synthetic_tiffs
    assert source_calibration(TiffSource(str(images), str(labels))) is None  # the file states none
    calibrated = tmp_path / "calibrated.tif"
    tifffile.imwrite(calibrated, tifffile.imread(images), imagej=True, resolution=(0.25, 0.25),
                     metadata={"spacing": 40.0, "unit": "nm"})  # fmt: skip
    assert source_calibration(TiffSource(str(calibrated), str(labels))) == Calibration((40.0, 4.0, 4.0), "nm")
    assert source_calibration(SyntheticSource(num_slices=2, size=32)) is None
