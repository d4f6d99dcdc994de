"""Fitting as src.train does: where to resume from, keeping the final weights when they are the best."""

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf

from src.data.datamodule import EMDataModule
from src.data.sources import SyntheticSource
from src.models.module import SegmentationModule
from src.training.fit import evaluate_best, fit, run_record, scalar_metrics


def test_thresholds_are_rounded_back_to_their_grid():
    metrics = scalar_metrics({"val/threshold": torch.tensor(0.7, dtype=torch.float32), "val/vrand": torch.tensor(0.5)})
    assert metrics == {"val/threshold": 0.7, "val/vrand": 0.5}


def test_final_weights_no_validation_saw_are_validated_kept_and_tested(tmp_path):
    torch.manual_seed(0)
    datamodule = EMDataModule(SyntheticSource(num_slices=5, size=64, num_cells=8), crop_size=32, train_samples=4)
    module = SegmentationModule(
        net={"_target_": "src.models.unet.UNet", "depth": 2, "base_channels": 4},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01},
    )
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="val/vrand", mode="max")
    trainer = L.Trainer(
        max_steps=3,
        check_val_every_n_epoch=1000,  # no validation during training: only the final weights
        callbacks=[checkpoint],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=tmp_path,
    )
    cfg = OmegaConf.create({"train": True, "ckpt_path": None, "optimized_metric": "val/vrand"})
    fitted = fit(cfg, trainer, module, datamodule)
    assert fitted["resumed_from"] is None and trainer.global_step == 3
    assert Path(checkpoint.best_model_path) == tmp_path / "final_step_000003.ckpt"
    best_score = float(checkpoint.best_model_score)
    assert best_score == pytest.approx(fitted["metrics"]["val/vrand"])
    tested = evaluate_best(trainer, module, datamodule, fitted)
    record = run_record(cfg, trainer, fitted, tested)
    assert record["optimized_value"] == pytest.approx(best_score)
    assert record["best_checkpoint"] == str(tmp_path / "final_step_000003.ckpt") and record["global_step"] == 3
    assert "test/vrand" in record["metrics"] and "val/vrand" in record["metrics"]
    json.dumps(record)  # what metrics.json holds is plain data
