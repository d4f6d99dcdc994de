"""The LightningDataModule over one EM stack with slice-wise folds.

The stack is cut into ``num_folds`` blocks of consecutive slices (ISBI 2012: 5 blocks of 6); block ``fold``
is held out for validation and testing (fold 4 = slices 24-29 by default), the rest is used for training
with random crops. Raw label values become class ids by the data config's ``classes`` (:mod:`src.data.labels`).
``val_fold`` can name a different block for validation, which is then not trained on.
``loading=lazy`` (or ``auto`` for stacks over ``lazy_above_gib``) reads nothing ahead: crops are read box by box,
normalised by sampled per-slice statistics, and validation / test score ``eval_boxes`` boxes of the held-out range;
folds may then also cut bands along y or x (``fold_axis``), see :mod:`src.data.volume_splits`.
With ``weight_map`` set (``loss=weighted_ce``), the U-Net paper's border weight map of each training slice
is computed once in ``setup`` and cropped and deformed with the label. ``membrane_widening`` > 0 widens the
boundary class of the training labels only (src/data/label_widening.py). ``extra`` adds another labelled stack's
crops to training only (src/data/extra_stacks.py).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from src.data.augment import build_train_transform, checked_augmentation
from src.data.datasets import RandomCropDataset, SliceDataset
from src.data.extra_stacks import CropMix, check_extra, crops_per_epoch, describe_extra, load_extra
from src.data.label_widening import widen_boundary
from src.data.labels import ClassMap
from src.data.normalize import normalize_slices
from src.data.preflight import LAZY_WEIGHT_MAP, check_settings_in, fold_slices, reads_lazily
from src.data.sampling import EpochSeededSampler, draw_seed
from src.data.volume_datasets import VolumeBoxDataset, VolumeCropDataset
from src.data.volume_sampling import sample_statistics
from src.data.volume_splits import FOLD_AXES, held_out_boxes, training_pieces
from src.data.weight_map import border_weight_maps
from src.utils.errors import UserError


def _class_map(classes: dict | None, ignore, boundary_class, labels: str, boundary_width: int) -> ClassMap:
    if classes is None:  # the binary convention, membranes the boundary (as data=tiff)
        classes, boundary_class = {"membrane": [0], "interior": [1, 255]}, "membrane"
    return ClassMap(dict(classes), ignore, boundary_class, labels, boundary_width)


class EMDataModule(L.LightningDataModule):
    def __init__(
        self,
        source: Any,
        classes: dict | None = None,
        ignore: int | None = None,
        boundary_class: str | None = None,
        labels: str = "classes",
        boundary_width: int = 2,
        class_balance: float = 0.0,
        fold: int = 4,
        num_folds: int = 5,
        val_fold: int | None = None,
        crop_size: int = 256,
        batch_size: int = 4,
        val_batch_size: int = 1,
        train_samples: int = 384,
        num_workers: int = 0,
        persistent_workers: bool = True,
        pin_memory: bool = False,
        augmentation: dict | None = None,
        weight_map: dict | None = None,
        membrane_widening: int = 0,
        seed: int | None = None,
        loading: str = "auto",
        lazy_above_gib: float = 2.0,
        fold_axis: str = "z",
        eval_box: int = 512,
        eval_boxes: int = 8,
        statistics_boxes: int = 16,
        statistics_box: int = 256,
        extra: dict | None = None,
    ) -> None:
        super().__init__()
        check_settings_in(locals())  # the settings checked as the config's are
        self.class_map = _class_map(classes, ignore, boundary_class, labels, boundary_width)
        if self.class_map.boundary_index is None and (weight_map or membrane_widening):
            raise UserError(
                "data.weight_map and data.membrane_widening act on the boundary class; set data.boundary_class"
            )
        self.extra, self._extra_stack = dict(extra or {}), None  # the extra stack is read on the first epoch
        check_extra(self.extra, self.class_map.names, train_samples)
        self.crops = crops_per_epoch(train_samples, self.extra.get("share", 0.0))  # (main, extra) each epoch
        self.class_balance, self.source = class_balance, source
        self.fold, self.num_folds, self.val_fold = fold, num_folds, val_fold
        self.crop_size, self.batch_size, self.val_batch_size = crop_size, batch_size, val_batch_size
        self.train_samples, self.num_workers, self.pin_memory = train_samples, num_workers, pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.augmentation = checked_augmentation(augmentation, crop_size)
        self.weight_map, self.membrane_widening = dict(weight_map) if weight_map else None, membrane_widening
        self.seed = draw_seed() if seed is None else seed
        self.loading, self.lazy_above_gib, self.fold_axis = loading, lazy_above_gib, fold_axis
        self.eval_box, self.eval_boxes = eval_box, eval_boxes
        self.statistics_sample = dict(boxes=statistics_boxes, box=statistics_box)
        self.lazy, self.statistics = False, None  # statistics: the sampled per-slice ones, when read lazily
        self.weights: np.ndarray | None = None  # border weight maps of the training slices (data.weight_map)
        self.train_labels: np.ndarray | None = None
        self.splits: dict[str, list[int]] = {}
        self._loaded = False  # setup reads the stacks once

    def prepare_data(self) -> None:
        self.source.prepare()
        trainer = getattr(self, "trainer", None)
        if self.crops[1] and (trainer is None or trainer.state.fn == "fit"):  # evaluation never reads it
            self.extra["source"].prepare()

    def setup(self, stage: str | None = None) -> None:
        if self._loaded:
            return
        # Opened once here when they may be read lazily: their size decides `auto`, and lazy setup reads them.
        volumes = self.source.volumes() if self.loading != "memory" and hasattr(self.source, "volumes") else None
        self.lazy = self._reads_lazily(volumes)
        if self.lazy:
            self._setup_lazy(volumes)
        else:
            self._setup_in_memory()
        self._loaded = True

    def _reads_lazily(self, volumes) -> bool:
        if self.loading == "lazy" and volumes is None:
            raise UserError("data.loading=lazy reads volumes from files; this data source is generated in memory")
        lazy = reads_lazily(self.loading, volumes and volumes[0].volume.nbytes, self.lazy_above_gib)
        if not lazy and self.fold_axis != "z":
            raise UserError(f"data.fold_axis={self.fold_axis} cuts bands of slices; it needs data.loading=lazy")
        return lazy

    def _setup_lazy(self, volumes) -> None:
        if self.weight_map is not None:
            raise UserError(LAZY_WEIGHT_MAP)
        images, labels = volumes
        shape = images.volume.shape
        axis = FOLD_AXES.index(self.fold_axis)
        test = fold_slices(shape[axis], self.num_folds, self.fold, self.fold_axis)
        val = test if self.val_fold is None else fold_slices(shape[axis], self.num_folds, self.val_fold, self.fold_axis)
        held = [(test[0], test[-1] + 1), (val[0], val[-1] + 1)]
        self.pieces = training_pieces(shape, self.fold_axis, held)
        train = sorted(set(range(shape[axis])) - set(test) - set(val))
        self.splits = {"train": train, "val": val, "test": test}
        self.boxes = {
            name: held_out_boxes(shape, self.fold_axis, span, self.eval_box, self.eval_boxes)
            for name, span in zip(("test", "val"), held, strict=True)
        }
        self.statistics = sample_statistics(images.volume, labels.volume, self.class_map, **self.statistics_sample)
        self.volumes = images, labels

    def _setup_in_memory(self) -> None:
        images, raw_labels = self.source.load()
        if images.shape != raw_labels.shape:
            raise UserError(f"image stack {images.shape} and label stack {raw_labels.shape} differ in shape")
        labels = self.class_map.encode(raw_labels, getattr(self.source, "label_path", "the label stack"))
        n = len(images)
        test = fold_slices(n, self.num_folds, self.fold)
        val = test if self.val_fold is None else fold_slices(n, self.num_folds, self.val_fold)
        held_out = set(test) | set(val)
        train = [i for i in range(n) if i not in held_out]
        if not train:
            raise UserError("no slices are left for training; lower data.num_folds or unset data.val_fold")
        self.splits = {"train": train, "val": val, "test": test}
        self.images = normalize_slices(images)
        self.images_as_read = images  # what a user would give src.predict (the held-out input is written too)
        self.labels = labels
        self.labels_as_read = raw_labels  # the held-out labels are written in the data set's own convention
        boundary = self.class_map.boundary_index
        self.train_labels = (
            widen_boundary(labels[train], self.membrane_widening, boundary) if boundary is not None else labels[train]
        )
        if self.weight_map is not None:
            # Once per slice, before training: every crop then cuts its weights from these maps.
            self.weights = border_weight_maps(self.class_map.cell_mask(self.train_labels), **self.weight_map)

    def subset(self, split: str) -> SliceDataset | VolumeBoxDataset:
        """The held-out slices of ``split`` (val or test) as whole, standardised slices with their labels; read
        lazily, its held-out boxes."""
        if self.lazy:
            return VolumeBoxDataset(*self.volumes, self.boxes[split], self.statistics, self.class_map)
        ids = self.splits[split]
        return SliceDataset(self.images[ids], self.labels[ids], ids)

    def held_out(self, split: str = "test") -> tuple[SliceDataset | VolumeBoxDataset, np.ndarray, np.ndarray]:
        """:meth:`subset` with its images and labels as stored (the held-out stacks written beside predictions)."""
        dataset = self.subset(split)
        if self.lazy:
            return dataset, *dataset.as_read()
        ids = self.splits[split]
        return dataset, self.images_as_read[ids], self.labels_as_read[ids]

    def describe(self) -> dict:
        """How the data were read (recorded in the run): in memory, or lazily with the sampled statistics."""
        extra = {"extra": describe_extra(self.extra, self.train_samples)} if self.crops[1] else {}
        if not self.lazy:
            return {"loading": "memory", "splits": self.splits, **extra}
        volume = self.volumes[0].volume
        return {
            "loading": "lazy",
            "volume": volume.describe(),
            "fold_axis": self.fold_axis,
            "splits": self.splits,
            "held_out_boxes": {k: [[b.z, *b.y, *b.x] for b in v] for k, v in self.boxes.items()},
            "statistics_sample": self.statistics_sample,
            "statistics": self.statistics.record(),
            **extra,
        }

    def state_dict(self) -> dict:
        return {"statistics": self.statistics.record()} if self.lazy else {}

    def train_dataloader(self) -> DataLoader:
        main = (
            self._lazy_crops()
            if self.lazy
            else self._crops(self.images[self.splits["train"]], self.train_labels, self.weights)
        )
        if not self.crops[1]:
            return self._loader(main)
        if self._extra_stack is None:  # read on the first call only: evaluation never needs it
            self._extra_stack = load_extra(self.extra, self.class_map, self.membrane_widening, self.weight_map)
        return self._loader(CropMix(main, self._crops(*self._extra_stack, length=self.crops[1])))

    def _crops(self, images, labels, weights, length: int | None = None) -> RandomCropDataset:
        transform = build_train_transform(self.crop_size, images.shape[1:], **self.augmentation)
        return RandomCropDataset(
            images,
            labels,
            transform,
            length or self.crops[0],
            weights,
            class_balance=self.class_balance,
            crop_size=self.crop_size,
        )

    def _lazy_crops(self) -> VolumeCropDataset:
        smallest = min(min(piece.shape) for piece in self.pieces)
        transform = build_train_transform(self.crop_size, (smallest, smallest), **self.augmentation, random_crop=False)
        return VolumeCropDataset(
            *self.volumes,
            self.pieces,
            self.statistics,
            self.class_map,
            transform,
            self.crops[0],
            self.crop_size,
            self.class_balance,
            self.membrane_widening,
        )

    def _loader(self, dataset) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochSeededSampler(len(dataset), self.seed),
            drop_last=len(dataset) >= self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.persistent_workers,
            pin_memory=self.pin_memory,
        )

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(
            self.subset(split),
            batch_size=self.val_batch_size,
            shuffle=False,
            num_workers=0,
            pin_memory=self.pin_memory,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
