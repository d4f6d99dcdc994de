"""Segment any EM stack with a trained U-Net: ``python -m src.predict ckpt_path=... input=STACK.tif output=DIR``.

Reads a 2-D image or an ``(N, H, W)`` stack of any size and bit depth slice by slice and predicts it as the
checkpoint's inference recipe says (whole slices or overlapping tiles, test-time augmentation, post-processing;
:mod:`src.inference.recipe`), any recipe key on the command line overriding it. Writes to ``output``:
``<name>_classes.tif`` (the most probable class, uint8 class ids, the class names in the TIFF's metadata),
``<name>_prob.tif`` (the cells' probability, float32 or uint8, where the classes name a boundary) and, with a
post-processing, ``<name>_cells.tif`` (labelled cells, uint32, 0 = border) and for one with a contour map
(agglomeration) ``<name>_contours.tif`` (float32, for the challenge's threshold sweep); with
``probabilities=true`` also ``<name>_prob_<class>.tif`` for every class; for an affinity network
``<name>_affinities.tif`` (float32 ``(N, K, H, W)``, the offsets in its metadata). All are written under hidden
temporary names and renamed when complete; the summary names the recipe's scored output.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from omegaconf import DictConfig

from src.utils.cli import run_task
from src.utils.errors import UserError

# Torch and our inference modules are imported inside the functions, once the config is composed: a bad key then
# fails in about a second instead of after several seconds of imports (docs/speed.md).
log = logging.getLogger(__name__)

OUTPUT_OF_SCORED = {"probability": "prob", "cells": "cells", "contours": "contours"}


def output_paths(
    cfg: DictConfig, recipe: dict, classes: list[str], boundary: int | None, offsets=()
) -> dict[str, Path]:
    from src.inference.recipe import has_contour_map

    out = Path(cfg.output)
    if out.exists() and not out.is_dir():
        raise UserError(f"output={out} is a file; give a folder for the predicted stacks")
    if not out.exists() and not next(p for p in out.absolute().parents if p.exists()).is_dir():
        raise _cannot_make(out, "Not a directory")  # a file where a parent folder should be; refused before the module
    stem = Path(cfg.input).name.split(".")[0]
    paths = {"classes": out / f"{stem}_classes.tif"}
    if cfg.probabilities:
        paths.update({f"prob_{name}": out / f"{stem}_prob_{name}.tif" for name in classes})
    if boundary is None:
        if recipe["postprocess"] or recipe["scored"] != "probability":
            raise UserError(
                "this checkpoint's classes name no boundary class, so there are no cells to post-process or score; "
                "pass postprocess=none (its class map is written)"
            )
        return _refuse_existing(paths, cfg)
    paths["prob"] = out / f"{stem}_prob.tif"
    if offsets:
        paths["affinities"] = out / f"{stem}_affinities.tif"
    if recipe["postprocess"]:
        paths["cells"] = out / f"{stem}_cells.tif"
        if has_contour_map(recipe["postprocess"]):
            paths["contours"] = out / f"{stem}_contours.tif"
    return _refuse_existing(paths, cfg)


def _cannot_make(output, reason: str) -> UserError:
    return UserError(f"output folder {output} cannot be made ({reason}); choose a writable output=...")


def _refuse_existing(paths: dict[str, Path], cfg: DictConfig) -> dict[str, Path]:
    """Nothing is written when any output exists (unless overwrite=true): a user's file is never replaced."""
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not cfg.overwrite:
        raise UserError(f"{existing[0]} exists; choose another output folder or pass overwrite=true")
    return paths


def build_predictor(cfg: DictConfig, module, recipe: dict, device):
    """The checkpoint's network as the recipe predicts: whole slices, or tiles with this command's speed settings."""
    from src.config.hardware import autocast_dtype
    from src.inference.recipe import slice_predictor

    return slice_predictor(
        module,
        recipe,
        device,
        autocast_dtype(cfg.precision, device),
        output="all",
        batch_size=cfg.batch_size,
        channels_last=cfg.channels_last,
        pad_batches=cfg.compile,
        compile=cfg.compile,
        queue_pixels=int(cfg.queue_megapixels * 1e6),
    )


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    )


def _write_slices(
    predictor, reader, ids: list[int], writers: dict, postprocess, cfg: DictConfig, classes: list[str], boundary
) -> None:
    """Predict the ``ids`` slices of ``reader`` one after another and append each output to its writer."""
    import numpy as np

    from src.data.normalize import normalize_slices
    from src.inference.class_outputs import cell_probability, class_map
    from src.postprocess.instances import cells_and_contours, reads_affinities

    height, width = reader.shape[1:]
    with _progress(cfg.progress) as bar:
        slices = bar.add_task("slices", total=len(ids))
        tiles = bar.add_task("tiles", total=len(ids) * predictor.tiles_per_slice(height, width))
        normalised = (
            normalize_slices(reader.read(index)[None], f"input {cfg.input} slice {index}")[0] for index in ids
        )

        def as_stored(prob: np.ndarray) -> np.ndarray:
            return np.round(prob * 255).astype(np.uint8) if cfg.prob_dtype == "uint8" else prob.astype(np.float32)

        for outputs in predictor.predict_many(normalised, lambda n: bar.advance(tiles, n)):
            probs, affinities = outputs[: len(classes)], outputs[len(classes) :]
            writers["classes"].write(class_map(probs))
            if "affinities" in writers:
                writers["affinities"].write(affinities.astype(np.float32))
            for index, name in enumerate(classes):
                if f"prob_{name}" in writers:
                    writers[f"prob_{name}"].write(as_stored(probs[index]))
            if boundary is None:
                bar.advance(slices)
                continue
            prob = cell_probability(probs, boundary)
            writers["prob"].write(as_stored(prob))
            if postprocess is not None:
                reads = affinities if reads_affinities(postprocess) else prob
                cells, contours = cells_and_contours(postprocess, reads)
                writers["cells"].write(cells.astype(np.uint32))
                if contours is not None:
                    writers["contours"].write(contours)
            bar.advance(slices)


def _check_classifier(affinities: bool, recipe: dict, ckpt_path: str) -> None:
    """Learned edges need a fitted classifier (the run's own, or one named): refused before any input is read."""
    from src.inference.recipe import CLASSIFIER_FILE, needs_fitting

    if affinities and needs_fitting(recipe["postprocess"]):
        raise UserError(
            f"postprocess=learned_edges needs a fitted classifier, but the run of ckpt_path={ckpt_path} has no "
            f"{CLASSIFIER_FILE} fitted with these settings; pass postprocess.classifier=FILE (src.eval of the "
            "checkpoint fits one), or choose postprocess=mutex_watershed"
        )


def _postprocess(recipe: dict, offsets: tuple, boundary: int | None, blockwise: bool = False):
    """The recipe's post-processing, built (None for none). Blockwise, cells cut from the cells' probability need
    a boundary class (the TIFF path refuses the same in :func:`output_paths`)."""
    if not recipe["postprocess"]:
        return None
    from src.postprocess.instances import build_postprocess, reads_affinities

    method = build_postprocess(recipe["postprocess"], offsets)
    if blockwise and boundary is None and not reads_affinities(method):
        raise UserError(
            "this checkpoint's classes name no boundary class, so there are no cells to post-process; pass "
            "postprocess=none (its class map is written)"
        )
    return method


def _recipe(cfg: DictConfig) -> tuple[dict, dict, str]:
    """The checkpoint's contents (read and checked; no module built yet), its recipe with this command's keys, and
    where the recipe came from."""
    from src.models.checkpoint import read_checkpoint

    checkpoint = read_checkpoint(cfg.ckpt_path)  # a missing file is refused before torch is imported
    from src.inference.recipe import checkpoint_recipe

    recipe, source = checkpoint_recipe(checkpoint["hyper_parameters"].get("inference"), cfg)
    _check_classifier(bool(checkpoint["hyper_parameters"].get("affinities")), recipe, cfg.ckpt_path)
    return checkpoint, recipe, source


def _check_settings(cfg: DictConfig) -> None:
    """This command's own settings, before the input or the checkpoint is read."""
    if cfg.prob_dtype not in ("float32", "uint8"):
        raise UserError(f"prob_dtype={cfg.prob_dtype} must be float32 or uint8")
    if cfg.batch_size < 1:
        raise UserError(f"batch_size={cfg.batch_size} must be at least 1 (tiles a forward pass)")
    if cfg.num_workers < 0:
        raise UserError(f"num_workers={cfg.num_workers} must be 0 (read in this process) or more processes")
    if not cfg.queue_megapixels > 0:
        raise UserError(f"queue_megapixels={cfg.queue_megapixels} must be positive")
    if cfg.block_halo != "auto" and not (isinstance(cfg.block_halo, int) and cfg.block_halo >= 0):
        raise UserError(f"block_halo={cfg.block_halo} must be auto (the network's reach) or 0 or more pixels")
    if cfg.voxel_size is not None:  # a size and unit given (without them the input's own, known once it is read)
        from src.data.tiff import Calibration

        Calibration.chosen(cfg.voxel_size, cfg.voxel_unit, None)


def _check_zarr_output(cfg: DictConfig) -> None:
    """A Zarr output's own refusals, before the checkpoint is read."""
    if Path(cfg.output).exists() and not cfg.overwrite:
        raise UserError(f"{Path(cfg.output)} exists; choose another output or pass overwrite=true")
    if cfg.slices is not None:
        raise UserError("slices= chooses slices of a TIFF output; a Zarr output holds the whole volume")
    if len(cfg.block_shape) != 3 or min(cfg.block_shape) < 1:  # the config's schema makes them integers
        raise UserError(
            f"block_shape={list(cfg.block_shape)} must be three positive sizes (z, y, x), "
            "e.g. block_shape=[4,1024,1024]"
        )


def predict(cfg: DictConfig) -> dict:
    from src.data.volume import open_volume
    from src.models.checkpoint import load_network, saved_outputs

    _check_settings(cfg)
    if str(cfg.output).rstrip("/").endswith(".zarr"):
        _check_zarr_output(cfg)
        from src.inference.block_plan import plan_blocks

        checkpoint, recipe, _ = _recipe(cfg)
        _, boundary, offsets = saved_outputs(checkpoint["hyper_parameters"])
        postprocess = _postprocess(recipe, offsets, boundary, blockwise=True)
        network = load_network(cfg.ckpt_path, checkpoint=checkpoint)
        plan = plan_blocks(cfg, network, recipe, postprocess)  # everything it refuses is refused before Lightning
        from src.inference.block_run import predict_blocks

        return predict_blocks(cfg, network, plan)
    # the input, then the checkpoint, then the outputs are checked before the module's seconds of building
    with open_volume(cfg.input, cfg.input_key, "input", "check input= and input_key=") as reader:
        checkpoint, recipe, source = _recipe(cfg)
        classes, boundary, offsets = saved_outputs(checkpoint["hyper_parameters"])
        paths = output_paths(cfg, recipe, classes, boundary, offsets)
        postprocess = _postprocess(recipe, offsets, boundary)
        module = load_network(cfg.ckpt_path, checkpoint=checkpoint)
        return _predict_stack(cfg, reader, module, recipe, source, paths, postprocess)


def _predict_stack(cfg: DictConfig, reader, module, recipe: dict, source: str, paths: dict, postprocess) -> dict:
    """Predict the slices of the opened ``reader`` into the stacks ``paths`` by the recipe (``source``: where it came
    from) and its ``postprocess``, both checked before the module was built; the run's summary."""
    from src.config.hardware import resolve_device
    from src.data.slices import parse_slices
    from src.data.tiff import Calibration, StackWriter
    from src.inference.recipe import describe

    classes, boundary = module.classes, module.boundary_class
    device = resolve_device(cfg.device)
    ids = parse_slices(cfg.slices, len(reader), "slices")
    calibration = Calibration.chosen(cfg.voxel_size, cfg.voxel_unit, reader)
    predictor = build_predictor(cfg, module, recipe, device)
    log.info("inference: %s (%s)", describe(recipe), source)
    try:
        Path(cfg.output).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_make(cfg.output, exc.strerror) from None
    metadata = {"classes": {"classes": classes}, "affinities": {"offsets": [list(o) for o in module.offsets]}}
    writers = {key: StackWriter(path, metadata.get(key), calibration) for key, path in paths.items()}
    started = time.perf_counter()
    try:
        _write_slices(predictor, reader, ids, writers, postprocess, cfg, classes, boundary)
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    written = {key: str(writer.commit()) for key, writer in writers.items()}
    seconds = time.perf_counter() - started
    height, width = reader.shape[1:]
    summary = {
        **written,
        "scored": written[OUTPUT_OF_SCORED[recipe["scored"]] if boundary is not None else "classes"],
        "class_names": classes,
        "slices": len(ids),
        "shape": [height, width],
        "tiles_per_slice": predictor.tiles_per_slice(height, width),
        "seconds": round(seconds, 3),
        "megapixels_per_second": round(len(ids) * height * width / 1e6 / seconds, 4),
    }
    print(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    run_task(predict, "predict")


if __name__ == "__main__":
    main()
