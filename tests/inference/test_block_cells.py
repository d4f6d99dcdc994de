"""Blockwise cells: hand-worked matches across a face, the faces of a block grid, and the mutex watershed's cells
of noisy affinities of ISBI's true cells cut block by block against the same cells cut from whole slices."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from scipy import ndimage

from src.inference.block_cells import BlockCells, face_pairs, matched_cells
from src.inference.blockwise import block_grid
from src.inference.zarr_output import ZarrOutput
from src.metrics.isbi import scores_from_segments
from src.models.affinities import affinities_of_cells
from src.postprocess.agglomeration import Agglomeration
from src.postprocess.mutex_watershed import MutexWatershed
from src.utils.errors import UserError
from tests.conftest import same_partition

OFFSETS = [[-1, 0], [0, -1], [-3, 0], [0, -3], [-9, 0], [0, -9], [-27, 0], [0, -27]]


def test_cells_are_matched_across_a_face_where_they_overlap_by_more_than_half_their_union():
    a = np.array([[1, 1, 1, 1, 2, 2, 3, 3, 0]])
    b = np.array([[5, 5, 5, 0, 6, 6, 7, 8, 8]])
    # 1 and 5: 3 pixels of a union of 4; 2 and 6: 2 of 2; 3 and 7: 1 of 2 (not more than half); 3 and 8: 1 of 3
    assert matched_cells(a, b).tolist() == [[1, 5], [2, 6]]
    assert matched_cells(a, np.zeros_like(b)).shape == (0, 2)


def test_each_face_of_the_block_grid_is_listed_once_with_its_axis():
    blocks = block_grid((4, 100, 150), (2, 50, 60))  # 2 x 2 x 3 blocks, the last column 30 wide
    pairs = face_pairs(blocks)
    # per pair of slices: 3 faces between the two rows, 2 x 2 between the columns
    assert len(pairs) == 2 * (3 + 4)
    assert sorted(axis for _, _, axis in pairs) == [0] * 6 + [1] * 8
    for first, second, axis in pairs:
        assert first.z == second.z
        if axis == 0:
            assert first.y[1] == second.y[0] and first.x == second.x
        else:
            assert first.x[1] == second.x[0] and first.y == second.y


@pytest.fixture(scope="module")
def noisy(isbi_stack, tmp_path_factory):
    """Affinities of ISBI's true cells (4-connected interiors of two slices), blurred and noised, in a Zarr group
    as a blockwise prediction stores them, and the mutex watershed's cells of each whole slice."""
    rng = np.random.default_rng(0)
    labels = isbi_stack[1][:2, :160, :190]
    affinities = []
    for label in labels:
        cells, _ = ndimage.label(label == 255)
        target, _ = affinities_of_cells(cells, OFFSETS)
        blurred = ndimage.gaussian_filter(target, (0, 1.5, 1.5)) + rng.normal(0, 0.25, target.shape)
        affinities.append(np.clip(blurred, 0, 1).astype(np.float32))
    affinities = np.stack(affinities, axis=1)  # (K, z, y, x), as affinities/0 holds them
    group = zarr.open_group(tmp_path_factory.mktemp("cells") / "out.zarr", mode="w", zarr_format=2)
    group.create_group("affinities").create_array("0", shape=affinities.shape, dtype=np.float32)[:] = affinities
    method = MutexWatershed(min_size=20).with_offsets(OFFSETS)
    whole = np.stack([method(affinities[:, z]) for z in range(affinities.shape[1])])
    return group, method, whole


def _blockwise(group, method, work, halo, block_shape):
    blocks = block_grid((2, 160, 190), block_shape)
    cells = BlockCells(group, work, method, halo, blocks)
    cells.prepare()
    for block in cells.pending():
        cells.decode(block)
    count = cells.join()
    out, numbers = np.zeros((2, 160, 190), np.uint32), cells.numbers()
    for block in blocks:
        cells.relabel(block, out, numbers)
    return out, count


def test_with_a_halo_as_wide_as_the_slice_the_blocks_cells_are_the_whole_slices(noisy, tmp_path):
    group, method, whole = noisy
    out, count = _blockwise(group, method, tmp_path / "work", 190, (1, 64, 64))
    assert count == len(np.unique(out)) - 1 == sum(len(np.unique(w)) - 1 for w in whole) > 20
    assert all(same_partition(out[z], whole[z]) for z in range(2))
    assert np.intersect1d(np.unique(out[0]), np.unique(out[1])).tolist() == [0]  # numbers unique in the volume


def test_a_narrow_halo_stitches_cells_across_faces_close_to_the_whole_slices(noisy, tmp_path):
    group, method, whole = noisy
    out, count = _blockwise(group, method, tmp_path / "work", 24, (2, 64, 64))
    for z in range(2):
        scores = scores_from_segments(whole[z], out[z])
        assert scores.vrand > 0.98
    unstitched = np.zeros_like(out)
    for block in block_grid((2, 160, 190), (2, 64, 64)):  # each block's own numbers: cells cut at every face
        box = (slice(*block.z), slice(*block.y), slice(*block.x))
        unstitched[box] = zarr.open_array(tmp_path / "work" / "local", mode="r")[box] + block.index * 10_000
    assert scores_from_segments(whole[0], np.where(out[0] > 0, unstitched[0], 0)).vrand < 0.9


@pytest.fixture(scope="module")
def blurred(isbi_stack, tmp_path_factory):
    """A blockwise output whose ``prob/0`` is ISBI's interiors blurred and noised (two slices), and the
    agglomeration's contour map of each whole slice."""
    rng = np.random.default_rng(1)
    interior = (isbi_stack[1][:2, :160, :190] == 255).astype(np.float32)
    prob = np.clip(ndimage.gaussian_filter(interior, (0, 1.5, 1.5)) + rng.normal(0, 0.1, interior.shape), 0, 1)
    output = ZarrOutput(tmp_path_factory.mktemp("contours") / "out.zarr")
    output.create((2, 160, 190), (1, 64, 64), ["membrane", "interior"], 0, None, None, "float32", {})
    group = zarr.open_group(output.partial, mode="r+")
    group["prob/0"][:] = prob.astype(np.float32)
    method = Agglomeration()
    return group, method, np.stack([method.contours(slice_) for slice_ in group["prob/0"][:]])


def test_the_contour_map_is_written_block_by_block_and_is_the_whole_slices_with_a_wide_halo(blurred, tmp_path):
    group, method, whole = blurred
    out, count = _blockwise(group, method, tmp_path / "work", 190, (1, 64, 64))
    np.testing.assert_array_equal(group["contours/0"][:], whole)
    assert count > 20 and all(same_partition(out[z], method.cut(whole[z])) for z in range(2))
    assert group["contours"].attrs["multiscales"][0]["name"] == "contour map"


def test_with_a_narrow_halo_the_contour_maps_cells_stay_close_to_the_whole_slices(blurred, tmp_path):
    group, method, whole = blurred
    _blockwise(group, method, tmp_path / "work", 24, (1, 64, 64))
    blocks = group["contours/0"][:]
    assert not np.array_equal(blocks, whole)  # each block's regions differ near its faces ...
    for z in range(2):  # ... but a cut of the map joins cells across faces by itself
        assert scores_from_segments(method.cut(whole[z]), method.cut(blocks[z])).vrand > 0.98


def test_joining_reads_each_blocks_face_bands_once(noisy, tmp_path):
    group, method, _ = noisy
    reads = []

    class Counted(BlockCells):
        def _bands(self, block):
            reads.append(block.index)
            return super()._bands(block)

    blocks = block_grid((2, 160, 190), (1, 64, 64))  # 2 x 3 x 3 blocks, 24 faces
    cells = Counted(group, tmp_path / "work", method, 24, blocks)
    cells.prepare()
    for block in blocks:
        cells.decode(block)
    cells.join()
    assert sorted(reads) == [block.index for block in blocks]


def test_a_halo_of_no_pixels_is_refused(noisy, tmp_path):
    group, method, _ = noisy
    with pytest.raises(UserError, match="cells_halo=0 must be at least 1"):
        BlockCells(group, tmp_path / "work", method, 0, block_grid((2, 160, 190), (2, 64, 64)))


def test_a_volume_without_cells_gets_none(noisy, tmp_path):
    group, _, _ = noisy
    everything_border = MutexWatershed(min_size=10**6).with_offsets(OFFSETS)  # every cell too small: all border
    out, count = _blockwise(group, everything_border, tmp_path / "work", 24, (2, 64, 64))
    assert count == 0 and not out.any()
