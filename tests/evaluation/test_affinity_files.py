"""Affinities read back from src.predict's TIFF and from a blockwise output's Zarr group, and scored alike."""

import numpy as np
import pytest
import tifffile
import zarr

from src.data.tiff import StackWriter
from src.evaluation.affinity_files import affinity_offsets, read_affinities
from src.evaluation.scoring import score_files
from src.inference.zarr_output import ZarrOutput
from src.models.affinities import affinities_of_cells, cells_of_labels
from src.postprocess.mutex_watershed import MutexWatershed
from src.utils.errors import UserError

OFFSETS = [[-1, 0], [0, -1], [-9, 0], [0, -9]]


def _affinities(labels: np.ndarray) -> np.ndarray:
    """The true affinities (N, K, H, W) of 0/255 label slices, every pixel given to its nearest cell."""
    cells = [cells_of_labels((label > 0).astype(np.uint8), boundary=0, nearest_cell=True) for label in labels]
    return np.stack([affinities_of_cells(c, OFFSETS)[0] for c in cells])


def test_a_zarr_outputs_affinities_score_as_the_same_tiff(isbi_stack, tmp_path):
    labels = isbi_stack[1][24:26, :96, :96]
    affinities = _affinities(labels)
    with StackWriter(tmp_path / "s_affinities.tif", {"offsets": OFFSETS}) as writer:
        for one in affinities:
            writer.write(one)
        writer.commit()
    output = ZarrOutput(tmp_path / "s.zarr")  # as src.predict output=s.zarr makes it: (K, Z, Y, X)
    output.create((2, 96, 96), (2, 96, 96), ["membrane", "interior"], 0, None, None, "float32", {}, OFFSETS)
    zarr.open_group(output.partial, mode="r+")["affinities/0"][...] = np.moveaxis(affinities, 0, 1)
    output.partial.rename(output.path)
    for key in ("affinities", "affinities/0"):
        assert affinity_offsets(output.path, key) == OFFSETS
        stack, offsets = read_affinities(output.path, key)
        np.testing.assert_array_equal(stack, affinities)
    assert affinity_offsets(output.path, "prob/0") is None and affinity_offsets(tmp_path / "s_affinities.tif")
    label_path = tmp_path / "labels.tif"
    tifffile.imwrite(label_path, labels)
    decoder = MutexWatershed(fragments_h=0.0, min_size=0)
    from_tiff = score_files(tmp_path / "s_affinities.tif", label_path, postprocess=decoder)
    from_zarr = score_files(output.path, label_path, prediction_key="affinities/0", postprocess=decoder)
    assert from_zarr["vrand"] == from_tiff["vrand"] == pytest.approx(1.0) and from_zarr["slices"] == 2
    with pytest.raises(UserError, match=r"s.zarr/prob/0 is not an affinity stack of src.predict"):
        read_affinities(output.path, "prob/0")
