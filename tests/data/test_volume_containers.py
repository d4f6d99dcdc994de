"""HDF5, Zarr, OME-Zarr and N5 datasets by key: nested keys, OME-Zarr's extra axes, N5's reversed axis order."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from src.data.volume import open_volume
from src.utils.errors import UserError
from tests.conftest import write_volume_copies


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    stack = np.random.default_rng(0).integers(0, 65535, (3, 70, 90), dtype=np.uint16)
    return stack, write_volume_copies(stack, tmp_path_factory.mktemp("containers"))


@pytest.mark.parametrize("kind", ["hdf5", "ome-zarr", "n5"])
def test_voxel_size_and_chunks_are_read_where_the_file_records_them(copies, kind):
    stack, paths = copies
    path, key = paths[kind]
    with open_volume(path, key) as volume:
        assert volume.voxel_size == (50.0, 4.0, 4.0)
        assert volume.chunks == (1, 64, 64)
        assert volume.dtype == np.uint16
        np.testing.assert_array_equal(volume.read_box((slice(0, 3), slice(60, 70), slice(1, 89))), stack[:, 60:, 1:89])


def test_n5_axes_are_reversed_to_zyx_as_the_format_stores_them(copies):
    stack, paths = copies
    with open_volume(*paths["n5"]) as volume:
        assert volume.shape == (3, 70, 90)  # its attributes.json says dimensions [90, 70, 3]
        np.testing.assert_array_equal(volume.read(1), stack[1])


def test_an_ome_zarr_image_with_time_and_channel_axes_of_one_reads_as_zyx(tmp_path):
    group = zarr.open_group(tmp_path / "tczyx.zarr", mode="w", zarr_format=3)
    data = np.arange(2 * 5 * 6, dtype=np.float32).reshape(1, 1, 2, 5, 6)
    group.create_array("s0", shape=data.shape, chunks=(1, 1, 1, 5, 6), dtype=data.dtype)[:] = data
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}] + [
        {"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"
    ]
    scale = [{"type": "scale", "scale": [1.0, 1.0, 0.05, 0.004, 0.004]}]
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": [
        {"path": "s0", "coordinateTransformations": scale}]}]}  # fmt: skip
    with open_volume(tmp_path / "tczyx.zarr") as volume:
        assert (volume.shape, volume.voxel_size, volume.unit, volume.key) == (
            (2, 5, 6),
            (0.05, 0.004, 0.004),
            "micrometer",
            "s0",
        )
        np.testing.assert_array_equal(volume.read_box((slice(1, 2), slice(1, 4), slice(None))), data[0, 0, 1:2, 1:4])


def test_nested_keys_are_listed_when_one_is_missing(copies):
    path, _ = copies[1]["hdf5"]
    with pytest.raises(UserError, match=r"is a container: name its dataset \(it holds volumes/raw\); check the path"):
        open_volume(path)
    with pytest.raises(UserError, match=r"v.n5 is a container: name its dataset \(it holds raw\)"):
        open_volume(copies[1]["n5"][0])
