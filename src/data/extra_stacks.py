"""More labelled stacks for training only (``data/extra``, e.g. VNC 2013's membranes beside ISBI 2012).

An extra stack's crops join the main stack's in every epoch, ``share`` of them; it is never held out, validated on
or scored. Its raw label values are given to the main data's classes by name (``classes``, the main classes'
names in their order), and its slices are resized by ``scale`` (its pixel size over the main stack's) so that
membranes and cells reach the network at one size.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset

from src.data.label_widening import widen_boundary
from src.data.labels import ClassMap
from src.data.normalize import normalize_slices
from src.data.weight_map import border_weight_maps
from src.utils.errors import UserError


def check_extra(extra: dict, class_names: list[str], train_samples: int) -> None:
    """Refuse an extra stack's settings that cannot work, before any data is read (``share`` 0: no extra stack)."""
    share = extra.get("share", 0.0)
    if not 0.0 <= share < 1.0:
        raise UserError(f"data.extra.share={share} must be a share of the training crops from 0 up to (not) 1")
    if share == 0.0:
        return
    if extra.get("source") is None or not extra.get("classes"):
        raise UserError(
            "data.extra.share > 0 needs data.extra.source and data.extra.classes (e.g. data/extra=vnc2013_membranes)"
        )
    if list(extra["classes"]) != list(class_names):
        raise UserError(
            f"data.extra.classes names {list(extra['classes'])}; give the extra stack's label values to the main "
            f"data's classes, the same names in the same order: {list(class_names)}"
        )
    if not extra.get("scale", 1.0) > 0:
        raise UserError(
            f"data.extra.scale={extra.get('scale')} must be positive (its pixel size over the main stack's)"
        )
    if train_samples < 2:
        raise UserError(f"data.train_samples={train_samples}: an extra stack needs at least 2 crops an epoch")


def crops_per_epoch(train_samples: int, share: float) -> tuple[int, int]:
    """How many of an epoch's ``train_samples`` crops come from the main stack and how many from the extra one (at
    least one each when ``share`` > 0)."""
    if share == 0.0:
        return train_samples, 0
    extra = min(max(round(train_samples * share), 1), train_samples - 1)
    return train_samples - extra, extra


def rescale_slices(images: np.ndarray, labels: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Each slice resized by ``scale``: linear for the image, nearest for the class ids (they stay class ids)."""
    if scale == 1.0:
        return images, labels
    height, width = (max(round(side * scale), 1) for side in images.shape[1:])
    image = [cv2.resize(s.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR) for s in images]
    label = [cv2.resize(s, (width, height), interpolation=cv2.INTER_NEAREST) for s in labels]
    return np.stack(image), np.stack(label)


def load_extra(
    extra: dict, main: ClassMap, membrane_widening: int = 0, weight_map: dict | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The extra stack as the main one is trained on: standardised images, class ids (boundary widened as the main
    labels are) and, with ``weight_map``, border weight maps, all at the main stack's pixel size."""
    source = extra["source"]
    images, raw = source.load()
    where = getattr(source, "label_path", "the extra label stack")
    if images.shape != raw.shape:
        raise UserError(f"extra image stack {images.shape} and label stack {raw.shape} ({where}) differ in shape")
    class_map = ClassMap(dict(extra["classes"]), extra.get("ignore"), main.boundary_class, "classes", 2)
    labels = class_map.encode(raw, where)
    images, labels = rescale_slices(images, labels, float(extra.get("scale", 1.0)))
    if main.boundary_index is not None:
        labels = widen_boundary(labels, membrane_widening, main.boundary_index)
    weights = border_weight_maps(main.cell_mask(labels), **weight_map) if weight_map else None
    return normalize_slices(images), labels, weights


def describe_extra(extra: dict, train_samples: int) -> dict[str, Any]:
    """What a run trained on beside its main stack (the run's data record); empty without an extra stack."""
    if not extra.get("share"):
        return {}
    source = extra["source"]
    main_crops, extra_crops = crops_per_epoch(train_samples, extra["share"])
    return {
        "source": getattr(source, "dataset", None) or str(getattr(source, "images", type(source).__name__)),
        "classes": {name: list(values) for name, values in extra["classes"].items()},
        "scale": float(extra.get("scale", 1.0)),
        "crops_per_epoch": {"main": main_crops, "extra": extra_crops},
    }


class CropMix(Dataset):
    """Two crop datasets as one epoch: indices below ``len(first)`` are the first's, the rest the second's. Keys
    are ``(index, sample_seed)`` (:class:`src.data.sampling.EpochSeededSampler`); the seed is passed on, so a crop
    depends only on its key, as in either dataset alone."""

    def __init__(self, first: Dataset, second: Dataset) -> None:
        self.first, self.second = first, second

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, seed = key if isinstance(key, tuple) else (key, key)
        if index < len(self.first):
            return self.first[(index, seed)]
        return self.second[(index - len(self.first), seed)]
