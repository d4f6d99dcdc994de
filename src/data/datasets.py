"""Torch datasets over in-memory EM slices: random training crops and whole slices for evaluation."""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset


class RandomCropDataset(Dataset):
    """``length`` random crops, cycling over the slices so each slice is drawn equally often.

    ``images`` are normalised float32 ``(N, H, W)``; ``labels`` uint8 interior masks ``(N, H, W)``.
    Randomness comes from the albumentations pipeline, seeded from torch's per-worker seed, so runs with the
    same seed draw the same crops.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: A.Compose, length: int) -> None:
        self.images = images
        self.labels = labels
        self.transform = transform
        self.length = length
        self._seeded_with: int | None = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        seed = torch.initial_seed() % 2**32
        if self._seeded_with != seed:
            self.transform.set_random_seed(seed)
            self._seeded_with = seed
        slice_index = index % len(self.images)
        out = self.transform(image=self.images[slice_index], mask=self.labels[slice_index])
        image = np.ascontiguousarray(out["image"])
        label = np.ascontiguousarray(out["mask"])
        return {"image": torch.from_numpy(image)[None], "label": torch.from_numpy(label).long()}


class SliceDataset(Dataset):
    """Whole slices, each with its index in the source stack."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, slice_ids: list[int]) -> None:
        self.images = images
        self.labels = labels
        self.slice_ids = slice_ids

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {"image": torch.from_numpy(self.images[index])[None], "slice": torch.tensor(self.slice_ids[index])}
        if self.labels is not None:
            item["label"] = torch.from_numpy(self.labels[index]).long()
        return item
