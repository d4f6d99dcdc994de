"""Torch datasets over in-memory EM slices: random training crops and whole slices for evaluation."""

from __future__ import annotations

import random

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset


class RandomCropDataset(Dataset):
    """``length`` random crops, cycling over the slices so each slice is drawn equally often.

    ``images`` are standardised float32 ``(N, H, W)``; ``labels`` uint8 interior masks ``(N, H, W)``;
    ``weights`` optional float32 border weight maps ``(N, H, W)``, cropped and deformed with the label.
    Each slice is handed to the transform scaled to [0, 1] (the range albumentations' intensity transforms
    assume) and mapped back to its standardised range afterwards.
    An item is asked for as ``(index, sample_seed)`` (see :class:`src.data.sampling.EpochSeededSampler`): the
    crop and every random transform of that item draw from one generator seeded with ``sample_seed``, so an item
    is the same in any process, worker or run. A plain ``index`` uses the index as its seed.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        transform: A.Compose,
        length: int,
        weights: np.ndarray | None = None,
    ) -> None:
        self.low = images.min(axis=(1, 2))
        self.span = np.maximum(images.max(axis=(1, 2)) - self.low, 1e-6)
        self.unit_images = ((images - self.low[:, None, None]) / self.span[:, None, None]).astype(np.float32)
        self.labels = labels
        self.weights = weights
        self.transform = transform
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, key)
        self.transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
        i = index % len(self.unit_images)
        targets = {"image": self.unit_images[i], "mask": self.labels[i]}
        if self.weights is not None:
            targets["weight"] = self.weights[i]
        out = self.transform(**targets)
        image = out["image"] * self.span[i] + self.low[i]
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None],
            "label": torch.from_numpy(np.ascontiguousarray(out["mask"])).long(),
        }
        if self.weights is not None:
            item["weight"] = torch.from_numpy(np.ascontiguousarray(out["weight"], dtype=np.float32))
        return item


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
