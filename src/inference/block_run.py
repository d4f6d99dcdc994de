"""``src.predict ... output=OUT.zarr``: blockwise prediction on Lightning's predict loop, across devices and nodes.

A :class:`BlockDataset` reads and normalises each block's source region (loader workers can do it), the
:class:`BlockPredictionModule` predicts it (:class:`src.inference.blockwise.BlockPredictor`, under the trainer's
precision), and the :class:`ZarrBlockWriter` callback writes every finished block into its chunks of the output.
``trainer.devices`` / ``trainer.num_nodes`` split the blocks across processes (DDP: gloo on CPUs, NCCL on GPUs),
each taking every n-th block not yet written; the first process makes (or checks) the output and the per-slice
normalisation before any block is read, and names the output once every block is written.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from src.data.normalize import standardise
from src.data.volume import open_volume
from src.inference.block_cells import BlockCells, cut_cells
from src.inference.block_plan import BlockPlan
from src.inference.blockwise import Block, BlockPredictor
from src.utils.errors import UserError

IDLE = -1  # the block index of an idle step (BlockPredictionModule.predict_dataloader)


def slice_statistics(volume, rows: int = 1024) -> np.ndarray:
    """Each slice's mean and standard deviation ``(Z, 2)`` (float64, read in bands of ``rows``): the per-slice
    standardisation of :func:`src.data.normalize.normalize_slices` without holding a slice as floats."""
    stats = np.zeros((len(volume), 2))
    height = volume.shape[1]
    for z in range(len(volume)):
        total = square = 0.0
        for top in range(0, height, rows):
            band = volume.read_box((slice(z, z + 1), slice(top, top + rows), slice(None))).astype(np.float64)
            if not np.isfinite(band).all():
                raise UserError(f"input {volume.where} holds NaN or infinite pixels in slice {z}; clean them first")
            total, square = total + band.sum(), square + np.square(band).sum()
        count = height * volume.shape[2]
        mean = total / count
        stats[z] = mean, np.sqrt(max(square / count - mean**2, 0.0))
    return stats


class BlockDataset(Dataset):
    """Normalised source regions of ``blocks`` (float32 ``(z, h, w)``), read from the volume box by box."""

    def __init__(
        self, path: str, key: str | None, blocks: list[Block | None], predictor: BlockPredictor, stats
    ) -> None:
        self.path, self.key, self.blocks, self.predictor = path, key, blocks, predictor
        self.stats = np.asarray(stats, np.float64)
        self._volume = None  # opened in the process that reads (HDF5 handles do not cross processes)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict:
        if self.blocks[i] is None:
            return {"index": IDLE}
        if self._volume is None:
            self._volume = open_volume(self.path, self.key, "input", "check input= and input_key=")
        block = self.blocks[i]
        top, bottom, left, right = self.predictor.source_box(block)
        raw = self._volume.read_box((slice(*block.z), slice(top, bottom), slice(left, right)))
        stats = self.stats[block.z[0] : block.z[1]]
        source = standardise(raw, stats[:, :1, None], stats[:, 1:, None])
        return {"index": block.index, "source": torch.from_numpy(source)}


class BlockPredictionModule(L.LightningModule):
    """The trained module predicting blocks; each process gets every ``world_size``-th pending block."""

    def __init__(self, module, predictor: BlockPredictor, blocks: list[Block], writer: ZarrBlockWriter, **read):
        super().__init__()
        self.net = predictor.run  # registered, so the trainer moves it to this process's device
        self.classes = module.classes
        self.predictor, self.blocks, self.writer, self.read = predictor, blocks, writer, read

    def predict_dataloader(self) -> DataLoader:
        done = self.writer.output.done()
        pending = [b for b in self.blocks if b.index not in done]
        # a process with no block still runs the loop once (an idle step): Lightning skips the end-of-prediction hook
        # of an empty loop, and there every process meets the others to cut the cells and name the output
        mine = pending[self.trainer.global_rank :: self.trainer.world_size] or [None]
        dataset = BlockDataset(blocks=mine, predictor=self.predictor, stats=self.writer.stats, **self.read)
        return DataLoader(dataset, batch_size=None, num_workers=self.read_workers, shuffle=False)

    @property
    def read_workers(self) -> int:
        return int(self.writer.settings.get("num_workers", 0))

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        if batch["index"] == IDLE:
            return batch
        block = self.blocks[int(batch["index"])]
        return {"index": block.index, "probs": self.predictor.predict(block, batch["source"].numpy())}


class ZarrBlockWriter(BasePredictionWriter):
    """Makes (or, resuming, checks) the output on the first process, writes each predicted block, names it at the end.

    ``plan`` gives the output, the arguments of :meth:`ZarrOutput.create` (the settings a resumed run must share
    among them), the input (for the per-slice statistics, computed once and kept in the output) and the cells to cut.
    """

    def __init__(self, plan: BlockPlan, resume: bool, boundary):
        super().__init__(write_interval="batch")
        self.output, self.create, self.volume_args = plan.output, plan.create, plan.volume_args
        self.settings, self.total, self.cells = plan.create["settings"], len(plan.blocks), plan.cells
        self.resume, self.boundary = resume, boundary
        self.stats: np.ndarray | None = None
        self.cell_count: int | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.is_global_zero:
            self._prepare()
        trainer.strategy.barrier("zarr output ready")
        self.output.open()
        self.stats = np.asarray(self.output.settings()["slice_statistics"])

    def _prepare(self) -> None:
        if self.output.check_resumable(self.resume, self.settings):
            return
        with open_volume(*self.volume_args) as volume:
            stats = slice_statistics(volume)
        settings = {**self.settings, "slice_statistics": stats.tolist()}
        self.output.create(**{**self.create, "settings": settings})

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        if prediction["index"] == IDLE:
            return
        block = pl_module.blocks[prediction["index"]]
        self.output.write_block(block.index, block.z, block.y, block.x, prediction["probs"].numpy(), self.boundary)

    def on_predict_end(self, trainer, pl_module) -> None:
        trainer.strategy.barrier("all blocks written")
        if self.cells is not None:
            import zarr

            method, halo = self.cells
            group = zarr.open_group(self.output.partial, mode="r+")
            cells = BlockCells(group, self.output.cells_work, method, halo, pl_module.blocks)
            self.cell_count = cut_cells(
                cells, self.output, trainer.global_rank, trainer.world_size, trainer.strategy.barrier
            )
        if trainer.is_global_zero:
            self.output.finish(self.total)


def _trainer(cfg, writer: ZarrBlockWriter):
    """The predict loop's trainer, from the same trainer config as training (devices, nodes, strategy)."""
    from hydra.utils import instantiate

    overrides = {} if cfg.precision == "auto" else {"precision": cfg.precision}
    return instantiate(
        cfg.trainer,
        callbacks=[writer],
        logger=False,
        enable_checkpointing=False,
        use_distributed_sampler=False,
        enable_progress_bar=cfg.progress,
        **overrides,
    )


def predict_blocks(cfg, module, plan: BlockPlan) -> dict:
    """Predict ``cfg.input`` block by block into the OME-Zarr folder ``cfg.output`` as ``plan`` says (see the
    module's docstring), then cut its cells."""
    import json
    import time

    create = plan.create
    writer = ZarrBlockWriter(plan, cfg.resume, module.boundary_class)
    trainer = _trainer(cfg, writer)
    started = time.perf_counter()
    trainer.predict(
        BlockPredictionModule(module, plan.predictor, plan.blocks, writer, path=cfg.input, key=cfg.input_key),
        return_predictions=False,
    )
    seconds = time.perf_counter() - started
    summary = {
        "output": str(plan.output.path),
        "class_names": module.classes,
        "shape": list(create["shape"]),
        "block_shape": create["block_shape"],
        "blocks": len(plan.blocks),
        "halo": create["settings"]["halo"],
        "processes": trainer.world_size,
        "seconds": round(seconds, 3),
        "megavoxels_per_second": round(np.prod(create["shape"]) / 1e6 / seconds, 4),
        **({"cells": writer.cell_count} if writer.cell_count is not None else {}),
    }
    if trainer.is_global_zero:
        print(json.dumps(summary, indent=2))
    return summary
