"""Training-time augmentation with albumentations, applied jointly to image, label and weight map.

Geometric transforms move the label and the border weight map with the image, with nearest-neighbour
interpolation for both (labels stay binary, weights stay the precomputed values). Intensity transforms touch
the image only. Images arrive scaled to [0, 1] (albumentations clips float images to that range); the
dataset standardises them afterwards.

The probabilities and strengths live in ``conf/data/augmentation/*.yaml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np

from src.utils.errors import UserError


class CoarseGridElastic(A.DualTransform):
    """The U-Net paper's elastic deformation: random displacements on a coarse grid, smoothly interpolated.

    Displacement vectors are drawn from a normal distribution with standard deviation ``std`` pixels on a
    ``grid`` x ``grid`` lattice spanning the crop, interpolated to every pixel with bicubic interpolation (as
    in the paper: 3 x 3 grid, 10 px), and applied with ``cv2.remap``: bilinear for the image, nearest for
    masks, mirrored at the borders.
    """

    def __init__(self, grid: int = 3, std: float = 10.0, p: float = 0.5) -> None:
        super().__init__(p=p)
        if grid < 2:
            raise ValueError(f"elastic grid={grid} must be at least 2 points per side")
        if std < 0:
            raise ValueError(f"elastic std={std} must not be negative")
        self.grid = grid
        self.std = std

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        coarse = self.random_generator.normal(0.0, self.std, size=(2, self.grid, self.grid)).astype(np.float32)
        dy, dx = (cv2.resize(c, (width, height), interpolation=cv2.INTER_CUBIC) for c in coarse)
        rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
        return {"map_x": cols + dx, "map_y": rows + dy}

    def _remap(self, array: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, interpolation: int) -> np.ndarray:
        return cv2.remap(array, map_x, map_y, interpolation=interpolation, borderMode=cv2.BORDER_REFLECT_101)

    def apply(self, img: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, **params: Any) -> np.ndarray:
        return self._remap(img, map_x, map_y, cv2.INTER_LINEAR)

    def apply_to_mask(self, mask: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, **params: Any) -> np.ndarray:
        return self._remap(mask, map_x, map_y, cv2.INTER_NEAREST)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("grid", "std")


class PatchyBlur(A.ImageOnlyTransform):
    """Blur in patches: the image blended with its Gaussian blur by a smooth random share, as a section that is
    out of focus in parts, where membranes turn faint (PyTorch Connectomics' CutBlur lowers a box's resolution).

    The share is drawn uniformly in [0, 1] on a ``grid`` x ``grid`` lattice spanning the crop and interpolated
    bicubically (clipped to [0, 1]); the blur's sigma is drawn from ``sigma`` (pixels) once a crop.
    """

    def __init__(self, sigma: tuple[float, float] = (1.0, 3.0), grid: int = 3, p: float = 0.5) -> None:
        super().__init__(p=p)
        if grid < 2:
            raise ValueError(f"patch blur grid={grid} must be at least 2 points per side")
        if not 0 < sigma[0] <= sigma[1]:
            raise ValueError(f"patch blur sigma={list(sigma)} must be a range [low, high] with 0 < low <= high")
        self.sigma = tuple(sigma)
        self.grid = grid

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        coarse = self.random_generator.uniform(0.0, 1.0, size=(self.grid, self.grid)).astype(np.float32)
        share = np.clip(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
        return {"share": share, "sigma": float(self.random_generator.uniform(*self.sigma))}

    def apply(self, img: np.ndarray, share: np.ndarray, sigma: float, **params: Any) -> np.ndarray:
        blurred = cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101).reshape(img.shape)
        share = share.reshape(share.shape + (1,) * (img.ndim - 2))
        return (img + share * (blurred - img)).astype(img.dtype)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("sigma", "grid")


def build_train_transform(
    crop_size: int,
    slice_shape: tuple[int, int] | None = None,
    flip_rotate_p: float = 1.0,
    elastic_p: float = 0.0,
    elastic_grid: int = 3,
    elastic_std: float = 10.0,
    brightness_contrast_p: float = 0.0,
    brightness_limit: float = 0.1,
    contrast_limit: float = 0.1,
    gamma_p: float = 0.0,
    gamma_limit: tuple[float, float] = (80, 120),
    blur_p: float = 0.0,
    blur_sigma: tuple[float, float] = (0.5, 1.0),
    noise_p: float = 0.0,
    noise_std: tuple[float, float] = (0.02, 0.06),
    patch_blur_p: float = 0.0,
    patch_blur_sigma: tuple[float, float] = (1.0, 3.0),
    patch_blur_grid: int = 3,
    random_crop: bool = True,
) -> A.Compose:
    """Random crop (mirror-padded when the slice is smaller), elastic deformation, the 8 flips/rotations,
    then brightness/contrast, gamma, blur, blur in patches and noise, each with its own probability (0 leaves it out).

    The weight map, when given, is passed as the additional target ``weight`` and moves like the label.
    ``slice_shape``: the (height, width) of every slice the transform will see, when known. Slices at least
    as large as the crop need no padding, and the padding step is then left out: it draws no random numbers
    (the crops are the same without it), but it copies the whole slice even when it adds nothing.
    ``random_crop=False``: the images arrive cropped (read box by box from a volume); only the padding is kept.
    """
    steps: list[A.BasicTransform] = []
    if slice_shape is None or min(slice_shape) < crop_size:
        steps.append(A.PadIfNeeded(crop_size, crop_size, border_mode=cv2.BORDER_REFLECT_101))
    if random_crop:
        steps.append(A.RandomCrop(crop_size, crop_size))
    if elastic_p > 0:
        steps.append(CoarseGridElastic(grid=elastic_grid, std=elastic_std, p=elastic_p))
    if flip_rotate_p > 0:
        steps.append(A.D4(p=flip_rotate_p))
    if brightness_contrast_p > 0:
        steps.append(
            A.RandomBrightnessContrast(
                brightness_limit=brightness_limit, contrast_limit=contrast_limit, p=brightness_contrast_p
            )
        )
    if gamma_p > 0:
        steps.append(A.RandomGamma(gamma_limit=tuple(gamma_limit), p=gamma_p))
    if blur_p > 0:
        steps.append(A.GaussianBlur(blur_limit=0, sigma_limit=tuple(blur_sigma), p=blur_p))
    if patch_blur_p > 0:
        steps.append(PatchyBlur(sigma=tuple(patch_blur_sigma), grid=patch_blur_grid, p=patch_blur_p))
    if noise_p > 0:
        steps.append(A.GaussNoise(std_range=tuple(noise_std), p=noise_p))
    return A.Compose(steps, additional_targets={"weight": "mask"})


def checked_augmentation(settings: dict[str, Any] | None, crop_size: int) -> dict[str, Any]:
    """The ``data.augmentation`` settings, checked (probabilities in [0, 1], ranges low to high, brightness and
    contrast limits that cannot invert a crop: albumentations takes those) and through the transforms they build,
    and refused in one line when the data module is made, before any data is read or file written."""
    settings = dict(settings or {})
    for key, value in settings.items():
        if key.endswith("_p") and not 0 <= value <= 1:
            raise UserError(f"data.augmentation.{key}={value} is a probability; give a value from 0 to 1")
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2 and value[0] > value[1]:
            raise UserError(f"data.augmentation.{key}={list(value)} is a range; give it as [low, high]")
    brightness, contrast = settings.get("brightness_limit", 0.0), settings.get("contrast_limit", 0.0)
    if not isinstance(brightness, Sequence) and not 0 <= brightness <= 1:
        raise UserError(f"data.augmentation.brightness_limit={brightness} is a shift of the [0, 1] range; give 0 to 1")
    if not isinstance(contrast, Sequence) and not 0 <= contrast < 1:  # a factor 1 +- limit at or below 0 inverts
        raise UserError(f"data.augmentation.contrast_limit={contrast} must be from 0 up to (not) 1 (a factor 1 +- it)")
    try:
        build_train_transform(crop_size, None, **settings)
    except ValueError as exc:
        lines = [line.strip() for line in str(exc).splitlines()]
        if len(lines) > 2 and "validation error" in lines[0]:  # pydantic's, from albumentations: several lines
            lines = [f"{lines[1]}: {lines[2].split(' [type=')[0].removeprefix('Value error, ')} (albumentations)"]
        raise UserError(f"data.augmentation: {lines[0]}; fix it in conf/data/augmentation/ or override it") from None
    return settings
