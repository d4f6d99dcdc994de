import random

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from src.utils.resumable import ResumableCheckpoint, SeedEachEpoch


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
