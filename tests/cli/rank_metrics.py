"""A test probe for DDP runs: every rank writes what it computed, so a test can compare the ranks.

Added to a run with ``+callbacks.rank_metrics._target_=tests.cli.rank_metrics.RankMetrics``; each rank writes
``rank_metrics/rank<N>.json`` in the run folder: its validation and test metrics, a checksum of its final
weights (parameters), its last learning rate, whether its batch norms were synchronised, and the dtype the
network computed in during training.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch

# The override that adds the probe to a run, and what it wrote.
RANK_PROBE = "+callbacks.rank_metrics._target_=tests.cli.rank_metrics.RankMetrics"


def rank_records(run: Path) -> list[dict]:
    """What each rank of a DDP run computed, rank 0 first."""
    return [json.loads(p.read_text()) for p in sorted((run / "rank_metrics").glob("rank*.json"))]


class RankMetrics(L.Callback):
    def __init__(self) -> None:
        self.record: dict = {"metrics": {}}

    def _keep(self, trainer: L.Trainer, prefix: str) -> None:
        for key, value in trainer.callback_metrics.items():
            if key.startswith(prefix):
                self.record["metrics"][key] = float(value)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the dtype the network computes its output in during training (bf16 under bf16-mixed autocast)
        def note_dtype(_module, _inputs, output) -> None:  # returns None: the output stays as it is
            self.record.setdefault("train_dtype", str(output.dtype))

        pl_module.net.register_forward_hook(note_dtype)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record["sync_batchnorm"] = any(isinstance(m, torch.nn.SyncBatchNorm) for m in pl_module.modules())
        self.record["weights_checksum"] = float(sum(p.detach().double().sum() for p in pl_module.parameters()))
        self.record["lr"] = trainer.optimizers[0].param_groups[0]["lr"]

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._keep(trainer, "val/")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._keep(trainer, "test/")
        self.record["world_size"] = trainer.world_size
        folder = Path(trainer.default_root_dir) / "rank_metrics"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.record, indent=1))


class FailOnRank(L.Callback):
    """Raises on one rank only, at one training step: a fault the other ranks learn of only through DDP."""

    def __init__(self, rank: int, step: int = 1) -> None:
        self.rank, self.step = rank, step

    def on_train_batch_start(self, trainer: L.Trainer, *args, **kwargs) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            raise RuntimeError(f"a fault injected on rank {self.rank} at step {self.step}")
