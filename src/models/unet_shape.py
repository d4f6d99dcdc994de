"""A U-Net's settings and size arithmetic without the network: what :class:`src.models.unet.UNet` checks and
computes, usable before torch is imported (a config is checked before any network is built).

With ``padding="same"`` the output has the input's size, which must be a multiple of ``2**depth``; with
``"valid"`` every 3x3 convolution trims one pixel per side and the input must keep every pooled map even.
"""

from __future__ import annotations

NORMS = ("batch", "instance", "group", "none")
PADDINGS = ("same", "valid")
UP_MODES = ("transpose", "bilinear", "nearest")


def check_unet_settings(
    depth: int, base_channels: int, padding: str, norm: str, dropout: float, up_mode: str, contrast_sigma: float = 0.0
) -> None:
    """Raise ValueError naming the ``model.`` key of the first setting no U-Net can have."""
    if depth < 1:
        raise ValueError(f"model.depth={depth} must be at least 1 (the paper uses 4)")
    if base_channels < 1:
        raise ValueError(f"model.base_channels={base_channels} must be at least 1 (the paper uses 64)")
    if padding not in PADDINGS:
        raise ValueError(f"model.padding={padding!r} must be 'same' or 'valid'")
    if up_mode not in UP_MODES:
        raise ValueError(f"model.up_mode={up_mode!r} must be one of {', '.join(UP_MODES)}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"model.dropout={dropout} must be in [0, 1)")
    if norm not in NORMS:
        raise ValueError(f"model.norm={norm!r} is not one of {', '.join(NORMS)}")
    if contrast_sigma < 0:
        raise ValueError(f"model.contrast_sigma={contrast_sigma} must be 0 (off) or a positive scale in pixels")


def check_members(members: int) -> None:
    if members < 1:
        raise ValueError(f"model.members={members} must be at least 1")


class UNetSizes:
    """The size arithmetic of a U-Net of ``depth`` down-sampling steps and ``padding`` (the network inherits it)."""

    def __init__(self, depth: int, padding: str) -> None:
        self.depth, self.padding = depth, padding

    def _trace(self, size: int) -> int | None:
        """Output size for an input ``size`` along one axis, or None when it cannot pass the network."""
        if self.padding == "same":
            return size if size > 0 and size % 2**self.depth == 0 else None
        s = size - 4
        for _ in range(self.depth):
            if s <= 0 or s % 2:
                return None
            s = s // 2 - 4
        if s <= 0:
            return None
        for _ in range(self.depth):
            s = 2 * s - 4
        return s if s > 0 else None

    def output_size(self, size: int) -> int:
        """Output size along one axis for input ``size``; raises ValueError naming valid sizes otherwise."""
        out = self._trace(size)
        if out is None:
            below, above = self._nearest_valid(size)
            hint = f"{below} or {above}" if below else f"{above}"
            rule = (
                f"a multiple of 2**depth = {2**self.depth}"
                if self.padding == "same"
                else "a size whose feature maps stay even at every pooling step"
            )
            raise ValueError(
                f"input size {size} cannot pass a U-Net of depth {self.depth} with {self.padding} padding: "
                f"it needs {rule}; nearest sizes that work: {hint}"
            )
        return out

    def _nearest_valid(self, size: int) -> tuple[int | None, int]:
        below = next((s for s in range(size - 1, 0, -1) if self._trace(s) is not None), None)
        above = next(s for s in range(max(size + 1, 1), size + 10 * 2**self.depth + 200) if self._trace(s))
        return below, above

    def valid_input_size(self, min_output: int) -> int:
        """Smallest input size whose output is at least ``min_output`` pixels along one axis."""
        size = max(min_output, 1)
        while (out := self._trace(size)) is None or out < min_output:
            size += 1
        return size
