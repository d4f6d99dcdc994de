"""Torch datasets over in-memory EM slices: random training crops and whole slices for evaluation."""

from __future__ import annotations

import random

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from src.data.labels import IGNORE


class RandomCropDataset(Dataset):
    """``length`` random crops, cycling over the slices so each slice is drawn equally often.

    ``images`` are standardised float32 ``(N, H, W)``; ``labels`` uint8 class ids ``(N, H, W)``;
    ``weights`` optional float32 border weight maps ``(N, H, W)``, cropped and deformed with the label.
    Each slice is handed to the transform scaled to [0, 1] (the range albumentations' intensity transforms
    assume) and mapped back to its standardised range afterwards.
    An item is asked for as ``(index, sample_seed)`` (see :class:`src.data.sampling.EpochSeededSampler`): the
    crop and every random transform of that item draw from one generator seeded with ``sample_seed``, so an item
    is the same in any process, worker or run. A plain ``index`` uses the index as its seed.
    ``class_balance`` > 0: that share of the crops is centred on a pixel of a class drawn uniformly, so rare classes
    (synapses) are seen as often as common ones.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        transform: A.Compose,
        length: int,
        weights: np.ndarray | None = None,
        class_balance: float = 0.0,
        crop_size: int | None = None,
    ) -> None:
        self.low = images.min(axis=(1, 2))
        self.span = np.maximum(images.max(axis=(1, 2)) - self.low, 1e-6)
        self.unit_images = ((images - self.low[:, None, None]) / self.span[:, None, None]).astype(np.float32)
        self.labels = labels
        self.weights = weights
        self.transform = transform
        self.length = length
        self.class_balance = class_balance
        self.crop_size = crop_size
        # The labelled classes present in each slice: a class-balanced crop draws one of them uniformly.
        self.present = [np.unique(label[label != IGNORE]) for label in labels] if class_balance else []

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, key)
        self.transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
        i = index % len(self.unit_images)
        window = self._class_window(i, seed) if self.class_balance else (slice(None), slice(None))
        targets = {"image": self.unit_images[i][window], "mask": self.labels[i][window]}
        if self.weights is not None:
            targets["weight"] = self.weights[i][window]
        out = self.transform(**targets)
        image = out["image"] * self.span[i] + self.low[i]
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None],
            "label": torch.from_numpy(np.ascontiguousarray(out["mask"])).long(),
        }
        if self.weights is not None:
            item["weight"] = torch.from_numpy(np.ascontiguousarray(out["weight"], dtype=np.float32))
        return item

    def _class_window(self, i: int, seed: int) -> tuple[slice, slice]:
        """With probability ``class_balance``, a ``crop_size`` window of slice ``i`` centred (as far as the slice
        allows) on a pixel of a class drawn uniformly from those the slice holds; else the whole slice."""
        rng = np.random.default_rng([seed, 1])
        label = self.labels[i]
        height, width = label.shape
        side = self.crop_size or min(height, width)
        if rng.random() >= self.class_balance or side >= min(height, width) or not len(self.present[i]):
            return slice(None), slice(None)
        wanted = rng.choice(self.present[i])
        # Rejection sampling: rare classes (0.6% of pixels) are hit within a few hundred draws.
        ys, xs = rng.integers(0, height, 4096), rng.integers(0, width, 4096)
        hits = np.flatnonzero(label[ys, xs] == wanted)
        if not len(hits):
            return slice(None), slice(None)
        y, x = ys[hits[0]], xs[hits[0]]
        top = int(np.clip(y - side // 2, 0, height - side))
        left = int(np.clip(x - side // 2, 0, width - side))
        return slice(top, top + side), slice(left, left + side)


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
