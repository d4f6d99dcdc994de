"""From class probabilities to the two things every output is made of: the cells' probability and the class map."""

from __future__ import annotations

import numpy as np
import torch

Array = np.ndarray | torch.Tensor


def cell_probability(probs: Array, boundary: int | None) -> Array:
    """Probability of "not the boundary class" from class probabilities ``(..., C, H, W)``: what V_rand, V_info and
    the post-processing read. Two classes: the other class's own probability (bit for bit the binary U-Net's)."""
    if boundary is None:
        raise ValueError("these classes name no boundary class: there are no cells to score or post-process")
    if probs.shape[-3] == 2:
        return probs[..., 1 - boundary, :, :]
    return 1 - probs[..., boundary, :, :]


def class_map(probs: Array) -> Array:
    """The most probable class of every pixel, uint8 ``(..., H, W)`` from ``(..., C, H, W)``."""
    if isinstance(probs, torch.Tensor):
        return probs.argmax(dim=-3).to(torch.uint8)
    return np.asarray(probs).argmax(axis=-3).astype(np.uint8)
