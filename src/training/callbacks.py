"""Callbacks that make a resumed run continue exactly as the uninterrupted one would have.

Resuming from ``last.ckpt`` restores weights, optimizer, scheduler and loop counters (Lightning). Two things
Lightning does not carry over are handled here:

- :class:`SeedEachEpoch`: the global random generators (dropout, anything outside the data pipeline) are
  reseeded at the start of every training epoch from ``(seed, epoch)``, so their draws do not depend on what
  ran before in this process. The data pipeline is seeded the same way (:mod:`src.data.sampling`).
- :class:`ResumableCheckpoint`, Lightning's ``ModelCheckpoint`` with two changes:
  - ``last.ckpt`` is written at the end of a training epoch, also when no validation ran (Lightning writes it
    only with a validation, every ``check_val_every_n_epoch`` epochs), once ``last_interval_s`` seconds have
    passed since it was last written, and when training ends; so a fault loses at most that time and one epoch.
    Writing every epoch (``last_interval_s=0``) costs short epochs a noticeable share of their time
    (docs/speed.md). Only epoch ends are candidates, as the random state of a resumed run is rebuilt from the
    epoch (:class:`SeedEachEpoch`);
  - a resumed run writes to a new run folder, and Lightning's class then forgets which checkpoint was best so
    far and would call the first validation after resuming the best. This one keeps the best-so-far record of
    the run it resumes. Files of the earlier run are referred to, never deleted (Lightning removes only files
    inside the current ``dirpath``).
"""

from __future__ import annotations

import random
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from src.data.sampling import draw_seed
from src.utils.errors import UserError


class SeedEachEpoch(Callback):
    def __init__(self, seed: int | None = None) -> None:
        self.seed = draw_seed() if seed is None else int(seed)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch_seed = int(np.random.SeedSequence([self.seed, trainer.current_epoch]).generate_state(1)[0])
        torch.manual_seed(epoch_seed)
        np.random.seed(epoch_seed)
        random.seed(epoch_seed)


class ResumableCheckpoint(ModelCheckpoint):
    def __init__(self, *args: Any, last_interval_s: float = 60.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not last_interval_s >= 0:
            raise UserError(
                f"callbacks.model_checkpoint.last_interval_s={last_interval_s}: it must be 0 or more seconds "
                "(0 writes last.ckpt at the end of every training epoch)"
            )
        self.last_interval_s = float(last_interval_s)
        self._last_written_at = time.monotonic()

    @property
    def state_key(self) -> str:
        # Lightning's own key, so that checkpoints written with ModelCheckpoint resume into this class too.
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_written_at = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        # Skipped when this step is saved already (by a validation at this epoch's end).
        if not self.save_last or self._should_skip_saving_checkpoint(trainer):
            return
        due = time.monotonic() - self._last_written_at >= self.last_interval_s
        # Writing is collective (a barrier): every rank follows rank 0's clock, or one would wait for ever.
        if trainer.strategy.broadcast(due):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The final state, unless the last epoch's end (or a validation) wrote it already.
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._last_written_at = time.monotonic()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Present the saved state as if it came from this dirpath: the parent then restores all of it.
        super().load_state_dict({**state_dict, "dirpath": self.dirpath})
