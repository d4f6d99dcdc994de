"""The U-Net of Ronneberger et al. 2015 (arXiv 1505.04597) as a plain ``nn.Module``.

Shape contract: input ``(B, in_channels, H, W)``, output ``(B, num_classes, H', W')`` logits.
With ``padding="same"`` H' = H and W' = W, and H, W must be multiples of ``2**depth``.
With ``padding="valid"`` (the paper's unpadded convolutions) every 3x3 convolution trims one pixel per side,
skip connections are centre-cropped, and H' = :meth:`UNet.output_size` (H) < H; H must be one of the sizes
for which every pooled feature map has an even size (:meth:`UNet.valid_input_size` finds the nearest).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from src.models.batchnorm import BatchNorm2d
from src.models.unet_shape import NORMS, UNetSizes, check_members, check_unet_settings

Padding = Literal["same", "valid"]
Norm = Literal["batch", "instance", "group", "none"]
UpMode = Literal["transpose", "bilinear", "nearest"]


def _norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return BatchNorm2d(channels)  # nn.BatchNorm2d, trained in NCHW where channels-last is slow
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"model.norm={kind!r} is not one of {', '.join(NORMS)}")


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by normalisation and ReLU (one box of the paper's figure)."""

    def __init__(self, in_channels: int, out_channels: int, padding: Padding, norm: str) -> None:
        pad = 1 if padding == "same" else 0
        bias = norm == "none"
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=pad, bias=bias),
            _norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=pad, bias=bias),
            _norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """2x2 max pooling, then a double convolution: one step down the contracting path."""

    def __init__(self, in_channels: int, out_channels: int, padding: Padding, norm: str) -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels, padding, norm))


def _center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


def concat_channels(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """``torch.cat([first, second], dim=1)``; for channels-last tensors, through their (N, H, W, C) views.

    The same values either way. On CPUs, ``torch.cat`` along the channels of two channels-last tensors takes a
    slow path, several times slower than concatenating their NHWC views along the last dimension (docs/speed.md).
    The result is channels-last, as the convolution after it wants.
    """
    channels_last = first.stride(1) == 1 and second.stride(1) == 1 and first.shape[1] > 1 and second.shape[1] > 1
    if first.device.type == "cpu" and channels_last:  # the slow path is the CPU's
        return torch.cat([first.permute(0, 2, 3, 1), second.permute(0, 2, 3, 1)], dim=3).permute(0, 3, 1, 2)
    return torch.cat([first, second], dim=1)


class UpConvolution(nn.ConvTranspose2d):
    """The paper's 2x2 "up-convolution": ``nn.ConvTranspose2d(in, out, kernel_size=2, stride=2)``, the same
    parameters and outputs, with a faster way to train it on channels-last input.

    With a 2x2 kernel and stride 2 every input pixel makes its own 2x2 block of output pixels, so the layer is one
    matrix product: the (N*H*W, in) rows of the input's NHWC view times the weight as an (in, 2*2*out) matrix,
    then each row's 2x2 block moved into place. When a gradient is needed on a CPU that is what runs: there (oneDNN)
    the transposed convolution's backward pass is slow, and a matrix product's is two more matrix products
    (about twice as fast in all; docs/speed.md). Without a gradient (inference) moving the blocks costs more
    than the transposed convolution's own forward pass, which runs then.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        training = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        if not training or x.device.type != "cpu" or x.dim() != 4 or x.stride(1) != 1:
            return super().forward(x)  # the matrix product pays only for the CPU's slow backward pass
        n, _, height, width = x.shape
        out = self.out_channels
        rows = x.permute(0, 2, 3, 1).reshape(n * height * width, self.in_channels)
        weight = self.weight.permute(0, 2, 3, 1).reshape(self.in_channels, 4 * out)  # columns: (dy, dx, out)
        blocks = torch.addmm(self.bias.repeat(4), rows, weight)  # the bias once per (dy, dx)
        pixels = blocks.view(n, height, width, 2, 2, out).permute(0, 1, 3, 2, 4, 5)  # (n, y, dy, x, dx, out)
        return pixels.reshape(n, 2 * height, 2 * width, out).permute(0, 3, 1, 2)  # channels-last


class Up(nn.Module):
    """Up-sampling by 2, concatenation with the (cropped) skip connection, then a double convolution."""

    def __init__(self, in_channels: int, out_channels: int, padding: Padding, norm: str, mode: UpMode) -> None:
        super().__init__()
        if mode == "transpose":
            self.up = UpConvolution(in_channels, out_channels)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode=mode, **({"align_corners": False} if mode == "bilinear" else {})),
                nn.Conv2d(in_channels, out_channels, kernel_size=1),
            )
        self.conv = DoubleConv(2 * out_channels, out_channels, padding, norm)
        self.crop_skip = padding == "valid"  # decided once, so exported graphs hold no shape-dependent branch

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if self.crop_skip:
            skip = _center_crop(skip, x.shape[-2], x.shape[-1])
        return self.conv(concat_channels(skip, x))


class LocalContrast(nn.Module):
    """Each pixel's difference from the mean of its neighbourhood (a Gaussian-like window of ``sigma`` pixels: three
    passes of a box filter), over that neighbourhood's standard deviation: local contrast normalisation, so faint
    membranes in a blurred or dim part of a slice reach the contrast of sharp ones. A fixed layer of the network, so
    tiles, blocks and exported models apply it as training did; computed in float32."""

    def __init__(self, sigma: float, eps: float = 0.01) -> None:
        super().__init__()
        self.radius = max(1, round((sigma**2 + 0.25) ** 0.5 - 0.5))  # three boxes of 2r + 1: variance r (r + 1)
        self.eps = eps  # variance floor, for flat parts of the image (the input is standardised per slice)

    def _box(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over 2r + 1 pixels along the last axis, the image mirrored at its ends (by running sums)."""
        r = self.radius
        sums = F.pad(x, (r + 1, r, 0, 0), mode="reflect" if x.shape[-1] > r + 1 else "replicate").cumsum(-1)
        return (sums[..., 2 * r + 1 :] - sums[..., : -2 * r - 1]) / (2 * r + 1)

    def _smooth(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(3):
            x = self._box(self._box(x).transpose(-1, -2)).transpose(-1, -2)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            centred = x - self._smooth(x)
            return centred / (self._smooth(centred * centred) + self.eps).sqrt()


class UNet(nn.Module, UNetSizes):
    """U-Net with ``depth`` down-sampling steps; channels double at each step from ``base_channels``.

    The paper's network is ``UNet(depth=4, base_channels=64, padding="valid", norm="none")``.
    ``dropout`` is applied at the end of the contracting path, as in the paper; ``contrast_sigma`` > 0 puts a
    :class:`LocalContrast` of that scale before the first convolution.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        depth: int = 4,
        base_channels: int = 64,
        padding: Padding = "same",
        norm: Norm = "batch",
        dropout: float = 0.0,
        up_mode: UpMode = "transpose",
        contrast_sigma: float = 0.0,
    ) -> None:
        super().__init__()
        check_unet_settings(depth, base_channels, padding, norm, dropout, up_mode, contrast_sigma)
        self.contrast = LocalContrast(contrast_sigma) if contrast_sigma > 0 else nn.Identity()
        self.depth = depth
        self.padding = padding
        self.in_channels = in_channels
        self.num_classes = num_classes
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.inc = DoubleConv(in_channels, widths[0], padding, norm)
        self.downs = nn.ModuleList(Down(widths[i], widths[i + 1], padding, norm) for i in range(depth))
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i], padding, norm, up_mode) for i in reversed(range(depth)))
        self.outc = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        self._init_weights()

    def _init_weights(self) -> None:
        # He initialisation, as the paper recommends for ReLU networks.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"U-Net expects input of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        self.output_size(x.shape[-2])
        self.output_size(x.shape[-1])

    # ----- forward ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        skips = [self.inc(self.contrast(x))]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = self.dropout(skips.pop())
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)


class UNetEnsemble(nn.Module):
    """``members`` U-Nets of one configuration, each initialised apart, trained side by side on the same batches.

    Training returns every member's logits stacked along the batch axis, ``(members * B, C, H', W')``, so each
    member is fitted on its own (the module repeats the labels to match); with ``split_batch`` the batch is
    shared out instead, member ``i`` seeing only its ``i``-th part, so the members learn from different crops
    and return ``(B, C, H', W')`` together. Evaluation returns the log of the
    members' mean class probabilities ``(B, C, H', W')``, which every caller can treat as logits: their
    softmax is the mean; the last ``affinity_channels`` (sigmoid outputs) come back as the logit of the members'
    mean sigmoid. Averaging independently trained networks is how nnU-Net ensembles (Isensee et al.
    2021); here the members share the data stream and the time budget instead of a cross-validation fold.
    """

    def __init__(self, members: int = 2, split_batch: bool = False, affinity_channels: int = 0, **unet: Any) -> None:
        super().__init__()
        self.affinity_channels = affinity_channels
        check_members(members)
        self.members = nn.ModuleList(UNet(**unet) for _ in range(members))
        self.split_batch = split_batch
        first = self.members[0]
        self.depth, self.padding = first.depth, first.padding
        self.in_channels, self.num_classes = first.in_channels, first.num_classes

    def output_size(self, size: int) -> int:
        return self.members[0].output_size(size)

    def valid_input_size(self, min_output: int) -> int:
        return self.members[0].valid_input_size(min_output)

    def check_input(self, x: torch.Tensor) -> None:
        self.members[0].check_input(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.split_batch:
            if x.shape[0] % len(self.members):
                raise ValueError(
                    f"model.split_batch: a batch of {x.shape[0]} cannot be shared out among {len(self.members)} "
                    "members; make data.batch_size a multiple of model.members"
                )
            parts = x.chunk(len(self.members))
            return torch.cat([member(part) for member, part in zip(self.members, parts, strict=True)])
        if self.training:
            return torch.cat([member(x) for member in self.members])
        logits = torch.stack([member(x).float() for member in self.members])
        classes = logits.shape[2] - self.affinity_channels
        mean = logits[:, :, :classes].softmax(dim=2).mean(dim=0)
        mean = mean.clamp_min(torch.finfo(mean.dtype).tiny).log()
        if not self.affinity_channels:
            return mean
        joined = logits[:, :, classes:].sigmoid().mean(dim=0).clamp(1e-7, 1 - 1e-7)
        return torch.cat([mean, joined.log() - (-joined).log1p()], dim=1)


def build_unet(
    members: int = 1, split_batch: bool = False, affinity_channels: int = 0, **unet: Any
) -> UNet | UNetEnsemble:
    """The network that ``model=unet`` builds: one :class:`UNet`, or ``members`` of them as a :class:`UNetEnsemble`
    (``affinity_channels``: how many of the last output channels are affinities, averaged as such)."""
    return UNet(**unet) if members == 1 else UNetEnsemble(members, split_batch, affinity_channels, **unet)
