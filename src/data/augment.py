"""Training-time augmentation with albumentations, applied jointly to image and label."""

from __future__ import annotations

import albumentations as A
import cv2


def build_train_transform(
    crop_size: int,
    flip_rotate_p: float = 1.0,
    brightness_contrast_p: float = 0.0,
    brightness_limit: float = 0.1,
    contrast_limit: float = 0.1,
) -> A.Compose:
    """Random crop (mirror-padded when the slice is smaller), the 8 flips/rotations, intensity jitter.

    Labels are masks, so geometric transforms use nearest-neighbour interpolation for them.
    """
    steps: list[A.BasicTransform] = [
        A.PadIfNeeded(crop_size, crop_size, border_mode=cv2.BORDER_REFLECT_101),
        A.RandomCrop(crop_size, crop_size),
    ]
    if flip_rotate_p > 0:
        steps.append(A.D4(p=flip_rotate_p))
    if brightness_contrast_p > 0:
        steps.append(
            A.RandomBrightnessContrast(
                brightness_limit=brightness_limit, contrast_limit=contrast_limit, p=brightness_contrast_p
            )
        )
    return A.Compose(steps)
