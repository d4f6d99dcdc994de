"""A Lightning callback that times the training steps of a real ``src.train`` run, for the benchmarks.

Added from the command line: ``+callbacks.step_timer._target_=benchmarks.step_timer.StepTimer
+callbacks.step_timer.output=timing.json``. It records the time at the end of every training batch, so an
interval covers everything the loop does between two steps: fetching and augmenting the batch, the forward and
backward pass, the optimizer, logging and the progress bar.

With ``+callbacks.step_timer.interleave=true`` (and ``compile=`` as the run's own) it also builds a twin of the
run's module (same network config, memory format, loss and optimizer; its own weights) and, at the end of every
training batch, steps it once as the plain loop does (:class:`benchmarks.plain_step.PlainStep`). The real loop's
interval then runs from the end of that plain step to the end of the next training batch, so each real step sits
next to a plain step in the same process and the same minute: the two are compared without the drift between
separate runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback

from benchmarks.plain_step import PlainStep
from src.models.module import SegmentationModule

# The parts of a step, each from one mark to the next: the real loop's from its callback hooks (the fetch of the
# batch and the rest of the loop's bookkeeping end where the next batch starts), the plain step's from its own.
PHASES = ("data and loop", "forward and loss", "backward", "optimizer")


class StepTimer(Callback):
    def __init__(self, output: str, warmup: int = 3, interleave: bool = False, compile: bool = False) -> None:
        self.output = Path(output)
        self.warmup = warmup
        self.interleave = interleave
        self.compile = compile
        self.marks: list[dict[str, float]] = []  # a real step's marks: start, backward, backward_end, end
        self.current: dict[str, float] = {}
        self.plain_marks: list[tuple[float, float, float, float]] = []  # the plain step after each real one
        self.plain: PlainStep | None = None
        self.batch_size = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.interleave:
            return
        twin = SegmentationModule(**pl_module.hparams)
        if self.compile:
            twin.net.compile()
        data = trainer.datamodule
        bf16 = str(trainer.precision).startswith("bf16")
        self.plain = PlainStep(twin, instantiate(pl_module.hparams.optimizer), data.batch_size, data.crop_size, bf16)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx) -> None:
        self.current = {"start": time.perf_counter()}

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss) -> None:
        self.current["backward"] = time.perf_counter()

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.current["backward_end"] = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self.current["end"] = time.perf_counter()
        self.marks.append(self.current)
        self.batch_size = len(batch["image"])
        if self.plain is not None:
            self.plain.step()
            self.plain_marks.append(self.plain.marks)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        ends = [m["end"] for m in self.marks]
        # The real loop resumes where the plain step after its previous batch ended (or at that batch's end).
        resumes = [m[-1] for m in self.plain_marks] if self.plain is not None else ends
        timed = range(self.warmup + 1, len(self.marks))
        result = {"intervals": [ends[k] - resumes[k - 1] for k in timed], "batch_size": self.batch_size}
        if all(len(self.marks[k]) == 4 for k in timed):  # every hook ran (one optimizer, no accumulation)
            real = [
                (resumes[k - 1], *(self.marks[k][n] for n in ("start", "backward", "backward_end", "end")))
                for k in timed
            ]
            result["phases"] = {"src.train": _phases(real)}
        if self.plain is not None:
            plain = [self.plain_marks[k] for k in timed]
            result["plain_intervals"] = [m[-1] - m[0] for m in plain]
            result.setdefault("phases", {})["plain"] = _phases([(m[0], *m) for m in plain])  # no data, no loop
        self.output.write_text(json.dumps(result))


def _phases(marks: list[tuple[float, ...]]) -> dict[str, list[float]]:
    """Seconds of each phase of each step, from its five marks."""
    return {name: [m[i + 1] - m[i] for m in marks] for i, name in enumerate(PHASES)}
