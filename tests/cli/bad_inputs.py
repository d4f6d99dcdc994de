"""The catalogue of bad inputs a new user may give the command-line tasks, run as that user would.

Each case builds its files in a fresh folder, runs ``python -m src.<task> ...`` there and records the exit
status and the last line of the error output. The reliability tests (tests/cli/test_bad_inputs.py) require, for
every bad case: a non-zero exit, one short line without a traceback naming what is wrong, and no new or
changed file anywhere in the folder. Cases marked ``accepted`` are inputs the tasks take on purpose (16-bit
and float stacks, normalised per slice); a control case with good inputs must succeed, so the failures
come from the one thing each case changes.

    python -m tests.cli.bad_inputs --write docs/bad_inputs.md   # run every case, write the table

"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from tests.conftest import run_cli, write_small_checkpoint

SLICES, SIDE = 10, 64
OFFLINE = {"WANDB_MODE": "offline"}  # no run may reach out, whatever its logger

# A tiny but complete training run on the user's own stacks: one optimizer step, no loggers beyond CSV.
TINY_TRAIN = [
    "data=tiff",
    "data.crop_size=32",
    "data.batch_size=2",
    "data.train_samples=2",
    "data.num_workers=0",
    "model.depth=3",
    "model.base_channels=4",
    "trainer.accelerator=cpu",
    "trainer.max_steps=1",
    "logger=csv",
    "augmentation_preview=0",
    "test=false",
]


def em_like(slices: int = SLICES, side: int = SIDE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An 8-bit image stack and its 0/255 labels: dark membranes on a grid, textured interiors."""
    rng = np.random.default_rng(seed)
    labels = np.full((slices, side, side), 255, np.uint8)
    labels[:, ::16, :] = 0
    labels[:, :, ::16] = 0
    images = np.where(labels > 0, 170, 60) + rng.normal(0, 20, labels.shape)
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_stacks(folder: Path, images: np.ndarray | None = None, labels: np.ndarray | None = None) -> list[str]:
    """Write ``images.tif`` and ``labels.tif`` into ``folder``; the train overrides that point at them."""
    good_images, good_labels = em_like()
    tifffile.imwrite(folder / "images.tif", good_images if images is None else images)
    tifffile.imwrite(folder / "labels.tif", good_labels if labels is None else labels)
    return [f"data.source.images={folder / 'images.tif'}", f"data.source.labels={folder / 'labels.tif'}"]


def train(folder: Path, *extra: str, images=None, labels=None) -> list[str]:
    return ["src.train", *TINY_TRAIN, *write_stacks(folder, images, labels), f"paths.log_dir={folder / 'logs'}", *extra]


def small_checkpoint(path: Path, depth: int = 3) -> Path:
    """A small untrained same-padding U-Net's checkpoint, as src.train saves it."""
    return write_small_checkpoint(path, depth, padding="same")


def predict(folder: Path, *extra: str, ckpt: Path | None = None, stack: np.ndarray | None = None) -> list[str]:
    ckpt = ckpt or small_checkpoint(folder / "model.ckpt")
    tifffile.imwrite(folder / "stack.tif", em_like()[0] if stack is None else stack)
    return [
        "src.predict",
        f"ckpt_path={ckpt}",
        f"input={folder / 'stack.tif'}",
        f"output={folder / 'out'}",
        "postprocess=none",
        f"paths.log_dir={folder / 'logs'}",
        *extra,
    ]


@dataclass(frozen=True)
class Case:
    name: str
    group: str  # data | config | checkpoint | output
    what: str  # the bad input, in a user's words
    build: Callable[[Path], list[str]]  # makes the case's files in a folder; returns [module, *overrides]
    expect: str  # a fragment the one-line message must hold (what it names)
    accepted: bool = False  # the task takes this input on purpose and must succeed


def _text_file(folder: Path) -> list[str]:
    args = train(folder)
    (folder / "images.tif").write_text("this is a CSV export, not an image\n1,2,3\n")
    return args


def _truncated(folder: Path) -> list[str]:
    args = train(folder)
    data = (folder / "images.tif").read_bytes()
    (folder / "images.tif").write_bytes(data[: len(data) // 3])
    return args


def _empty(folder: Path) -> list[str]:
    args = train(folder)
    tifffile.imwrite(folder / "images.tif", np.zeros((0, SIDE, SIDE), np.uint8))
    return args


def _corrupt_checkpoint(folder: Path) -> list[str]:
    args = predict(folder)
    (folder / "model.ckpt").write_bytes(os.urandom(4096))
    return args


def _other_architecture(folder: Path) -> list[str]:
    """Resume, with a depth-2 model, the last checkpoint of a real depth-3 training run."""
    first = folder / "first"
    first.mkdir()
    first_run = run_cli(*train(first), env=OFFLINE)
    if first_run.returncode != 0:
        raise RuntimeError(f"the depth-3 run to resume failed:\n{first_run.stderr[-2000:]}")
    (last,) = first.glob("logs/train/runs/*/checkpoints/last.ckpt")
    return train(folder, f"ckpt_path={last}", "model.depth=2")


class _OpensAFile:
    """Unpickling this calls ``open(path, "w")``: a stand-in for code hidden in a checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _code_in_checkpoint(folder: Path) -> list[str]:
    import torch

    args = predict(folder)
    checkpoint = torch.load(folder / "model.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["payload"] = _OpensAFile(folder / "code_ran.txt")
    torch.save(checkpoint, folder / "model.ckpt")
    return args


def _existing_output(folder: Path) -> list[str]:
    args = predict(folder)
    (folder / "out").mkdir()
    (folder / "out" / "stack_prob.tif").write_bytes(b"a result the user wants to keep")
    return args


def _truncated_predict_input(folder: Path) -> list[str]:
    args = predict(folder, stack=em_like()[0][:3])  # the last slice's pixels cut short
    (folder / "stack.tif").write_bytes((folder / "stack.tif").read_bytes()[:-5000])
    return args


def _hdf5_without_key(folder: Path) -> list[str]:
    import h5py

    with h5py.File(folder / "vol.h5", "w") as f:
        f["volumes/raw"] = em_like()[0][:2]
    return [*predict(folder), f"input={folder / 'vol.h5'}", "input_key=raw"]


def _interrupted_zarr(folder: Path, *extra: str) -> list[str]:
    """A blockwise prediction stopped after its output was made: the partial folder is left, as a kill leaves it."""
    args = [*predict(folder), f"output={folder / 'out.zarr'}", "tta=false", "block_shape=[1,64,64]"]
    from src.inference.zarr_output import ZarrOutput

    settings = {"input": str((folder / "stack.tif").resolve()), "block_shape": [1, 64, 64], "slice_statistics": []}
    ZarrOutput(folder / "out.zarr").create((1, 64, 64), (1, 64, 64), ["membrane", "interior"], 0, None, None,
                                           "float32", settings)  # fmt: skip
    (folder / ".out.partial.zarr" / ".done" / "0").write_text("")
    return [*args, *extra]


def _existing_class_map(folder: Path) -> list[str]:
    args = predict(folder)
    (folder / "out").mkdir()
    (folder / "out" / "stack_classes.tif").write_bytes(b"a class map the user wants to keep")
    return args


def _init_from_other_network(folder: Path) -> list[str]:
    return train(folder, f"model.init_from={small_checkpoint(folder / 'deeper.ckpt', depth=4)}")


def _unwritable_output(folder: Path) -> list[str]:
    (folder / "results").write_text("a file where the output folder's parent should be\n")
    return [
        *predict(folder)[:-3],
        f"output={folder / 'results' / 'out'}",
        "postprocess=none",
        f"paths.log_dir={folder / 'logs'}",
    ]


def _score_existing(folder: Path) -> list[str]:
    images, labels = em_like()
    tifffile.imwrite(folder / "pred.tif", (labels > 0).astype(np.float32))
    tifffile.imwrite(folder / "labels.tif", labels)
    (folder / "scores.json").write_text('{"kept": true}\n')
    return [
        "src.score",
        f"prediction={folder / 'pred.tif'}",
        f"labels={folder / 'labels.tif'}",
        f"output={folder / 'scores.json'}",
    ]


def _mirror_with_bad_file(folder: Path) -> list[str]:
    """A mirror folder whose ISBI files do not match the recorded sha256: refused, kept aside, never used."""
    mirror = folder / "mirror"
    mirror.mkdir()
    images, labels = em_like()
    tifffile.imwrite(mirror / "train-volume.tif", images)
    tifffile.imwrite(mirror / "train-labels.tif", labels)
    return [
        "src.train",
        "data=isbi2012",
        f"data.source.mirror={mirror}",
        f"data.source.root={folder / 'data'}",
        *TINY_TRAIN[1:],
        f"paths.log_dir={folder / 'logs'}",
    ]


_, _LABELS = em_like()
_GREY = np.clip(_LABELS.astype(int) + np.random.default_rng(1).integers(-3, 4, _LABELS.shape), 0, 255).astype(np.uint8)
_NAN = em_like()[0].astype(np.float32)
_NAN[3, 10, 10] = np.nan
_INF = em_like()[0].astype(np.float32)
_INF[2, 5, 5] = np.inf

CASES: list[Case] = [
    Case(
        "good_inputs", "control", "good 8-bit stacks (the control: must train)", lambda f: train(f), "", accepted=True
    ),
    Case(
        "uint16_images",
        "data",
        "16-bit images",
        lambda f: train(f, images=em_like()[0].astype(np.uint16) * 257),
        "",
        accepted=True,
    ),
    Case(
        "float_images",
        "data",
        "float32 images in [0, 1]",
        lambda f: train(f, images=em_like()[0] / np.float32(255)),
        "",
        accepted=True,
    ),
    Case(
        "labels_0_1",
        "data",
        "labels 0/1 instead of 0/255",
        lambda f: train(f, labels=(_LABELS > 0).astype(np.uint8)),
        "",
        accepted=True,
    ),
    Case(
        "lazy_band_folds",
        "data",
        "the stacks read lazily, folds as bands along y",
        lambda f: train(f, "data.loading=lazy", "data.fold_axis=y"),
        "",
        accepted=True,
    ),
    Case(
        "lazy_weight_map",
        "config",
        "the paper's border weight map with the stacks read lazily",
        lambda f: train(f, "data.loading=lazy", "loss=weighted_ce"),
        "data.weight_map is computed on whole slices",
    ),
    Case(
        "mutex_watershed_of_classes",
        "checkpoint",
        "the mutex watershed asked of a network that predicts classes, not affinities",
        lambda f: predict(f, "postprocess=mutex_watershed"),
        "predicts classes only",
    ),
    Case(
        "offsets_3d_for_slices",
        "config",
        "3-D affinity offsets for a network trained on slices",
        lambda f: train(f, "model.target=affinities", "model.offsets=[[-1,0,0],[0,-1,0]]"),
        "model.offsets",
    ),
    Case("not_a_tiff", "data", "an image file that is not a TIFF", _text_file, "is it a complete TIFF file"),
    Case("truncated_tiff", "data", "a truncated TIFF", _truncated, "images.tif"),
    Case("empty_stack", "data", "an empty stack (0 slices)", _empty, "empty"),
    Case(
        "missing_file",
        "data",
        "an image path that does not exist",
        lambda f: train(f, f"data.source.images={f / 'nope.tif'}"),
        "not found",
    ),
    Case(
        "folder_not_file",
        "data",
        "a folder of stacks given as the image stack (a folder must hold 2-D slices)",
        lambda f: train(f, f"data.source.images={f}"),
        "every slice must be a greyscale 2-D image",
    ),
    Case(
        "slice_count_mismatch",
        "data",
        "9 label slices for 10 images",
        lambda f: train(f, labels=_LABELS[:9]),
        "slice for slice",
    ),
    Case(
        "size_mismatch",
        "data",
        "labels of 64x60 for images of 64x64",
        lambda f: train(f, labels=_LABELS[:, :, :60]),
        "64",
    ),
    Case(
        "labels_three_values",
        "data",
        "labels with values 0/1/2",
        lambda f: train(f, labels=(_LABELS > 0) + (_LABELS[:, ::-1] > 0).astype(np.uint8)),
        "label",
    ),
    Case("labels_grey", "data", "labels with grey values (lossy saving)", lambda f: train(f, labels=_GREY), "label"),
    Case(
        "labels_unknown_value",
        "data",
        "a label value (7) that no class of data.classes names",
        lambda f: train(f, labels=np.where(_LABELS[:, :, ::-1] == 0, 7, _LABELS).astype(np.uint8)),
        "label value 7 in",
    ),
    Case(
        "ignore_is_a_class",
        "config",
        "data.ignore=0, a value of the membrane class",
        lambda f: train(f, "data.ignore=0"),
        "data.ignore=0 is also a value of data.classes.membrane",
    ),
    Case(
        "init_from_other_network",
        "checkpoint",
        "model.init_from a depth-4 network for a depth-3 run",
        _init_from_other_network,
        "holds a network with depth=4",
    ),
    Case(
        "class_map_exists",
        "output",
        "a class map of the same name already in the output folder",
        _existing_class_map,
        "stack_classes.tif exists",
    ),
    Case(
        "rgb_images",
        "data",
        "RGB images (N, H, W, 3)",
        lambda f: train(f, images=np.repeat(em_like()[0][..., None], 3, -1)),
        "RGB",
    ),
    Case(
        "two_channel_images",
        "data",
        "two-channel images (N, 2, H, W)",
        lambda f: train(f, images=np.stack([em_like()[0]] * 2, axis=1)),
        "channel",
    ),
    Case(
        "missing_folder",
        "data",
        "a stack to segment in a folder that does not exist",
        lambda f: [*predict(f)[:2], f"input={f / 'no_such_folder' / 'stack.tif'}", *predict(f)[3:]],
        "not found",
    ),
    Case(
        "bioimageio_test_input_missing",
        "data",
        "src.export format=bioimageio with a test image that does not exist",
        lambda f: [
            "src.export",
            f"ckpt_path={small_checkpoint(f / 'model.ckpt')}",
            "format=bioimageio",
            f"output={f / 'model.zip'}",
            f"bioimageio.test_input={f / 'no_such_image.tif'}",
        ],
        "not found",
    ),
    Case(
        "voxel_unit_misspelt",
        "config",
        "src.predict voxel_unit=nanometr (a typo)",
        lambda f: predict(f, "voxel_size=[50,4,4]", "voxel_unit=nanometr"),
        "is not a unit of length",
    ),
    Case("nan_images", "data", "a NaN pixel in a float stack", lambda f: train(f, images=_NAN), "NaN"),
    Case("inf_images", "data", "an infinite pixel in a float stack", lambda f: train(f, images=_INF), "infinite"),
    Case(
        "fewer_slices_than_folds",
        "data",
        "a stack of 3 slices for 5 folds",
        lambda f: train(f, images=em_like(3)[0], labels=em_like(3)[1]),
        "data.num_folds=3 or fewer",
    ),
    Case(
        "crop_larger_than_slices",
        "data",
        "64x64 slices, crops of 128 (mirror-padded, as the paper's 572-pixel tiles from 512-pixel slices)",
        lambda f: train(f, "data.crop_size=128"),
        "",
        accepted=True,
    ),
    Case("sha256_mismatch", "data", "an ISBI mirror whose file fails its sha256", _mirror_with_bad_file, "sha256"),
    Case("unknown_key", "config", "a misspelt key (model.dept=5)", lambda f: train(f, "model.dept=5"), "model.dept"),
    Case(
        "wrong_type",
        "config",
        "a value of the wrong type (model.depth=four)",
        lambda f: train(f, "model.depth=four"),
        "model.depth",
    ),
    Case("depth_zero", "config", "model.depth=0", lambda f: train(f, "model.depth=0"), "model.depth"),
    Case("depth_too_large", "config", "model.depth=6 for 32-pixel crops", lambda f: train(f, "model.depth=6"), "depth"),
    Case(
        "crop_not_divisible",
        "config",
        "data.crop_size=36 with model.depth=3",
        lambda f: train(f, "data.crop_size=36"),
        "crop_size",
    ),
    Case(
        "patch_blur_reversed",
        "config",
        "data.augmentation.patch_blur_sigma=[3,1] (a reversed range)",
        lambda f: train(f, "data.augmentation.patch_blur_p=0.5", "data.augmentation.patch_blur_sigma=[3,1]"),
        "patch_blur_sigma",
    ),
    Case(
        "gamma_reversed",
        "config",
        "data.augmentation.gamma_limit=[120,80] (a reversed range albumentations takes)",
        lambda f: train(f, "data.augmentation.gamma_p=0.5", "data.augmentation.gamma_limit=[120,80]"),
        "gamma_limit",
    ),
    Case(
        "augmentation_p_above_one",
        "config",
        "data.augmentation.blur_p=1.5",
        lambda f: train(f, "data.augmentation.blur_p=1.5"),
        "blur_p=1.5 is a probability",
    ),
    Case(
        "augmentation_negative_blur",
        "config",
        "data.augmentation.blur_sigma=[-1,2] (albumentations' own check)",
        lambda f: train(f, "data.augmentation.blur_p=0.5", "data.augmentation.blur_sigma=[-1,2]"),
        "sigma_limit",
    ),
    Case("negative_lr", "config", "optimizer.lr=-0.001", lambda f: train(f, "optimizer.lr=-0.001"), "lr"),
    Case(
        "optimized_metric_misspelt",
        "config",
        "optimized_metric=val/vrnad (a typo; Lightning found it at the first validation, in a traceback)",
        lambda f: train(f, "optimized_metric=val/vrnad"),
        "not logged at validation",
    ),
    Case(
        "negative_weight_decay",
        "config",
        "optimizer.weight_decay=-1 (torch's own check, at the optimizer's making)",
        lambda f: train(f, "optimizer.weight_decay=-1"),
        "weight_decay",
    ),
    Case(
        "negative_schedule_floor",
        "config",
        "scheduler.min_factor=-1 (the rate would end below 0)",
        lambda f: train(f, "scheduler.min_factor=-1"),
        "min_factor",
    ),
    Case(
        "negative_loss_term",
        "config",
        "loss=dice_ce loss.ce_weight=-1 (the term would be maximised)",
        lambda f: train(f, "loss=dice_ce", "loss.ce_weight=-1"),
        "ce_weight=-1",
    ),
    Case(
        "no_accumulated_batches",
        "config",
        "trainer.accumulate_grad_batches=0 (Lightning divides by it)",
        lambda f: train(f, "trainer.accumulate_grad_batches=0"),
        "accumulate_grad_batches",
    ),
    Case(
        "weight_map_no_width",
        "config",
        "loss=weighted_ce data.weight_map.sigma=0 (the border weights need a width)",
        lambda f: train(f, "loss=weighted_ce", "data.weight_map.sigma=0"),
        "sigma",
    ),
    Case(
        "negative_gradient_clip",
        "config",
        "trainer.gradient_clip_val=-1 (the gradients would turn round)",
        lambda f: train(f, "trainer.gradient_clip_val=-1"),
        "gradient_clip_val",
    ),
    Case(
        "negative_lazy_size",
        "config",
        "data.lazy_above_gib=-1 (taken as 0 without a word before)",
        lambda f: train(f, "data.lazy_above_gib=-1"),
        "lazy_above_gib",
    ),
    Case("negative_batch", "config", "data.batch_size=-2", lambda f: train(f, "data.batch_size=-2"), "batch_size"),
    Case("fold_out_of_range", "config", "data.fold=7 of 5 folds", lambda f: train(f, "data.fold=7"), "fold"),
    Case(
        "too_many_devices",
        "config",
        "trainer.devices=64 on a 2-core machine",
        lambda f: train(f, "trainer.devices=64"),
        "devices",
    ),
    Case(
        "fp16_on_cpu",
        "config",
        "trainer.precision=16-mixed on a CPU",
        lambda f: train(f, "trainer.precision=16-mixed"),
        "16-mixed",
    ),
    Case(
        "sync_batchnorm_on_cpu",
        "config",
        "trainer=ddp trainer.sync_batchnorm=true on CPUs (torch's SyncBatchNorm is CUDA-only)",
        lambda f: train(f, "trainer=ddp", "trainer.accelerator=cpu", "trainer.sync_batchnorm=true"),
        "sync_batchnorm",
    ),
    Case(
        "missing_checkpoint",
        "checkpoint",
        "a checkpoint path that does not exist",
        lambda f: predict(f, ckpt=f / "gone.ckpt"),
        "gone.ckpt",
    ),
    Case(
        "eval_missing_checkpoint",
        "checkpoint",
        "`src.eval` of a checkpoint path that does not exist",
        lambda f: [
            "src.eval",
            f"ckpt_path={f / 'gone.ckpt'}",
            "data=tiff",
            *write_stacks(f),
            f"paths.log_dir={f / 'logs'}",
        ],
        "gone.ckpt",
    ),
    Case(
        "resume_last_without_runs",
        "checkpoint",
        "ckpt_path=last before any run saved a checkpoint",
        lambda f: train(f, "ckpt_path=last"),
        "ckpt_path=last",
    ),
    Case("corrupt_checkpoint", "checkpoint", "a checkpoint of random bytes", _corrupt_checkpoint, "model.ckpt"),
    Case(
        "code_in_checkpoint",
        "checkpoint",
        "a checkpoint with a pickled object that would run code (it would create code_ran.txt)",
        _code_in_checkpoint,
        "untrusted",
    ),
    Case(
        "other_architecture",
        "checkpoint",
        "resuming a depth-3 run with model.depth=2",
        _other_architecture,
        "depth",
    ),
    Case("existing_prediction", "output", "src.predict into an output that exists", _existing_output, "overwrite=true"),
    Case("truncated_predict_input", "data", "src.predict of a TIFF cut short", _truncated_predict_input, "stack.tif"),
    Case(
        "hdf5_missing_key",
        "data",
        "src.predict of an HDF5 file with a key it does not hold",
        _hdf5_without_key,
        "it holds volumes/raw",
    ),
    Case(
        "interrupted_zarr",
        "output",
        "src.predict output=OUT.zarr where an interrupted run's partial output is left",
        _interrupted_zarr,
        "pass resume=true",
    ),
    Case(
        "resume_other_settings",
        "output",
        "resume=true of an interrupted OUT.zarr with another block_shape",
        lambda f: _interrupted_zarr(f, "resume=true", "block_shape=[1,32,32]"),
        "other settings",
    ),
    Case(
        "cells_halo_zero",
        "config",
        "src.predict output=OUT.zarr with cells to cut and cells_halo=0",
        lambda f: [
            *(a for a in predict(f) if a.split("=")[0] not in ("postprocess", "output")),
            f"output={f / 'out.zarr'}",
            "cells_halo=0",
        ],
        "cells_halo=0 must be at least 1",
    ),
    Case(
        "block_shape_2d",
        "config",
        "src.predict output=OUT.zarr with a block_shape of two sizes (y, x)",
        lambda f: [
            *(a for a in predict(f) if not a.startswith("output=")),
            f"output={f / 'out.zarr'}",
            "block_shape=[64,64]",
        ],
        "block_shape=[64, 64] must be three positive sizes",
    ),
    Case(
        "affinity_decoder_for_classes",
        "config",
        "src.train postprocess=mutex_watershed for a network that predicts classes only",
        lambda f: train(f, "postprocess=mutex_watershed"),
        "reads affinities, but this network predicts classes only",
    ),
    Case(
        "val_check_interval_zero",
        "config",
        "src.train trainer.val_check_interval=0 (Lightning took it, then divided by it after the first step)",
        lambda f: train(f, "trainer.val_check_interval=0"),
        "val_check_interval=0 must be",
    ),
    Case("existing_scores", "output", "src.score output=scores.json that exists", _score_existing, "overwrite=true"),
    Case(
        "unwritable_output",
        "output",
        "an output folder that cannot be made (its parent is a file)",
        _unwritable_output,
        "results",
    ),
]


@dataclass
class Outcome:
    case: Case
    returncode: int
    message: str  # the last non-empty line of stderr
    traceback: bool
    changed: list[str]  # files new, changed or removed in the case's folder


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_case(case: Case, folder: Path, threads: int | None = None) -> Outcome:
    module, *overrides = case.build(folder)
    before = snapshot(folder)
    result = run_cli(module, *overrides, env={**OFFLINE, **({"OMP_NUM_THREADS": str(threads)} if threads else {})})
    after = snapshot(folder)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return Outcome(
        case, result.returncode, lines[-1] if lines else "", "Traceback" in result.stderr + result.stdout, changed
    )


def run_cases(cases: list[Case], root: Path, workers: int = 2) -> dict[str, Outcome]:
    """Run ``cases``, each in its own folder under ``root``, ``workers`` at a time (one thread each)."""

    def run(case: Case) -> Outcome:
        folder = root / case.name
        folder.mkdir(parents=True)
        return run_case(case, folder, threads=max(1, (os.cpu_count() or 1) // workers))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return {outcome.case.name: outcome for outcome in pool.map(run, cases)}


def table(outcomes: list[Outcome]) -> str:
    rows = [
        "| group | input | exit | what the user sees (last line of stderr) | files changed |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for o in outcomes:
        seen = "runs to the end" if o.case.accepted and o.returncode == 0 else o.message.replace("|", "\\|")
        changed = "none" if not o.changed else ("a new run folder" if o.case.accepted else ", ".join(o.changed))
        rows.append(f"| {o.case.group} | {o.case.what} | {o.returncode} | {seen} | {changed} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run every bad-input case and write the table.")
    parser.add_argument("--write", type=Path, help="markdown file for the table")
    parser.add_argument("--only", help="comma-separated case names")
    args = parser.parse_args()
    cases = [c for c in CASES if not args.only or c.name in args.only.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = list(run_cases(cases, Path(tmp)).values())
    for outcome in outcomes:
        print(
            json.dumps(
                {
                    "case": outcome.case.name,
                    "rc": outcome.returncode,
                    "message": outcome.message,
                    "traceback": outcome.traceback,
                    "changed": outcome.changed[:5],
                }
            ),
            flush=True,
        )
    if args.write:
        header = (
            "# Bad inputs and what the user sees\n\n"
            "Every case of `tests/cli/bad_inputs.py`, run from the command line as a new user would "
            "(`python -m tests.cli.bad_inputs --write docs/bad_inputs.md`); `tests/cli/test_bad_inputs.py` runs "
            "the same cases and requires a non-zero exit, one line without a traceback and no changed file.\n\n"
        )
        # the temporary folder shown as $TMP, so the table changes only when a message does
        args.write.write_text(header + table(outcomes).replace(tmp + "/", "$TMP/") + "\n")


if __name__ == "__main__":
    main()
