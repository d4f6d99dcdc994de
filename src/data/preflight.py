"""The data config's settings, and a user's own stacks, checked before Lightning is imported, so a bad setting or
file fails without that wait.

Importing Lightning, building the trainer and the loggers take several seconds before the data module reads its
data. A :class:`~src.data.sources.TiffSource` that training would hold in memory is read here instead, by the same
functions that training uses, and checked as training checks it (present, readable, matching shapes, label values
in the classes, finite pixels, enough slices for the folds); the source keeps the stacks, so training reads nothing
twice. Published data sets (fetched on one process per node) and volumes read lazily are left to the data module.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.data.labels import class_map_of
from src.data.normalize import check_finite
from src.data.sources import TiffSource
from src.data.volume_splits import FOLD_AXES
from src.utils.errors import UserError

LOADINGS = ("auto", "memory", "lazy")


def check_fold(num_folds: int, fold: int, key: str = "data.fold") -> None:
    if num_folds < 2:
        raise UserError(f"data.num_folds={num_folds} must be at least 2")
    if not 0 <= fold < num_folds:
        raise UserError(f"{key}={fold} is out of range: choose 0 to {num_folds - 1}")


def fold_slices(num_slices: int, num_folds: int, fold: int, axis: str = "z") -> list[int]:
    """Slice indices of block ``fold`` when ``num_slices`` are cut into ``num_folds`` consecutive blocks (slices along
    ``axis``, named in the message when they are too few)."""
    check_fold(num_folds, fold)
    if num_slices < num_folds:
        fewer = f"set data.num_folds={num_slices} or fewer" if num_slices >= 2 else "give a stack of more slices"
        raise UserError(
            f"the stack is {num_slices} {'slice' if num_slices == 1 else 'slices'} along {axis}, fewer than "
            f"data.num_folds={num_folds}: {fewer}, or hold out bands of every slice "
            "(data.loading=lazy data.fold_axis=y)"
        )
    bounds = np.linspace(0, num_slices, num_folds + 1).round().astype(int)
    return list(range(bounds[fold], bounds[fold + 1]))


LAZY_WEIGHT_MAP = (
    "data.weight_map is computed on whole slices in memory; with data.loading=lazy choose a loss without it "
    "(loss=ce or loss=dice_ce)"
)


def check_settings(
    *,
    loading,
    fold_axis,
    batch_size,
    val_batch_size,
    crop_size,
    train_samples,
    membrane_widening,
    class_balance,
    weight_map=None,
    num_workers=0,
    lazy_above_gib=2.0,
    eval_box=512,
    eval_boxes=8,
    statistics_box=256,
    statistics_boxes=16,
) -> None:
    """The data module's settings that need no data (it checks them too, for users who build it in Python)."""
    if loading not in LOADINGS:
        raise UserError(f"data.loading={loading} must be one of {', '.join(LOADINGS)}")
    if loading == "lazy" and weight_map is not None:
        raise UserError(LAZY_WEIGHT_MAP)  # with loading=auto, the data module refuses it once the volumes' size decides
    if fold_axis not in FOLD_AXES:
        raise UserError(f"data.fold_axis={fold_axis} must be one of {', '.join(FOLD_AXES)}")
    if batch_size < 1 or val_batch_size < 1:
        raise UserError(f"data.batch_size={batch_size} and data.val_batch_size must be at least 1")
    if crop_size < 1:
        raise UserError(f"data.crop_size={crop_size} must be positive")
    if train_samples < 1:
        raise UserError(f"data.train_samples={train_samples} must be positive")
    if membrane_widening < 0:
        raise UserError(f"data.membrane_widening={membrane_widening} must be 0 or more pixels")
    if not 0.0 <= class_balance <= 1.0:
        raise UserError(f"data.class_balance={class_balance} must be a share between 0 and 1")
    if weight_map is not None and not (weight_map.get("sigma", 5.0) > 0 and weight_map.get("w0", 10.0) >= 0):
        raise UserError(
            f"data.weight_map: sigma={weight_map.get('sigma')} must be positive (pixels) and w0={weight_map.get('w0')} "
            "0 or more (the paper's 5 and 10)"
        )
    if num_workers < 0:
        raise UserError(f"data.num_workers={num_workers} must be 0 (load in the training process) or more processes")
    if lazy_above_gib < 0:
        raise UserError(f"data.lazy_above_gib={lazy_above_gib} must be 0 (read every stack lazily) or more GiB")
    for key, value in (("eval_box", eval_box), ("eval_boxes", eval_boxes)) + (
        ("statistics_box", statistics_box),
        ("statistics_boxes", statistics_boxes),
    ):
        if value < 1:
            raise UserError(f"data.{key}={value} must be positive (the lazy reading's held-out and statistics boxes)")


def check_settings_in(values) -> None:
    """:func:`check_settings` on the entries of ``values`` it names: a data config, or the data module's arguments."""
    check_settings(**{key: values[key] for key in inspect.signature(check_settings).parameters})


def reads_lazily(loading: str, image_bytes: int | None, lazy_above_gib: float) -> bool:
    """Whether training reads the volumes box by box: ``data.loading=lazy``, or auto with an image volume over
    ``lazy_above_gib`` (``image_bytes`` None: a source generated in memory)."""
    large = image_bytes is not None and image_bytes > lazy_above_gib * 2**30
    return loading == "lazy" or (loading == "auto" and large)


def checked_source(data: DictConfig) -> Any:
    """The data config's source, instantiated after its settings are checked; read and checked now where it is the
    user's own stacks held in memory (``data.loading`` memory, or auto below ``data.lazy_above_gib``)."""
    check_settings_in(data)
    check_fold(data.num_folds, data.fold)
    if data.val_fold is not None:
        check_fold(data.num_folds, data.val_fold, "data.val_fold")
    class_map = class_map_of(data)  # classes sharing a value, a boundary class or data.ignore that is not one
    source = instantiate(data.source)
    loading = data.get("loading", "auto")
    if not isinstance(source, TiffSource) or loading == "lazy":
        return source
    source.prepare()
    images, labels = source.volumes()
    size = images.volume.nbytes
    images.close()
    labels.close()
    if reads_lazily(loading, size, data.get("lazy_above_gib", 2.0)):
        return source
    images, labels = source.load()
    for fold in {data.fold, data.val_fold} - {None}:
        fold_slices(len(images), data.num_folds, fold)
    class_map.encode(labels, source.label_path)
    check_finite(images, f"image stack {source.images}")
    return source
