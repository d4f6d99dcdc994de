"""A Lightning callback that times the training steps of a real ``src.train`` run, for the benchmarks.

Added from the command line: ``+callbacks.step_timer._target_=benchmarks.step_timer.StepTimer
+callbacks.step_timer.output=timing.json``. It records the time at the end of every training batch, so an
interval covers everything the loop does between two steps: fetching and augmenting the batch, the forward and
backward pass, the optimizer, logging and the progress bar.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback


class StepTimer(Callback):
    def __init__(self, output: str, warmup: int = 3) -> None:
        self.output = Path(output)
        self.warmup = warmup
        self.ends: list[float] = []
        self.batch_size = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())
        self.batch_size = len(batch["image"])

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        intervals = [b - a for a, b in zip(self.ends[self.warmup :], self.ends[self.warmup + 1 :], strict=False)]
        self.output.write_text(json.dumps({"intervals": intervals, "batch_size": self.batch_size}))
