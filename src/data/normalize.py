"""Per-slice standardisation of EM images, the same in training, evaluation and prediction."""

from __future__ import annotations

import numpy as np

from src.utils.errors import UserError


def check_finite(stack: np.ndarray, where: str = "image stack") -> None:
    """Refuse NaN or infinite pixels, as float32 holds them (integer stacks have none): they would poison every
    output. ``where`` names the stack in the message (e.g. its file)."""
    if not np.issubdtype(stack.dtype, np.floating):
        return
    with np.errstate(over="ignore"):  # 1e300 is infinite in float32, and refused below
        values = stack if stack.dtype.itemsize <= 4 else stack.astype(np.float32)
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise UserError(f"{where} holds {bad} NaN or infinite pixels; clean or mask them before use")


def normalize_slices(stack: np.ndarray, where: str = "image stack") -> np.ndarray:
    """Per-slice standardisation to zero mean and unit variance, as float32.

    Works the same for 8-bit, 16-bit and float images, so a model trained on one microscope's bit depth
    can be applied to another's. NaN or infinite pixels are refused (:func:`check_finite`, naming ``where``).
    """
    data = stack.astype(np.float32, copy=True)
    check_finite(data, where)
    axes = tuple(range(1, data.ndim))
    mean = data.mean(axis=axes, keepdims=True)
    std = data.std(axis=axes, keepdims=True)
    data -= mean
    data /= np.maximum(std, 1e-6)
    return data


def standardise(raw: np.ndarray, mean, std) -> np.ndarray:
    """``raw`` as float32 at zero mean and unit variance by a known ``mean`` and ``std`` (scalars, or per slice
    shaped to broadcast): the volume paths' form of :func:`normalize_slices`, whose statistics come separately."""
    image = raw.astype(np.float32)
    image -= np.asarray(mean, np.float32)
    image /= np.maximum(np.asarray(std, np.float32), np.float32(1e-6))
    return image
