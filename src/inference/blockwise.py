"""Blockwise prediction of a volume larger than memory, equal to predicting each whole slice.

The volume is cut into ``(z, y, x)`` blocks (the output's chunks). Each slice of a block is predicted from an input
region: the block grown by a ``halo`` at least the network's reach, read from the volume and mirror-padded where it
leaves the slice, exactly as the whole slice would be padded. Region origins fall on the ``2**depth`` grid of the
whole padded slice, in the frame of each test-time flip/rotation, so every pooling window is the whole slice's and
a block's output does not depend on the block shape (same-padding networks; valid padding is refused).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from src.inference.regions import output_probabilities
from src.inference.tta import dihedral, dihedral_inverse, turned_back_affinities
from src.inference.whole import mirror_pad
from src.models.batchnorm import fuse_batchnorm
from src.utils.errors import UserError

Box = tuple[int, int, int, int]  # top, bottom, left, right (half-open)


@dataclass(frozen=True)
class Block:
    index: int
    z: tuple[int, int]
    y: tuple[int, int]
    x: tuple[int, int]

    @property
    def box(self) -> Box:
        return (*self.y, *self.x)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.z[1] - self.z[0], self.y[1] - self.y[0], self.x[1] - self.x[0])


def block_grid(shape: Sequence[int], block_shape: Sequence[int]) -> list[Block]:
    """The blocks tiling ``shape`` (z, y, x) in C order; the last along each axis may be smaller."""
    if len(block_shape) != 3 or min(block_shape) < 1:
        raise UserError(f"block_shape={list(block_shape)} must be three positive sizes (z, y, x)")
    ranges = [[(s, min(s + b, n)) for s in range(0, n, b)] for n, b in zip(shape, block_shape, strict=True)]
    blocks = [(z, y, x) for z in ranges[0] for y in ranges[1] for x in ranges[2]]
    return [Block(i, *parts) for i, parts in enumerate(blocks)]


def network_reach(net) -> int:
    """Pixels of input on each side that can change an output pixel of a same-padding U-Net (3x3 convolutions,
    2x2 pooling and up-sampling), a bound from its layers: the halo that makes blocks equal the whole slice."""
    net = net.members[0] if hasattr(net, "members") else net
    levels = 2 ** np.arange(1, net.depth + 1)
    return int(2 + np.sum(levels // 2 + 2 * levels) + np.sum(2 * levels))


def frame_shape(t: int, shape: tuple[int, int]) -> tuple[int, int]:
    return shape[::-1] if t % 2 else shape


def box_in_frame(t: int, box: Box, shape: tuple[int, int]) -> Box:
    """Where ``box`` of an image of ``shape`` lands under :func:`src.inference.tta.dihedral` ``t``."""
    (top, bottom, left, right), (height, width) = box, shape
    if t >= 4:  # a flip of the last axis first
        left, right = width - right, width - left
    for _ in range(t % 4):  # each torch.rot90: (r, c) -> (W - 1 - c, r) in a (W, H) image
        top, bottom, left, right = width - right, width - left, top, bottom
        height, width = width, height
    return top, bottom, left, right


def inverse_transform(t: int) -> int:
    return t if t >= 4 else (4 - t) % 4  # flips are their own inverse


class BlockPredictor:
    """Class probabilities ``(z, C, y, x)`` of a block from a normalised source region around it (then the affinities
    ``(z, C + K, y, x)`` of an affinity network, turned with the test-time flips as whole-slice prediction turns them).

    Args:
        module: the trained module (``class_probabilities`` of image batches whose sides are multiples of 2**depth).
        tta: dihedral transforms averaged (0 = identity).
        halo: context pixels beyond the block on each side; at least :func:`network_reach` for exactness.
        slice_shape: (H, W) of the volume's slices.
    """

    def __init__(self, module, tta: Sequence[int], halo: int, slice_shape: tuple[int, int]) -> None:
        net = module.net.members[0] if hasattr(module.net, "members") else module.net
        if net.padding != "same":
            raise UserError(
                "blockwise prediction (output=<...>.zarr) needs a same-padding network; this checkpoint's is "
                "valid-padded: predict to TIFF instead (output=<folder>)"
            )
        self.module, self.tta, self.halo, self.shape = module, tuple(tta), int(halo), tuple(slice_shape)
        self.offsets = tuple(tuple(o) for o in getattr(module, "offsets", ()))
        reach = max((max(abs(v) for v in o) for o in self.offsets), default=0)
        if self.halo < reach:
            raise UserError(
                f"block_halo={self.halo} is shorter than the longest affinity offset ({reach} px); pass "
                "block_halo=auto (the network's reach)"
            )
        self.align = 2**net.depth
        self.net = net
        # A copy with BatchNorm fused into the convolutions, channels-last (as the tiled path runs): same output.
        self.run = fuse_batchnorm(module.net).to(memory_format=torch.channels_last)

    def source_box(self, block: Block) -> Box:
        """The original-frame pixels any transform's region of ``block`` reads (the block grown, clipped)."""
        grow = self.halo + self.align
        top, bottom, left, right = block.box
        height, width = self.shape
        return max(0, top - grow), min(height, bottom + grow), max(0, left - grow), min(width, right + grow)

    def _region(self, t: int, block: Block) -> tuple[Box, Box, tuple[int, int, int, int], Box]:
        """In transform ``t``'s frame: the block's box, the image part read, the mirror pads and the kept crop."""
        shape = frame_shape(t, self.shape)
        target = box_in_frame(t, block.box, self.shape)
        image, pads, crop = [], [], []
        for axis, (low, high) in enumerate((target[:2], target[2:])):
            size = shape[axis]
            before = (self.net.valid_input_size(size) - size) // 2
            padded = self.net.valid_input_size(size)
            start = max(0, (low + before - self.halo) // self.align * self.align)
            stop = min(padded, math.ceil((high + before + self.halo) / self.align) * self.align)
            first, last = max(start - before, 0), min(stop - before, size)
            image += [first, last]
            pads += [first - (start - before), (stop - before) - last]
            crop += [low + before - start, high + before - start]
        return target, tuple(image), (pads[2], pads[3], pads[0], pads[1]), tuple(crop)  # type: ignore[return-value]

    @torch.inference_mode()
    def predict(self, block: Block, source: np.ndarray, autocast=None) -> torch.Tensor:
        """``source``: the normalised ``(z, ...)`` pixels of :meth:`source_box`; returns ``(z, C, y, x)`` float32."""
        origin = self.source_box(block)
        device = next(self.run.parameters()).device
        total = count = None
        for t in self.tta:
            _, image, pads, crop = self._region(t, block)
            top, bottom, left, right = box_in_frame(inverse_transform(t), image, frame_shape(t, self.shape))
            part = source[:, top - origin[0] : bottom - origin[0], left - origin[2] : right - origin[2]]
            x = dihedral(torch.from_numpy(np.ascontiguousarray(part, np.float32))[:, None].to(device), t)
            x = mirror_pad(x, pads)
            with autocast if autocast is not None else torch.autocast(device.type, enabled=False):
                probs = output_probabilities(
                    self.run(x.contiguous(memory_format=torch.channels_last)), len(self.offsets)
                )
            if not self.offsets:
                view = dihedral_inverse(probs[..., crop[0] : crop[1], crop[2] : crop[3]].float(), t)
                total = view if total is None else total + view
                continue
            view, valid = self._affinity_view(block, t, probs, crop)
            total, count = (view, valid) if total is None else (total + view, count + valid)
        assert total is not None
        return (total / (count.clamp_min(1) if count is not None else len(self.tta))).cpu()

    def _affinity_view(self, block: Block, t: int, probs: torch.Tensor, crop: Box) -> tuple[torch.Tensor, torch.Tensor]:
        """Transform ``t``'s outputs over its whole region, turned back with the affinity channels moved to their
        offsets (pairs read across the block's edge from the region, never from outside the slice), then cut to
        the block: its values and where it gives them."""
        target = box_in_frame(t, block.box, self.shape)
        height, width = probs.shape[-2:]
        region_t = (target[0] - crop[0], target[0] - crop[0] + height, target[2] - crop[2], target[2] - crop[2] + width)
        top, _, left, _ = box_in_frame(inverse_transform(t), region_t, frame_shape(t, self.shape))
        full = dihedral_inverse(probs.float(), t)
        values, valid = turned_back_affinities(full, t, self.offsets, origin=(top, left), image=self.shape)
        rows = slice(block.y[0] - top, block.y[1] - top)
        cols = slice(block.x[0] - left, block.x[1] - left)
        return values[..., rows, cols], valid[..., rows, cols]
