"""Reading EM image and label stacks from (multi-page) TIFF files, with clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from src.utils.errors import UserError


def read_stack(
    path: str | Path, what: str = "image stack", hint: str = "check the path in the data config"
) -> np.ndarray:
    """Read a TIFF as an ``(N, H, W)`` array (a 2-D image becomes one slice)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} not found: {path} ({hint})")
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give the path of a TIFF file")
    try:
        array = tifffile.imread(path)
    except Exception as exc:  # tifffile raises several types for damaged or foreign files
        raise UserError(f"{what} {path} could not be read as a TIFF ({exc}); is it a complete .tif file?") from exc
    if array.size == 0:
        raise UserError(f"{what} {path} is empty (shape {array.shape}); it holds no slices")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise UserError(
            f"{what} {path} has shape {array.shape}; expected a greyscale (N, H, W) stack or one (H, W) "
            "image: RGB or multi-channel images are not supported, convert them to greyscale first"
        )
    if np.iscomplexobj(array) or array.dtype == bool:
        raise UserError(f"{what} {path} has pixel type {array.dtype}; expected 8/16-bit integers or floats")
    return array


def normalize_slices(stack: np.ndarray) -> np.ndarray:
    """Per-slice standardisation to zero mean and unit variance, as float32.

    Works the same for 8-bit, 16-bit and float images, so a model trained on one microscope's bit depth
    can be applied to another's. NaN or infinite pixels are refused: they would poison every output.
    """
    data = stack.astype(np.float32, copy=True)
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise UserError(f"image stack holds {bad} NaN or infinite pixels; clean or mask them before use")
    axes = tuple(range(1, data.ndim))
    mean = data.mean(axis=axes, keepdims=True)
    std = data.std(axis=axes, keepdims=True)
    data -= mean
    data /= np.maximum(std, 1e-6)
    return data


def binary_labels(stack: np.ndarray, path: str | Path = "label stack") -> np.ndarray:
    """Interior mask (1 = cell interior, 0 = membrane) from labels holding two values {0, 1} or {0, 255}."""
    values = np.unique(stack)
    if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
        shown = ", ".join(str(v) for v in values[:8]) + (" ..." if len(values) > 8 else "")
        raise UserError(
            f"labels in {path} are not binary (values: {shown}); expected 0 = membrane and 255 (or 1) = cell "
            "interior; threshold grey labels (e.g. from lossy saving) before use"
        )
    return (stack > 0).astype(np.uint8)
