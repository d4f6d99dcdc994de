"""Torch datasets that read an EM volume box by box (lazy training): random crops and held-out boxes.

Nothing is loaded ahead: a training crop reads its box of image and labels when it is drawn, and a held-out box
when it is scored, so memory holds only the crops in flight, whatever the volume's size. Images are standardised
by their slice's sampled statistics (:mod:`src.data.volume_sampling`); labels are mapped to classes box by box,
read with a margin wide enough for instance boundaries and membrane widening to be drawn as on whole slices.
"""

from __future__ import annotations

import random

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from src.data.label_widening import widen_boundary
from src.data.labels import ClassMap
from src.data.volume import Box, LazyVolume
from src.data.volume_sampling import VolumeStatistics


def read_classes(labels: LazyVolume, box: Box, class_map: ClassMap, widening: int = 0) -> np.ndarray:
    """Class ids of ``box``, mapped (and the boundary widened by ``widening``) on a margin around it, then cut."""
    margin = widening + (class_map.boundary_width if class_map.kind == "instances" else 0)
    depth, height, width = labels.volume.shape
    top, left = max(box.y[0] - margin, 0), max(box.x[0] - margin, 0)
    bottom, right = min(box.y[1] + margin, height), min(box.x[1] + margin, width)
    raw = labels.read_box((slice(box.z, box.z + 1), slice(top, bottom), slice(left, right)))[0]
    classes = class_map.encode(raw, labels.volume.where, warn=False)
    if widening and class_map.boundary_index is not None:
        classes = widen_boundary(classes, widening, class_map.boundary_index)
    return classes[box.y[0] - top : box.y[1] - top, box.x[0] - left : box.x[1] - left]


class VolumeCropDataset(Dataset):
    """``length`` random crops of ``crop_size`` read from the training ``pieces`` (boxes of the volume), cycling over
    the pieces; asked for as ``(index, sample_seed)`` like :class:`src.data.datasets.RandomCropDataset`, so a crop
    and its augmentation depend only on its seed. ``transform`` holds no random crop (the crop is read here) and
    pads crops of pieces smaller than ``crop_size``. ``class_balance``: the share of crops centred on a sampled
    position of a class drawn uniformly from those the piece holds."""

    def __init__(
        self,
        images: LazyVolume,
        labels: LazyVolume,
        pieces: list[Box],
        stats: VolumeStatistics,
        class_map: ClassMap,
        transform: A.Compose,
        length: int,
        crop_size: int,
        class_balance: float = 0.0,
        membrane_widening: int = 0,
    ) -> None:
        self.images, self.labels, self.pieces, self.stats = images, labels, pieces, stats
        self.class_map, self.transform, self.length, self.crop_size = class_map, transform, length, crop_size
        self.class_balance, self.membrane_widening = class_balance, membrane_widening

    def __len__(self) -> int:
        return self.length

    def crop_box(self, index: int, seed: int) -> Box:
        """The box crop ``index`` with seed ``seed`` reads."""
        rng = np.random.default_rng([seed, 2])
        piece = self.pieces[index % len(self.pieces)]
        side_y, side_x = (min(self.crop_size, n) for n in piece.shape)
        top = int(rng.integers(piece.y[0], piece.y[1] - side_y + 1))
        left = int(rng.integers(piece.x[0], piece.x[1] - side_x + 1))
        points = self._points_in(piece)
        if self.class_balance and points and rng.random() < self.class_balance:
            chosen = points[int(rng.integers(len(points)))]
            y, x = chosen[int(rng.integers(len(chosen)))]
            top = int(np.clip(y - side_y // 2, piece.y[0], piece.y[1] - side_y))
            left = int(np.clip(x - side_x // 2, piece.x[0], piece.x[1] - side_x))
        return Box(piece.z, (top, top + side_y), (left, left + side_x))

    def _points_in(self, piece: Box) -> list[np.ndarray]:
        if not self.class_balance or not self.stats.points:
            return []
        found = []
        for where in self.stats.points[piece.z].values():
            inside = where[
                (where[:, 0] >= piece.y[0]) & (where[:, 0] < piece.y[1])
                & (where[:, 1] >= piece.x[0]) & (where[:, 1] < piece.x[1])
            ]  # fmt: skip
            if len(inside):
                found.append(inside)
        return found

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, key)
        box = self.crop_box(index, seed)
        self.transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
        low, span = self.stats.unit_range(box.z)
        image = self.stats.standardise(self.images.read_box(box.slices())[0], box.z)
        label = read_classes(self.labels, box, self.class_map, self.membrane_widening)
        out = self.transform(image=(image - low) / span, mask=label)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(out["image"] * span + low, dtype=np.float32))[None],
            "label": torch.from_numpy(np.ascontiguousarray(out["mask"])).long(),
        }


class VolumeBoxDataset(Dataset):
    """Held-out ``boxes`` of the volume, standardised, with their class ids. Each item's ``slice`` is its box's slice
    when no two boxes share one (so whole held-out slices are numbered as in memory), else its box's number."""

    def __init__(
        self, images: LazyVolume, labels: LazyVolume, boxes: list[Box], stats: VolumeStatistics, class_map: ClassMap
    ) -> None:
        self.images, self.labels, self.boxes, self.stats, self.class_map = images, labels, boxes, stats, class_map
        slices = [box.z for box in boxes]
        self.ids = slices if len(set(slices)) == len(slices) else list(range(len(boxes)))

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        box = self.boxes[index]
        image = self.stats.standardise(self.images.read_box(box.slices())[0], box.z)
        return {
            "image": torch.from_numpy(image)[None],
            "label": torch.from_numpy(read_classes(self.labels, box, self.class_map)).long(),
            "slice": torch.tensor(self.ids[index]),
        }

    def as_read(self) -> tuple[np.ndarray, np.ndarray]:
        """The boxes' images and labels as stored (the held-out stacks written beside the predictions)."""
        images = np.stack([self.images.read_box(box.slices())[0] for box in self.boxes])
        labels = np.stack([self.labels.read_box(box.slices())[0] for box in self.boxes])
        return images, labels
