"""Overlap-tile prediction of one slice of any size (Ronneberger et al. 2015; Gaussian blending as nnU-Net).

The slice is mirror-padded at its borders and cut into overlapping square tiles. A ``valid``-padding U-Net sees
each output tile with its full input context, so its tiled prediction equals the whole-slice prediction
exactly; a ``same``-padding U-Net's tiles are blended with Gaussian importance weights (sigma a fraction of
the tile), optionally after cropping a ``halo`` of each tile's border, where zero padding inside the network
makes it least reliable. Tile origins are multiples of ``2**depth``, so the pooling grid never shifts between
tiles. Tiles run in batches, optionally under test-time augmentation (the 8 flips/rotations of the square).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from src.inference.regions import box_probabilities
from src.inference.whole import _mirror_pad
from src.models.unet import UNet
from src.utils.errors import UserError

DIHEDRAL = tuple(range(8))  # k rotations by 90 degrees, then a flip for 4..7


def dihedral(x: torch.Tensor, index: int) -> torch.Tensor:
    """Element ``index`` of the dihedral group of the square applied to the last two axes."""
    if index >= 4:
        x = x.flip(-1)
    return torch.rot90(x, index % 4, dims=(-2, -1))


def dihedral_inverse(x: torch.Tensor, index: int) -> torch.Tensor:
    x = torch.rot90(x, -(index % 4), dims=(-2, -1))
    return x.flip(-1) if index >= 4 else x


def tta_transforms(value: Any) -> tuple[int, ...]:
    """A ``tta`` setting as transform indices: ``false`` -> identity, ``true`` -> all 8, or a list of 0..7."""
    if value is None or value is False:
        return (0,)
    if value is True:
        return DIHEDRAL
    if isinstance(value, Sequence) and not isinstance(value, str) and value and all(v in DIHEDRAL for v in value):
        return tuple(int(v) for v in value)
    raise UserError(f"tta={value} must be true, false or a list of transforms 0..7 (0 = identity)")


def gaussian_weights(size: int, sigma_scale: float) -> np.ndarray:
    """Square importance map: 1 at the centre, falling as a Gaussian of sigma ``sigma_scale * size``."""
    if sigma_scale <= 0:
        return np.ones((size, size), np.float32)
    axis = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(axis**2) / (2 * (sigma_scale * size) ** 2))
    weights = np.outer(g, g)
    return np.maximum(weights / weights.max(), 1e-4).astype(np.float32)


def tile_starts(size: int, tile: int, step: int, align: int) -> list[int]:
    """Origins of output tiles covering ``[0, size)``: multiples of ``align``, ``step`` apart, the last one
    moved back (or forward to the next multiple of ``align``) to reach the end."""
    if size <= tile:
        return [0]
    last = math.ceil((size - tile) / align) * align
    return sorted(set(range(0, last, step)) | {last})


STITCHINGS = ("crop", "gaussian")


def owned_ranges(starts: Sequence[int], tile: int, size: int) -> list[tuple[int, int]]:
    """For each tile along one axis, the pixels ``[lo, hi)`` of ``[0, size)`` whose nearest tile centre is its own."""
    bounds = [0] + [(a + b + tile) // 2 for a, b in zip(starts, starts[1:], strict=False)] + [size]
    return [(max(0, lo), min(size, hi)) for lo, hi in zip(bounds, bounds[1:], strict=False)]


def dihedral_box(box: tuple[int, int, int, int], side: int, index: int) -> tuple[int, int, int, int]:
    """Where the box ``(top, bottom, left, right)`` of a ``side``-pixel square lands under ``dihedral(., index)``."""
    top, bottom, left, right = box
    mask = torch.zeros(side, side, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    rows, cols = dihedral(mask, index).nonzero(as_tuple=True)
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


class TiledPredictor:
    """Interior probability of ``(H, W)`` slices of any size with a U-Net, tile by tile.

    Two ways of stitching the tiles of a ``same``-padding network: ``crop`` (the paper's overlap-tile strategy)
    takes each output pixel from the one tile whose centre is nearest, so no pixel comes from near a tile's
    border, and runs the expanding path only over the part each tile keeps (:mod:`src.inference.regions`);
    ``gaussian`` (nnU-Net's, MONAI's) averages all the tiles covering a pixel with Gaussian importance weights.
    With crop stitching, tiles that keep the same box are batched together, across slices: up to
    ``queue_pixels`` of slices wait in memory while their tiles fill batches. A ``valid``-padding network's
    tiles are exact, so both give the untiled result.

    Args:
        net: the network (in eval mode, on ``device``).
        tile_size: side of the network's input tile (rounded up to a size the network accepts).
        overlap: fraction of an output tile shared with its neighbour (0 <= overlap < 1).
        stitching: ``crop`` or ``gaussian`` (above).
        sigma_scale: Gaussian sigma of the blending weights as a fraction of the output tile; 0 = flat.
        halo: for ``same`` padding, pixels cropped from each side of an output tile (context only).
        batch_size: tiles per forward pass.
        tta: dihedral transforms averaged (indices 0..7, 0 = identity).
        autocast_dtype: ``torch.bfloat16`` / ``torch.float16`` for mixed precision, None for float32.
        channels_last: feed tiles in channels-last memory format.
        pad_batches: fill the last, partial batch up to ``batch_size`` (a compiled network then sees one shape).
        compile: run the network through ``torch.compile`` with weight freezing (inference only): one graph
            for whole tiles, or one for each box that crop stitching keeps (9 for a 512x512 slice in tiles of
            256), each compiled on first use.
        queue_pixels: slice pixels that may wait for their tiles' batches to fill (crop stitching); at least
            one slice always may.
    """

    def __init__(
        self,
        net: UNet,
        tile_size: int = 256,
        overlap: float = 0.5,
        stitching: str = "crop",
        sigma_scale: float = 0.125,
        halo: int = 0,
        batch_size: int = 8,
        tta: Sequence[int] = (0,),
        autocast_dtype: torch.dtype | None = None,
        channels_last: bool = True,
        device: torch.device | str = "cpu",
        pad_batches: bool = False,
        compile: bool = False,
        queue_pixels: int = 16_000_000,
    ) -> None:
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap={overlap} must be in [0, 1)")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        if stitching not in STITCHINGS:
            raise ValueError(f"stitching={stitching!r} must be one of {', '.join(STITCHINGS)}")
        bad = [t for t in tta if t not in DIHEDRAL]
        if bad or not tta:
            raise ValueError(f"tta={list(tta)} must list dihedral transforms 0..7 (0 = identity)")
        self.net = net
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.pad_batches = pad_batches
        self.queue_pixels = queue_pixels
        self.tta = tuple(tta)
        self.autocast_dtype = autocast_dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.align = 2**net.depth
        self.tile_in = net.valid_input_size(tile_size)  # same padding: the next multiple of 2**depth
        if net.padding == "valid":
            self.tile_out = net.output_size(self.tile_in)
            self.context = (self.tile_in - self.tile_out) // 2
            self.crop = 0
        else:
            if not 0 <= 2 * halo < self.tile_in:
                raise ValueError(f"halo={halo} must leave part of the {self.tile_in}-pixel tile")
            self.tile_out = self.tile_in - 2 * halo
            self.context = halo
            self.crop = halo
        self.stitching = stitching
        # Only the boxes a tile keeps go through the expanding path: same padding, crop stitching.
        self.by_box = stitching == "crop" and net.padding == "same"
        # Eager inference runs a copy with BatchNorm folded into the convolutions (same output, less work);
        # compiling with weight freezing folds them itself.
        run = net if compile else fold_batchnorm(net)
        self.run_net: Callable[[torch.Tensor], torch.Tensor] = run
        self.run_boxes: Callable[[torch.Tensor, tuple[int, int, int, int]], torch.Tensor] = functools.partial(
            _box_forward, run
        )
        if compile:
            import torch._dynamo.config as dynamo_config
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True  # fold BatchNorm and pre-pack weights: inference only
            # one graph per box shape (and per TTA orientation of it): more than dynamo's default of 8
            dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
            if self.by_box:
                self.run_boxes = torch.compile(self.run_boxes, dynamic=False)
            else:
                self.run_net = torch.compile(run, dynamic=False)
        self.step = max(self.align, int(self.tile_out * (1 - overlap)) // self.align * self.align)
        self.weights = torch.from_numpy(gaussian_weights(self.tile_out, sigma_scale))
        self._boxes: dict[tuple, tuple[int, int, int, int]] = {}

    def tiles_per_slice(self, height: int, width: int) -> int:
        return len(tile_starts(height, self.tile_out, self.step, self.align)) * len(
            tile_starts(width, self.tile_out, self.step, self.align)
        )

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _turned_box(self, box: tuple[int, int, int, int], index: int) -> tuple[int, int, int, int]:
        key = (box, index)
        if key not in self._boxes:
            self._boxes[key] = dihedral_box(box, self.tile_in, index)
        return self._boxes[key]

    @torch.inference_mode()
    def _forward(self, batch: torch.Tensor, box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        """Mean interior probability over the TTA transforms: inside ``box`` of the output tile, computed only
        there, ``(B, box height, box width)``; or, with no box, of the whole output tile."""
        total = None
        for index in self.tta:
            x = dihedral(batch, index).contiguous(memory_format=self.memory_format)
            with self._autocast():
                if box is not None:
                    turned = self._turned_box(tuple(v + self.crop for v in box), index)
                    prob = dihedral_inverse(self.run_boxes(x, turned), index)
                else:
                    prob = dihedral_inverse(self.run_net(x).float().softmax(dim=1)[:, 1], index)
                    if self.crop:
                        prob = prob[:, self.crop : -self.crop, self.crop : -self.crop]
            total = prob if total is None else total + prob
        return total / len(self.tta)

    def predict(self, image: np.ndarray, on_tiles: Callable[[int], None] | None = None) -> np.ndarray:
        """Interior probability ``(H, W)`` float32 of a normalised slice; ``on_tiles(n)`` reports progress."""
        return next(self.predict_many([image], on_tiles))

    def predict_many(
        self, images: Iterable[np.ndarray], on_tiles: Callable[[int], None] | None = None
    ) -> Iterator[np.ndarray]:
        """Probabilities of a stream of slices, in order; tiles are batched across slice boundaries.

        Slices are read from ``images`` only as tiles are needed, and each result is yielded as soon as its
        last tile is done, so memory holds the slices in flight (one or two with Gaussian stitching; with crop
        stitching as many as fit in ``queue_pixels``, at least one), not the stack.
        """
        in_flight: deque[_Slice] = deque()
        queues: dict[tuple | None, list[tuple[_Slice, int, int, tuple | None]]] = {}
        for image in images:
            state = self._start(image)
            in_flight.append(state)
            for origin, box in zip(state.origins, state.boxes, strict=True):
                queue = queues.setdefault(box if self.by_box else None, [])
                queue.append((state, *origin, box))
                if len(queue) == self.batch_size:
                    self._run(queue, on_tiles)
                    queue.clear()
            # one queue (whole tiles) holds at most a batch: only boxes queued apart need the limit
            while self.by_box and in_flight and sum(s.pixels for s in in_flight) > self.queue_pixels:
                for queue in queues.values():  # too much waiting: run what is queued
                    if queue:
                        self._run(queue, on_tiles)
                        queue.clear()
                while in_flight and in_flight[0].remaining == 0:
                    yield in_flight.popleft().result()
            while in_flight and in_flight[0].remaining == 0:
                yield in_flight.popleft().result()
        for queue in queues.values():
            if queue:
                self._run(queue, on_tiles)
        while in_flight:
            yield in_flight.popleft().result()

    def _start(self, image: np.ndarray) -> _Slice:
        height, width = image.shape
        rows = tile_starts(height, self.tile_out, self.step, self.align)
        cols = tile_starts(width, self.tile_out, self.step, self.align)
        extent_y, extent_x = rows[-1] + self.tile_out, cols[-1] + self.tile_out
        c = self.context
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
        padded = _mirror_pad(x, (c, extent_x - width + c, c, extent_y - height + c)).to(self.device)
        origins = [(r, q) for r in rows for q in cols]
        if self.stitching == "crop":
            own_y = owned_ranges(rows, self.tile_out, height)
            own_x = owned_ranges(cols, self.tile_out, width)
            boxes = [
                (y0 - r, y1 - r, x0 - q, x1 - q)
                for (y0, y1), r in zip(own_y, rows, strict=True)
                for (x0, x1), q in zip(own_x, cols, strict=True)
            ]
        else:
            boxes = [None] * len(origins)
        return _Slice(padded, (height, width), (extent_y, extent_x), origins, boxes)

    def _run(self, tiles: list[tuple[_Slice, int, int, tuple | None]], on_tiles: Callable[[int], None] | None) -> None:
        """One forward pass over ``tiles`` (all with the same box when only boxes are computed)."""
        batch = torch.cat([state.padded[..., r : r + self.tile_in, q : q + self.tile_in] for state, r, q, _ in tiles])
        count = len(tiles)
        if self.pad_batches and count < self.batch_size:  # a compiled network keeps one input shape
            batch = torch.cat([batch, batch[-1:].expand(self.batch_size - count, -1, -1, -1)])
        probs = self._forward(batch, tiles[0][3] if self.by_box else None)[:count].cpu()
        for (state, r, q, box), prob in zip(tiles, probs, strict=True):
            if box is None:
                state.acc[r : r + self.tile_out, q : q + self.tile_out] += prob * self.weights
                state.norm[r : r + self.tile_out, q : q + self.tile_out] += self.weights
            else:
                top, bottom, left, right = box
                if not self.by_box:
                    prob = prob[top:bottom, left:right]
                state.acc[r + top : r + bottom, q + left : q + right] = prob
                state.norm[r + top : r + bottom, q + left : q + right] = 1.0
            state.remaining -= 1
        if on_tiles is not None:
            on_tiles(count)


def _box_forward(net: nn.Module, x: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """Interior probability ``(B, h, w)`` inside one box shared by every tile of the batch."""
    return torch.stack(box_probabilities(net, x, [box] * x.shape[0]))


class _Slice:
    """One slice in flight: its padded input, the weighted sums of tile outputs, the tiles still to run."""

    def __init__(
        self, padded: torch.Tensor, shape: tuple[int, int], extent: tuple[int, int], origins: list, boxes: list
    ) -> None:
        self.padded = padded
        self.shape = shape
        self.origins = origins
        self.boxes = boxes
        self.remaining = len(origins)
        self.pixels = extent[0] * extent[1]
        self.acc = torch.zeros(extent, dtype=torch.float32)
        self.norm = torch.zeros(extent, dtype=torch.float32)

    def result(self) -> np.ndarray:
        height, width = self.shape
        return (self.acc / self.norm)[:height, :width].numpy()


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """A copy of ``net`` for inference with every Conv2d -> BatchNorm2d pair folded into one convolution.

    In eval mode a batch norm is an affine map per channel, so ``bn(conv(x)) = conv'(x)`` with scaled weights
    and a shifted bias: the same output (to float rounding) for one convolution's work.
    """
    folded = copy.deepcopy(net).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (_, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                with torch.no_grad():
                    conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
                    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
                setattr(module, bn_name, nn.Identity())
    return folded
