"""The OME-Zarr output: read back by ome-zarr's reader with its voxel size, named only when every block is written."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

from src.inference.zarr_output import ZarrOutput
from src.utils.errors import UserError


def _output(tmp_path, boundary=0):
    output = ZarrOutput(tmp_path / "out.zarr")
    output.create((2, 6, 5), (1, 6, 5), ["membrane", "interior"], boundary, (50.0, 4.0, 4.0), "nm", "float32",
                  {"input": "x"})  # fmt: skip
    output.open()
    return output


def test_blocks_are_written_then_the_output_is_named(tmp_path):
    output = _output(tmp_path)
    probs = np.random.default_rng(0).random((1, 2, 6, 5)).astype(np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    output.write_block(0, (0, 1), (0, 6), (0, 5), probs, boundary=0)
    assert output.done() == {0} and not output.path.exists()
    with pytest.raises(UserError, match=r"1 of 2 blocks of .*\.out\.partial\.zarr were not written; rerun with resume"):
        output.finish(2)
    output.write_block(1, (1, 2), (0, 6), (0, 5), probs, boundary=0)
    assert output.finish(2) == output.path and not output.partial.exists()
    root = zarr.open_group(output.path, mode="r")
    np.testing.assert_array_equal(root["0"][:, 1], probs[0])
    np.testing.assert_array_equal(root["prob/0"][1], probs[0, 1])
    np.testing.assert_array_equal(root["labels/classes/0"][0], probs[0].argmax(axis=0))
    assert not (output.path / ".done").exists()


def test_ome_zarr_reads_the_image_and_its_label_with_voxel_size(tmp_path):
    output = _output(tmp_path, boundary=None)
    assert "prob" not in zarr.open_group(output.partial, mode="r")  # no boundary class: no cells' probability
    nodes = list(Reader(parse_url(str(output.partial)))())
    image, label = nodes[0], nodes[-1]
    assert image.data[0].shape == (2, 2, 6, 5)
    assert image.metadata["coordinateTransformations"][0][0]["scale"] == [1.0, 50.0, 4.0, 4.0]
    assert [a.get("unit") for a in image.metadata["axes"]] == [None, "nanometer", "nanometer", "nanometer"]
    assert image.metadata["channel_names"] == ["membrane", "interior"]
    assert label.data[0].shape == (2, 6, 5) and label.metadata["name"] == "classes"
