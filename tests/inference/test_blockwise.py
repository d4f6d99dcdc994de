"""Blocks with a halo of the network's reach equal the whole-slice prediction, for any block shape and under TTA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from src.data.normalize import normalize_slices
from src.inference.blockwise import BlockPredictor, block_grid, box_in_frame, inverse_transform, network_reach
from src.inference.recipe import WholeSlicePredictor
from src.inference.tta import dihedral
from src.models.checkpoint import load_module
from src.utils.errors import UserError
from tests.conftest import write_small_checkpoint


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    torch.manual_seed(0)
    return load_module(write_small_checkpoint(tmp_path_factory.mktemp("bw") / "same.ckpt", depth=3, padding="same"))


def _blockwise(module, stack, block_shape, tta, halo):
    predictor = BlockPredictor(module, tta, halo, stack.shape[1:])
    channels = len(module.classes) + len(getattr(module, "offsets", ()))
    out = np.zeros((stack.shape[0], channels, *stack.shape[1:]), np.float32)
    for block in block_grid(stack.shape, block_shape):
        top, bottom, left, right = predictor.source_box(block)
        source = stack[block.z[0] : block.z[1], top:bottom, left:right]
        out[block.z[0] : block.z[1], :, block.y[0] : block.y[1], block.x[0] : block.x[1]] = predictor.predict(
            block, source
        ).numpy()
    return out


@pytest.mark.parametrize("tta", [(0,), tuple(range(8))])
def test_blocks_of_any_shape_equal_whole_slices(module, isbi_stack, tta):
    count = 2 if len(tta) == 1 else 1
    stack = normalize_slices(isbi_stack[0][:count, :150, :203])  # odd sides: the slice is padded unevenly
    whole = np.stack(list(WholeSlicePredictor(module, tta, None, "cpu", "classes").predict_many(stack)))
    reach = network_reach(module.net)
    for block_shape in [(1, 64, 64), (2, 50, 77), (2, 150, 203)][: 3 if len(tta) == 1 else 2]:
        np.testing.assert_allclose(_blockwise(module, stack, block_shape, tta, reach), whole, atol=2e-6)
    too_short = _blockwise(module, stack, (1, 64, 64), tta, 8)  # a halo under the reach shows at block borders
    assert np.abs(too_short - whole).max() > 1e-3


@pytest.mark.parametrize("tta", [(0,), (0, 1, 5, 6)])
def test_blocks_of_an_affinity_network_equal_whole_slices_affinities_and_all(isbi_stack, tta):
    """Affinities turned with the flips read their pairs across block edges from the halo, never from outside the
    slice: blocks give the whole slice's classes and affinities."""
    from src.models.module import SegmentationModule

    torch.manual_seed(0)
    offsets = [[-1, 0], [0, -1], [-5, 0], [0, -5], [-4, -4], [4, -4]]
    net = {"_target_": "src.models.unet.UNet", "depth": 3, "base_channels": 4, "num_classes": 2 + len(offsets)}
    adam = {"_target_": "torch.optim.Adam", "_partial_": True}
    module = SegmentationModule(net=net, optimizer=adam, affinities={"offsets": offsets}).eval()
    stack = normalize_slices(isbi_stack[0][:1, :90, :117])
    whole = np.stack(list(WholeSlicePredictor(module, tta, None, "cpu", "all").predict_many(stack)))
    got = _blockwise(module, stack, (1, 40, 50), tta, network_reach(module.net))
    assert got.shape == whole.shape == (1, 8, 90, 117)
    np.testing.assert_allclose(got, whole, atol=1e-5)  # BatchNorm fused in the blocks: float rounding apart
    with pytest.raises(UserError, match="block_halo=3 is shorter than the longest affinity offset"):
        BlockPredictor(module, tta, 3, stack.shape[1:])


def test_the_reach_bounds_what_an_impulse_changes(module):
    net = module.net.eval()
    x = torch.zeros(1, 1, 256, 256)
    y = torch.zeros_like(x)
    y[..., 128, 128] = 50.0
    with torch.no_grad():
        changed = (net(x + y) - net(x)).abs().amax(dim=(0, 1)) > 0
    rows = changed.any(dim=1).nonzero()
    assert 128 - int(rows.min()) <= network_reach(net) and int(rows.max()) - 128 <= network_reach(net)
    assert 128 - int(rows.min()) > network_reach(net) // 2  # the bound is not loose by more than 2x


def test_boxes_follow_every_flip_and_rotation():
    image = torch.zeros(5, 7)
    image[1:3, 2:6] = 1
    for t in range(8):
        turned = dihedral(image, t)
        rows, cols = turned.nonzero(as_tuple=True)
        found = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)
        assert box_in_frame(t, (1, 3, 2, 6), (5, 7)) == found
        assert box_in_frame(inverse_transform(t), found, tuple(turned.shape)) == (1, 3, 2, 6)


def test_grid_and_refusals(tmp_path):
    blocks = block_grid((3, 10, 7), (2, 4, 7))
    assert [b.shape for b in blocks[:4]] == [(2, 4, 7), (2, 4, 7), (2, 2, 7), (1, 4, 7)] and len(blocks) == 6
    with pytest.raises(UserError, match=r"block_shape=\[0, 4, 4\] must be three positive sizes"):
        block_grid((3, 10, 7), (0, 4, 4))
    valid = load_module(write_small_checkpoint(tmp_path / "valid.ckpt", depth=2, padding="valid"))
    with pytest.raises(UserError, match="needs a same-padding network"):
        BlockPredictor(valid, (0,), 10, (64, 64))
