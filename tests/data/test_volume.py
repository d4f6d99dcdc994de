"""One reader for every volume format: same pixels from every copy, lazy boxes, one clear line for bad input."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import tifffile

from src.data.volume import LazyVolume, open_volume, read_volume, volume_format
from src.utils.errors import UserError
from tests.conftest import write_volume_copies


@pytest.fixture(scope="module")
def copies(isbi_stack, tmp_path_factory):
    stack = isbi_stack[0][:4, :150, :200]  # edge blocks of every chunked copy are partial
    return stack, write_volume_copies(stack, tmp_path_factory.mktemp("copies"))


@pytest.mark.parametrize("kind", ["tiff", "hdf5", "zarr2", "zarr3", "ome-zarr", "n5", "png-folder"])
def test_every_copy_reads_the_same_pixels_and_boxes(copies, kind):
    stack, paths = copies
    path, key = paths[kind]
    with open_volume(path, key) as volume:
        assert volume.shape == stack.shape and volume.dtype == stack.dtype
        np.testing.assert_array_equal(volume.read_all(), stack)
        np.testing.assert_array_equal(volume.read(2), stack[2])
        box = (slice(1, 3), slice(37, 141), slice(60, 199))
        np.testing.assert_array_equal(volume.read_box(box), stack[1:3, 37:141, 60:199])
        np.testing.assert_array_equal(volume.read_box((slice(3, 9), slice(140, 400), slice(None))), stack[3:, 140:])


@pytest.mark.parametrize("kind", ["hdf5", "ome-zarr", "n5"])
def test_voxel_size_and_chunks_are_read_where_the_file_records_them(copies, kind):
    path, key = copies[1][kind]
    with open_volume(path, key) as volume:
        assert volume.voxel_size == (50.0, 4.0, 4.0)
        assert volume.chunks == (1, 64, 64)


def test_formats_are_told_apart_by_layout_and_first_bytes(copies, tmp_path):
    paths = copies[1]
    assert [volume_format(paths[k][0]) for k in ("tiff", "hdf5", "zarr2", "zarr3", "n5", "png-folder")] == [
        "tiff", "hdf5", "zarr", "zarr", "n5", "folder"]  # fmt: skip
    renamed = tmp_path / "stack.dat"
    renamed.write_bytes(paths["hdf5"][0].read_bytes())
    assert read_volume(renamed, "volumes/raw").shape == copies[0].shape


def test_a_missing_key_names_the_keys_there(copies):
    path, _ = copies[1]["hdf5"]
    with pytest.raises(UserError, match=r"has no dataset 'raw' \(it holds volumes/raw\); check the path"):
        open_volume(path, "raw")
    with pytest.raises(UserError, match=r"is a container: name its dataset \(it holds raw\)"):
        open_volume(copies[1]["zarr3"][0])
    with pytest.raises(UserError, match=r"has no dataset 'nope' \(it holds raw\)"):
        open_volume(copies[1]["n5"][0], "nope")


def test_a_truncated_tiff_is_one_line_naming_the_slice_box(tmp_path, isbi_stack):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, isbi_stack[0][:3])
    path.write_bytes(path.read_bytes()[: 512 * 512 + 99_000])
    with (
        pytest.raises(
            UserError, match=r"cut.tif is truncated: it holds \d+ of the 786432 bytes of its \(3, 512, 512\) stack"
        ),
        open_volume(path) as volume,
    ):
        volume.read_all()
    paged = tmp_path / "paged.tif"  # one page per slice: the last page's pixels are cut off
    tifffile.imwrite(paged, isbi_stack[0][:3], contiguous=False, metadata=None)
    paged.write_bytes(paged.read_bytes()[:-1000])
    expected = r"paged.tif (is truncated|could not be read at \[0:3, 0:512)"
    with pytest.raises(UserError, match=expected), open_volume(paged) as volume:
        volume.read_all()


def test_damaged_wrong_rank_and_foreign_inputs_are_refused(tmp_path):
    damaged = tmp_path / "bad.h5"
    damaged.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(UserError, match=r"bad.h5 \(key 'raw'\) could not be opened .*complete HDF5"):
        open_volume(damaged, "raw")
    with h5py.File(tmp_path / "rgb.h5", "w") as f:
        f["raw"] = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(UserError, match=r"rgb.h5 \(key 'raw'\) has shape \(2, 8, 8, 3\); expected a greyscale"):
        open_volume(tmp_path / "rgb.h5", "raw")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="is in no format read here"):
        open_volume(tmp_path / "notes.txt")
    with pytest.raises(UserError, match=r"input not found: .*nothing.zarr \(check the path\)"):
        open_volume(tmp_path / "nothing.zarr")
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(UserError, match="is a tiff and holds no datasets; drop the key 'raw'"):
        open_volume(tmp_path / "one.tif", "raw")


def test_a_lazy_volume_opens_on_first_read_and_travels_to_workers_without_its_handle(copies):
    stack, paths = copies
    path, key = paths["hdf5"]
    lazy = LazyVolume(path, key, "image stack", "check the key")
    assert lazy._opened is None  # nothing opened until a read
    box = (slice(0, 2), slice(10, 60), slice(5, 90))
    np.testing.assert_array_equal(lazy.read_box(box), stack[box])
    assert lazy._opened is not None
    copy = pickle.loads(pickle.dumps(lazy))  # as a data loader's worker process receives it
    assert copy._opened is None and copy.path == lazy.path and copy.key == key
    np.testing.assert_array_equal(copy.read_box(box), stack[box])
    lazy.close()
    assert lazy._opened is None
