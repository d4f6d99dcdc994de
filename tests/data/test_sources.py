"""Where stacks come from: a user's TIFFs (checked), the generated stack, the ISBI files (verified)."""

import numpy as np
import pytest
import tifffile

from src.data.sources import IsbiSource, SyntheticSource, TiffSource
from src.utils.errors import UserError


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
    with pytest.raises(UserError, match="is a folder"):
        TiffSource(str(tmp_path), str(labels_path)).prepare()
    tifffile.imwrite(tmp_path / "short.tif", tifffile.imread(labels_path)[:4])
    with pytest.raises(UserError, match="must match slice for slice"):
        TiffSource(str(images_path), str(tmp_path / "short.tif")).load()


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
