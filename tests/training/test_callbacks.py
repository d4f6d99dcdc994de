import random
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel

from src.training.callbacks import ResumableCheckpoint, SeedEachEpoch
from src.utils.errors import UserError


def test_a_resumed_run_keeps_the_best_so_far_of_the_run_it_resumes(tmp_path):
    old_dir, new_dir = tmp_path / "old" / "checkpoints", tmp_path / "new" / "checkpoints"
    old_dir.mkdir(parents=True)
    best = old_dir / "epoch_001.ckpt"
    best.write_bytes(b"weights")
    kwargs = {"monitor": "val/vrand", "mode": "max", "save_top_k": 1, "save_last": True}
    saved = ModelCheckpoint(dirpath=old_dir, **kwargs)  # as Lightning's own class wrote it
    saved.best_model_score = torch.tensor(0.93)
    saved.best_model_path = saved.kth_best_model_path = str(best)
    saved.best_k_models = {str(best): torch.tensor(0.93)}
    saved.kth_value = torch.tensor(0.93)
    saved.last_model_path = str(old_dir / "last.ckpt")

    resumed = ResumableCheckpoint(dirpath=new_dir, **kwargs)
    assert resumed.state_key == saved.state_key  # finds the state in checkpoints of either class
    resumed.load_state_dict(saved.state_dict())
    assert float(resumed.best_model_score) == pytest.approx(0.93) and resumed.best_model_path == str(best)
    assert resumed.best_k_models == {str(best): torch.tensor(0.93)}
    # Lightning's own class would forget the score: the first validation after resuming would count as best.
    plain = ModelCheckpoint(dirpath=new_dir, **kwargs)
    with pytest.warns(UserWarning, match="dirpath has changed"):
        plain.load_state_dict(saved.state_dict())
    assert plain.best_model_score is None


def _draws() -> tuple[float, float, float]:
    return torch.rand(()).item(), float(np.random.rand()), random.random()


class _Trainer:
    def __init__(self, epoch: int) -> None:
        self.current_epoch = epoch


def test_each_epoch_starts_from_the_same_random_state_whatever_ran_before():
    callback = SeedEachEpoch(seed=5)
    callback.on_train_epoch_start(_Trainer(3), None)
    first = _draws()
    torch.rand(100), np.random.rand(100), random.random()  # other work in between
    callback.on_train_epoch_start(_Trainer(3), None)
    assert _draws() == first
    callback.on_train_epoch_start(_Trainer(4), None)
    assert _draws() != first
    SeedEachEpoch(seed=6).on_train_epoch_start(_Trainer(3), None)
    assert _draws() != first


class _LastOnDisk(Callback):
    """What last.ckpt holds (its global step, or None) at the start of each training epoch; from epoch 1 on, the
    checkpoint's interval becomes ``later_interval``."""

    def __init__(self, checkpoint: ResumableCheckpoint, later_interval: float) -> None:
        self.checkpoint, self.later_interval = checkpoint, later_interval
        self.seen: list[int | None] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.seen.append(_saved_step(Path(self.checkpoint.dirpath) / "last.ckpt"))
        if trainer.current_epoch == 1:
            self.checkpoint.last_interval_s = self.later_interval


def _saved_step(path: Path) -> int | None:
    return torch.load(path, weights_only=True)["global_step"] if path.is_file() else None


def _fit(tmp_path: Path, interval: float, later_interval: float) -> tuple[int, list[int | None], int | None]:
    """Three epochs of two steps: the global step at the end, last.ckpt's step at each epoch start and at the end."""
    checkpoint = ResumableCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0, last_interval_s=interval)
    on_disk = _LastOnDisk(checkpoint, later_interval)
    trainer = L.Trainer(
        max_epochs=3,
        limit_train_batches=2,
        limit_val_batches=0,
        callbacks=[checkpoint, on_disk],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(BoringModel())
    return trainer.global_step, on_disk.seen, _saved_step(tmp_path / "last.ckpt")


def test_last_ckpt_is_written_every_epoch_with_no_interval(tmp_path):
    assert _fit(tmp_path, 0, 0) == (6, [None, 2, 4], 6)  # after epochs 0 and 1, and at the end


def test_last_ckpt_waits_for_its_interval_but_is_always_written_at_the_end(tmp_path):
    # No epoch end comes an hour after the start: written only when training ends.
    assert _fit(tmp_path / "a", 3600, 3600) == (6, [None, None, None], 6)
    # Written after epoch 0 (interval 0), then not for an hour: the end still writes the final state.
    assert _fit(tmp_path / "b", 0, 3600) == (6, [None, 2, 2], 6)


def test_a_negative_last_interval_is_refused():
    with pytest.raises(UserError, match="last_interval_s=-1"):
        ResumableCheckpoint(last_interval_s=-1)
