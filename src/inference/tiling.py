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
import functools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from src.inference.class_outputs import cell_probability
from src.inference.regions import box_probabilities, output_probabilities
from src.inference.tile_grid import check_tiling, gaussian_weights, owned_ranges, tile_starts
from src.inference.tta import dihedral_box, tta_mean
from src.inference.whole import mirror_pad
from src.models.batchnorm import fuse_batchnorm
from src.models.unet import UNet


class TiledPredictor:
    """The cells' probability ``(H, W)`` or every class's ``(C, H, W)`` of slices of any size, tile by tile.

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
        compile: ``torch.compile`` with weight freezing: one graph for whole tiles or per kept box (crop).
        queue_pixels: slice pixels that may wait for their tiles' batches to fill (crop stitching; >= 1 slice).
        boundary: the boundary class (membranes), whose complement is the cells' probability.
        output: ``interior`` (the cells' probability), ``classes`` (every class's probability) or ``all`` (the
            classes' then, for a network with ``affinity_channels``, the affinities; whole tiles, no TTA here).
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
        boundary: int | None = 0,
        output: str = "interior",
        affinity_channels: int = 0,  # how many of the network's last output channels are affinities
    ) -> None:
        check_tiling(overlap, batch_size, stitching, tta, sigma_scale, halo)
        if output not in ("interior", "classes", "all"):
            raise ValueError(f"output={output!r} must be interior, classes or all")
        if affinity_channels and tuple(tta) != (0,):
            raise ValueError("affinities are turned with the whole slice: tile an affinity network with tta=[0]")
        self.net = net
        self.boundary = boundary
        self.output = output
        self.affinity_channels = affinity_channels
        self.num_classes = (net.members[0] if hasattr(net, "members") else net).num_classes - affinity_channels
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
            if 2 * halo >= self.tile_in:  # a negative halo is refused by check_tiling above
                raise ValueError(f"halo={halo} must leave part of the {self.tile_in}-pixel tile")
            self.tile_out = self.tile_in - 2 * halo
            self.context = halo
            self.crop = halo
        self.stitching = stitching
        # Only the boxes a tile keeps go through the expanding path: same padding, crop stitching.
        self.by_box = stitching == "crop" and net.padding == "same" and not affinity_channels
        self._set_runners(net, compile)
        self.step = max(self.align, int(self.tile_out * (1 - overlap)) // self.align * self.align)
        self.weights = torch.from_numpy(gaussian_weights(self.tile_out, sigma_scale))
        self._boxes: dict[tuple, tuple[int, int, int, int]] = {}

    def _set_runners(self, net: UNet, compile: bool) -> None:
        """Eager inference runs a copy with BatchNorm fused into the convolutions (same output, less work);
        compiling with weight freezing fuses them itself."""
        run = net if compile else fuse_batchnorm(net)
        self.run_net: Callable[[torch.Tensor], torch.Tensor] = run
        self.run_boxes: Callable[[torch.Tensor, tuple[int, int, int, int]], torch.Tensor] = functools.partial(
            _box_forward, run
        )
        if compile and self.by_box:
            self.run_boxes = compiled_for_inference(self.run_boxes)
        elif compile:
            self.run_net = compiled_for_inference(run)

    def tiles_per_slice(self, height: int, width: int) -> int:
        return len(tile_starts(height, self.tile_out, self.step, self.align)) * len(
            tile_starts(width, self.tile_out, self.step, self.align)
        )

    def _autocast(self):
        on = self.autocast_dtype is not None
        return torch.autocast(self.device.type, self.autocast_dtype, enabled=on) if on else contextlib.nullcontext()

    def _turned_box(self, box: tuple[int, int, int, int], index: int) -> tuple[int, int, int, int]:
        key = (box, index)
        if key not in self._boxes:
            self._boxes[key] = dihedral_box(box, self.tile_in, index)
        return self._boxes[key]

    @torch.inference_mode()
    def _forward(self, batch: torch.Tensor, box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        """Mean class probabilities over the TTA transforms: inside ``box`` of the output tile, computed only
        there, ``(B, C, box height, box width)``; or, with no box, of the whole output tile."""

        def predict(x: torch.Tensor, index: int) -> torch.Tensor:
            x = x.contiguous(memory_format=self.memory_format)
            with self._autocast():
                if box is not None:
                    return self.run_boxes(x, self._turned_box(tuple(v + self.crop for v in box), index))
                return output_probabilities(self.run_net(x), self.affinity_channels)

        prob = tta_mean(batch, self.tta, predict)
        if box is None and self.crop:
            prob = prob[..., self.crop : -self.crop, self.crop : -self.crop]
        return prob

    def predict(self, image: np.ndarray, on_tiles: Callable[[int], None] | None = None) -> np.ndarray:
        """The probability (``output``) of a normalised slice, float32; ``on_tiles(n)`` reports progress."""
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
        padded = mirror_pad(x, (c, extent_x - width + c, c, extent_y - height + c)).to(self.device)
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
        channels = self.num_classes + self.affinity_channels
        return _Slice(padded, (height, width), (extent_y, extent_x), origins, boxes, channels, self._finish)

    def _finish(self, probs: torch.Tensor) -> np.ndarray:
        classes = probs if self.output == "all" else probs[: self.num_classes]  # all: classes then affinities
        return (cell_probability(classes, self.boundary) if self.output == "interior" else classes).numpy()

    def _run(self, tiles: list[tuple[_Slice, int, int, tuple | None]], on_tiles: Callable[[int], None] | None) -> None:
        """One forward pass over ``tiles`` (all with the same box when only boxes are computed)."""
        batch = torch.cat([state.padded[..., r : r + self.tile_in, q : q + self.tile_in] for state, r, q, _ in tiles])
        count = len(tiles)
        if self.pad_batches and count < self.batch_size:  # a compiled network keeps one input shape
            batch = torch.cat([batch, batch[-1:].expand(self.batch_size - count, -1, -1, -1)])
        probs = self._forward(batch, tiles[0][3] if self.by_box else None)[:count].cpu()
        for (state, r, q, box), prob in zip(tiles, probs, strict=True):
            if box is None:
                state.acc[:, r : r + self.tile_out, q : q + self.tile_out] += prob * self.weights
                state.norm[r : r + self.tile_out, q : q + self.tile_out] += self.weights
            else:
                top, bottom, left, right = box
                if not self.by_box:
                    prob = prob[:, top:bottom, left:right]
                state.acc[:, r + top : r + bottom, q + left : q + right] = prob
                state.norm[r + top : r + bottom, q + left : q + right] = 1.0
            state.remaining -= 1
        if on_tiles is not None:
            on_tiles(count)


def _box_forward(net: nn.Module, x: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """Class probabilities ``(B, C, h, w)`` inside one box shared by every tile of the batch."""
    return torch.stack(box_probabilities(net, x, [box] * x.shape[0]))


class _Slice:
    """One slice in flight: its padded input, the weighted sums of tile outputs, the tiles still to run."""

    def __init__(
        self,
        padded: torch.Tensor,
        shape: tuple[int, int],
        extent: tuple[int, int],
        origins: list,
        boxes: list,
        num_classes: int,
        finish: Callable[[torch.Tensor], np.ndarray],
    ) -> None:
        self.padded = padded
        self.shape = shape
        self.origins = origins
        self.boxes = boxes
        self.remaining = len(origins)
        self.pixels = extent[0] * extent[1]
        self.acc = torch.zeros((num_classes, *extent), dtype=torch.float32)
        self.norm = torch.zeros(extent, dtype=torch.float32)
        self.finish = finish

    def result(self) -> np.ndarray:
        height, width = self.shape
        return self.finish((self.acc / self.norm)[:, :height, :width])


def compiled_for_inference(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``torch.compile`` of ``fn`` with weight freezing (BatchNorm folded, weights pre-packed: inference only).
    The settings hold only inside its calls (where compiling happens): other compiled code is not affected.
    One graph per box shape and TTA orientation needs more than dynamo's default of 8 recompiles.
    """
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    compiled = torch.compile(fn, dynamic=False)
    limit = max(dynamo_config.recompile_limit, 64)

    def run(*args: object) -> torch.Tensor:
        with inductor_config.patch(freezing=True), dynamo_config.patch(recompile_limit=limit):
            return compiled(*args)

    return run
