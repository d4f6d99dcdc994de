"""What a blockwise prediction to Zarr will do, settled and checked before Lightning is imported.

:func:`plan_blocks` reads the input's shape, sizes the halo, cuts the block grid and gathers the settings a resumed
run must share; an interrupted output that may not be resumed and a ``cells_halo`` that cannot stitch are refused
here, seconds before :mod:`src.inference.block_run` imports Lightning to run the predict loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from src.data.tiff import Calibration
from src.data.volume import open_volume
from src.inference.block_cells import check_halo
from src.inference.blockwise import Block, BlockPredictor, block_grid, network_reach
from src.inference.zarr_output import ZarrOutput


@dataclass
class BlockPlan:
    """The output, the input's ``open_volume`` arguments, the predictor, the blocks, the arguments of
    :meth:`ZarrOutput.create` (its ``settings`` among them) and the cells to cut (``(post-processing, halo)``)."""

    output: ZarrOutput
    volume_args: tuple
    predictor: BlockPredictor
    blocks: list[Block]
    create: dict
    cells: tuple | None


def run_settings(cfg, recipe: dict, shape, block_shape, halo: int) -> dict:
    """What a resumed run must share with the run it finishes (JSON-plain, as stored in the output)."""
    settings = {
        "input": str(Path(cfg.input).resolve()),
        "input_key": cfg.input_key,
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "shape": list(shape),
        "block_shape": block_shape,
        "halo": halo,
        "tta": list(recipe["tta"]),
        "prob_dtype": cfg.prob_dtype,
        "num_workers": cfg.num_workers,
        "postprocess": recipe["postprocess"],
        "cells_halo": cfg.cells_halo,
    }
    return json.loads(json.dumps(settings))


def plan_blocks(cfg, module, recipe: dict, method=None) -> BlockPlan:
    """The plan for predicting ``cfg.input`` into ``cfg.output`` with the trained ``module`` by the ``recipe``, its
    cells cut by ``method`` (the recipe's post-processing, built; None: no cells)."""
    output = ZarrOutput(cfg.output)
    volume_args = (cfg.input, cfg.input_key, "input", "check input= and input_key=")
    with open_volume(*volume_args) as volume:
        shape, calibration = volume.shape, Calibration.chosen(cfg.voxel_size, cfg.voxel_unit, volume)
    voxel_size, unit = (calibration.voxel_size, calibration.unit) if calibration else (volume.voxel_size, None)
    halo = network_reach(module.net) if cfg.block_halo == "auto" else int(cfg.block_halo)
    block_shape = [min(int(b), n) for b, n in zip(cfg.block_shape, shape, strict=True)]
    blocks = block_grid(shape, block_shape)
    create = dict(
        shape=shape,
        block_shape=block_shape,
        classes=module.classes,
        boundary=module.boundary_class,
        voxel_size=voxel_size,
        unit=unit,
        prob_dtype=cfg.prob_dtype,
        settings=run_settings(cfg, recipe, shape, block_shape, halo),
        offsets=[list(o) for o in getattr(module, "offsets", ())],
    )
    output.check_resumable(cfg.resume, create["settings"])
    if method is not None:
        check_halo(cfg.cells_halo)
    predictor = BlockPredictor(module, recipe["tta"], halo, shape[1:])
    cells = (method, int(cfg.cells_halo)) if method is not None else None
    return BlockPlan(output, volume_args, predictor, blocks, create, cells)
