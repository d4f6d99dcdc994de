"""A same-padding U-Net's output inside a box of each tile, with the expanding path run only where the box needs it.

When tiles are stitched by cropping (each output pixel taken from the tile whose centre is nearest, the paper's
overlap-tile strategy), most of every tile's output is thrown away: a 512x512 slice in tiles of 256 at step 128
keeps 4/9 of the tile pixels it computes. The contracting path must still see the whole tile (it is the
context), but each level of the expanding path only needs the part of its feature map that the kept box
depends on: the box itself plus two pixels for the two 3x3 convolutions of the level, and half of that (one
more pixel for bilinear up-sampling) one level down. On those slices the expanding path is about half the
work of the whole tile, and the logits inside the box equal ``net(x)`` cropped to the box, to float rounding:
where a slice is cut inside the tile, the pixels its zero padding spoils lie outside the part that is kept,
and where it reaches the tile's border it pads exactly as the whole tile does.

Tiles whose boxes give the same slice sizes and offsets at every level run as one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from src.models.unet import UNet, UNetEnsemble, concat_channels

CONV_HALO = 2  # two 3x3 convolutions in each double convolution of the expanding path


@dataclass(frozen=True)
class Span:
    """The slices of one axis at one level of the expanding path, as half-open pixel ranges of that level.

    ``needed`` is the part of the level's up-sampled input and skip connection that its double convolution
    reads; ``kept`` the part of its output that the level above (or the box) uses; ``below`` the part of the
    next-coarser level's output that the up-sampling reads to cover ``needed``.
    """

    needed: tuple[int, int]
    kept: tuple[int, int]
    below: tuple[int, int]

    def shape_key(self) -> tuple[int, ...]:
        """What a batch of tiles must share: sizes and offsets relative to the level's own slices."""
        (n0, n1), (k0, k1), (b0, b1) = self.needed, self.kept, self.below
        return (n1 - n0, k0 - n0, k1 - k0, b1 - b0, n0 - 2 * b0)


def axis_spans(low: int, high: int, size: int, depth: int, up_halo: int) -> tuple[Span, ...]:
    """Spans of levels ``0 .. depth - 1`` (finest first) for the box ``[low, high)`` of a tile side ``size``."""
    if not 0 <= low < high <= size:
        raise ValueError(f"box [{low}, {high}) does not lie in a tile side of {size}")
    spans = []
    kept = (low, high)
    for level in range(depth):
        side = size >> level
        needed = (max(0, kept[0] - CONV_HALO), min(side, kept[1] + CONV_HALO))
        below = (max(0, needed[0] // 2 - up_halo), min(side // 2, -(-needed[1] // 2) + up_halo))
        spans.append(Span(needed, kept, below))
        kept = below
    return tuple(spans)


def _up_halo(net: UNet) -> int:
    # Transposed and nearest up-sampling map each output pixel to one input pixel; bilinear reads a neighbour.
    up = net.ups[0].up
    return 1 if isinstance(up, torch.nn.Sequential) and getattr(up[0], "mode", "") == "bilinear" else 0


def _gather(feature: torch.Tensor, rows: Sequence[int], spans_y, spans_x) -> torch.Tensor:
    """The slices ``feature[row, :, y0:y1, x0:x1]`` of the given batch rows, stacked.

    When every row is cut the same way and the rows are consecutive (tiles batched by their box), one view.
    """
    if len(set(spans_y)) == 1 and len(set(spans_x)) == 1 and list(rows) == list(range(rows[0], rows[0] + len(rows))):
        (y0, y1), (x0, x1) = spans_y[0], spans_x[0]
        return feature[rows[0] : rows[0] + len(rows), :, y0:y1, x0:x1]
    parts = [feature[r : r + 1, :, y0:y1, x0:x1] for r, (y0, y1), (x0, x1) in zip(rows, spans_y, spans_x, strict=True)]
    return torch.cat(parts)


def _box_logits(net: UNet, skips: list[torch.Tensor], bottom: torch.Tensor, rows, spans) -> torch.Tensor:
    """Logits inside the boxes of batch ``rows`` that share one shape key (``spans``: per row, (y, x) spans)."""
    depth = net.depth
    ys = [s[0] for s in spans]
    xs = [s[1] for s in spans]
    x = _gather(bottom, rows, [y[depth - 1].below for y in ys], [q[depth - 1].below for q in xs])
    for level in reversed(range(depth)):
        block = net.ups[depth - 1 - level]
        sy, sx = ys[0][level], xs[0][level]
        up = block.up(x)
        top, left = sy.needed[0] - 2 * sy.below[0], sx.needed[0] - 2 * sx.below[0]
        up = up[..., top : top + sy.needed[1] - sy.needed[0], left : left + sx.needed[1] - sx.needed[0]]
        skip = _gather(skips[level], rows, [y[level].needed for y in ys], [q[level].needed for q in xs])
        out = block.conv(concat_channels(skip, up))
        top, left = sy.kept[0] - sy.needed[0], sx.kept[0] - sx.needed[0]
        x = out[..., top : top + sy.kept[1] - sy.kept[0], left : left + sx.kept[1] - sx.kept[0]]
    return net.outc(x)


def _unet_box_probabilities(net: UNet, x: torch.Tensor, plans) -> list[torch.Tensor]:
    """Class probabilities inside each row's box: the contracting path on the whole batch, then the
    expanding path once per group of rows that share a shape key."""
    skips = [net.inc(x)]
    for down in net.downs:
        skips.append(down(skips[-1]))
    bottom = net.dropout(skips.pop())
    groups: dict[tuple, list[int]] = {}
    for row, (sy, sx) in enumerate(plans):
        key = (tuple(s.shape_key() for s in sy), tuple(s.shape_key() for s in sx))
        groups.setdefault(key, []).append(row)
    out: list[torch.Tensor] = [x] * x.shape[0]  # every row is replaced below
    for rows in groups.values():
        probs = class_probabilities(_box_logits(net, skips, bottom, rows, [plans[r] for r in rows]))
        for row, value in zip(rows, probs, strict=True):
            out[row] = value
    return out


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax of ``(B, K, h, w)`` logits, float32; two classes as the sigmoid of the margin (one exp a pixel)."""
    if logits.shape[1] == 2:
        interior = torch.sigmoid((logits[:, 1] - logits[:, 0]).float())
        return torch.stack((1 - interior, interior), dim=1)
    return logits.float().softmax(dim=1)


def output_probabilities(logits: torch.Tensor, affinity_channels: int = 0) -> torch.Tensor:
    """:func:`class_probabilities` of the class channels, then the sigmoid of the last ``affinity_channels``."""
    if not affinity_channels:
        return class_probabilities(logits)
    classes = class_probabilities(logits[:, :-affinity_channels])
    return torch.cat([classes, logits[:, -affinity_channels:].float().sigmoid()], dim=1)


def box_probabilities(
    net: UNet | UNetEnsemble, x: torch.Tensor, boxes: Sequence[tuple[int, int, int, int]]
) -> list[torch.Tensor]:
    """Class probabilities of each tile of ``x`` ``(B, C, T, T)`` inside its box, float32.

    ``boxes[i] = (top, bottom, left, right)`` in tile pixels, half-open; the result ``i`` is ``(K, h, w)`` and
    equals ``softmax(net(x))[i, :, top:bottom, left:right]``. An ensemble gives its members' mean.
    """
    first = net.members[0] if isinstance(net, UNetEnsemble) else net
    if first.padding != "same":
        raise ValueError("box_probabilities needs a same-padding U-Net (valid padding has no tile borders to spare)")
    if len(boxes) != x.shape[0]:
        raise ValueError(f"{len(boxes)} boxes for a batch of {x.shape[0]} tiles")
    first.check_input(x)
    halo = _up_halo(first)
    height, width = x.shape[-2:]
    plans = [
        (axis_spans(t, b, height, first.depth, halo), axis_spans(lft, r, width, first.depth, halo))
        for t, b, lft, r in boxes
    ]
    members = net.members if isinstance(net, UNetEnsemble) else [net]
    total: list[torch.Tensor] | None = None
    for member in members:
        probs = _unet_box_probabilities(member, x, plans)
        total = probs if total is None else [a + b for a, b in zip(total, probs, strict=True)]
    assert total is not None
    return [p / len(members) for p in total] if len(members) > 1 else total
