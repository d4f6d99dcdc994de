"""Segment any EM stack with a trained U-Net: ``python -m src.predict ckpt_path=... input=STACK.tif output=DIR``.

Reads a 2-D image or an ``(N, H, W)`` stack of any size and bit depth slice by slice, predicts each slice with
overlapping tiles (:mod:`src.inference.tiling`; test-time augmentation optional), and writes to ``output``:
``<name>_prob.tif`` (interior probability, float32 or uint8) and ``<name>_cells.tif`` (labelled cells from
``postprocess``, uint32, 0 = border); with ``postprocess=agglomeration`` also ``<name>_contours.tif`` (its
contour map, float32, for the challenge's threshold sweep). All are written under hidden temporary names and
renamed when complete.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from src.config.hardware import autocast_dtype, resolve_device
from src.data.normalize import normalize_slices
from src.data.slices import parse_slices
from src.data.tiff import StackReader, StackWriter
from src.inference.tiling import TiledPredictor
from src.inference.tta import tta_transforms
from src.models.checkpoint import load_module
from src.postprocess.instances import cells_and_contours
from src.utils.cli import run_task
from src.utils.errors import UserError

log = logging.getLogger(__name__)


def output_paths(cfg: DictConfig) -> dict[str, Path]:
    out = Path(cfg.output)
    if out.exists() and not out.is_dir():
        raise UserError(f"output={out} is a file; give a folder for the predicted stacks")
    stem = Path(cfg.input).name.split(".")[0]
    paths = {"prob": out / f"{stem}_prob.tif"}
    if cfg.get("postprocess"):
        paths["cells"] = out / f"{stem}_cells.tif"
        if hasattr(get_class(cfg.postprocess._target_), "contours"):
            paths["contours"] = out / f"{stem}_contours.tif"
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not cfg.overwrite:
        raise UserError(f"{existing[0]} exists; choose another output folder or pass overwrite=true")
    return paths


def build_predictor(cfg: DictConfig, device: torch.device) -> TiledPredictor:
    module = load_module(cfg.ckpt_path)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    net = module.net.eval().to(device=device, memory_format=memory_format)
    try:
        return TiledPredictor(
            net,
            tile_size=cfg.tile_size,
            overlap=cfg.overlap,
            stitching=cfg.stitching,
            sigma_scale=cfg.sigma_scale,
            halo=cfg.halo,
            batch_size=cfg.batch_size,
            tta=tta_transforms(cfg.tta),
            autocast_dtype=autocast_dtype(cfg.precision, device),
            channels_last=cfg.channels_last,
            device=device,
            pad_batches=cfg.compile,
            compile=cfg.compile,
            queue_pixels=int(cfg.queue_megapixels * 1e6),
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    )


def predict(cfg: DictConfig) -> dict:
    paths = output_paths(cfg)
    device = resolve_device(cfg.device)
    if cfg.prob_dtype not in ("float32", "uint8"):
        raise UserError(f"prob_dtype={cfg.prob_dtype} must be float32 or uint8")
    postprocess = instantiate(cfg.postprocess) if cfg.get("postprocess") else None
    with StackReader(cfg.input) as reader:
        ids = parse_slices(cfg.slices, len(reader), "slices")
        predictor = build_predictor(cfg, device)
        height, width = reader.shape[1:]
        try:
            Path(cfg.output).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"output folder {cfg.output} cannot be made ({exc.strerror}); choose a writable output=..."
            ) from None
        writers = {key: StackWriter(path) for key, path in paths.items()}
        started = time.perf_counter()
        try:
            with _progress(cfg.progress) as bar:
                slices = bar.add_task("slices", total=len(ids))
                tiles = bar.add_task("tiles", total=len(ids) * predictor.tiles_per_slice(height, width))
                normalised = (normalize_slices(reader.read(index)[None])[0] for index in ids)
                for prob in predictor.predict_many(normalised, lambda n: bar.advance(tiles, n)):
                    if cfg.prob_dtype == "uint8":
                        writers["prob"].write(np.round(prob * 255).astype(np.uint8))
                    else:
                        writers["prob"].write(prob.astype(np.float32))
                    if postprocess is not None:
                        cells, contours = cells_and_contours(postprocess, prob)
                        writers["cells"].write(cells.astype(np.uint32))
                        if contours is not None:
                            writers["contours"].write(contours)
                    bar.advance(slices)
        except BaseException:
            for writer in writers.values():
                writer.discard()
            raise
        written = {key: str(writer.commit()) for key, writer in writers.items()}
    seconds = time.perf_counter() - started
    summary = {
        **written,
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
