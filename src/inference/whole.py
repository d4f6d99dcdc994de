"""Whole-image forward passes for a U-Net of any padding mode and any image size.

The image is mirror-padded so that it can pass the network (a multiple of ``2**depth`` for same padding;
the paper's overlap-tile context for valid padding), and the output is cropped back to the image's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from src.models.unet import UNet


def _pad_amounts(net: UNet, size: int) -> tuple[int, int, int]:
    """(pad before, pad after, offset of the image's first pixel in the output) along one axis."""
    if net.padding == "same":
        padded = net.valid_input_size(size)
        before = (padded - size) // 2
        return before, padded - size - before, before
    padded = net.valid_input_size(size)
    context = (padded - net.output_size(padded)) // 2
    return context, padded - size - context, 0


def mirror_pad(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    left, right, top, bottom = pads
    # Reflection needs each pad smaller than the side; repeat it for tiny images, as the overlap-tile
    # strategy mirrors the image as often as needed.
    while left or right or top or bottom:
        step = [min(p, s - 1) for p, s in zip(pads, (x.shape[-1],) * 2 + (x.shape[-2],) * 2, strict=True)]
        if max(step) <= 0:
            return F.pad(x, (left, right, top, bottom), mode="replicate")
        x = F.pad(x, tuple(step), mode="reflect")
        left, right, top, bottom = (p - s for p, s in zip((left, right, top, bottom), step, strict=True))
        pads = (left, right, top, bottom)
    return x


def predict_logits(net: UNet, image: torch.Tensor) -> torch.Tensor:
    """Logits ``(B, K, H, W)`` for an image batch ``(B, C, H, W)`` of any size."""
    height, width = image.shape[-2:]
    top, bottom, off_y = _pad_amounts(net, height)
    left, right, off_x = _pad_amounts(net, width)
    padded = mirror_pad(image, (left, right, top, bottom))
    logits = net(padded)
    return logits[..., off_y : off_y + height, off_x : off_x + width]
