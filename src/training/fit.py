"""Fitting and testing a module as ``src.train`` does: resume, fit, keep the final weights if they are the best,
test the best checkpoint, and the record of what the run reached."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig

from src.models.checkpoint import check_resumable, resume_path


def scalar_metrics(metrics: dict) -> dict[str, float]:
    """Logged metrics as floats; thresholds (logged as float32, 0.699999...) rounded back to their grid."""
    return {key: round(float(v), 6) if key.endswith("threshold") else float(v) for key, v in metrics.items()}


def validate_final_weights(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule) -> None:
    """Validate the weights training ended with, if no validation saw them, and keep them if they are the best.

    Training stopped by ``max_time`` (or an epoch count not divisible by ``check_val_every_n_epoch``) ends
    between validations; without this, the last steps, taken at the lowest learning rate, would never count.
    """
    checkpoint = trainer.checkpoint_callback
    if checkpoint is None or not checkpoint.monitor or trainer.fast_dev_run or trainer.interrupted:
        return
    if getattr(module, "last_validated_step", None) == trainer.global_step:
        return
    results = trainer.validate(module, datamodule=datamodule, verbose=False)
    score = results[0].get(checkpoint.monitor) if results else None
    best = checkpoint.best_model_score
    better = score is not None and (best is None or (score > best if checkpoint.mode == "max" else score < best))
    if better:
        path = str(Path(checkpoint.dirpath) / f"final_step_{trainer.global_step:06d}.ckpt")
        trainer.save_checkpoint(path)
        checkpoint.best_model_path = path
        checkpoint.best_model_score = torch.tensor(score)
        rank_zero_info("final weights are the best on %s (%.5f); saved %s", checkpoint.monitor, score, path)


def fit(cfg: DictConfig, trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule) -> dict:
    """``trainer.fit`` (resuming from ``cfg.ckpt_path``) when ``cfg.train``; returns what ``metrics.json`` records
    of it: the fit's metrics, where it resumed from, and the best checkpoint with its score (read now: testing
    from a checkpoint resets the checkpoint callback's record)."""
    resume_from = resume_path(cfg) if cfg.train else None
    if cfg.train:
        if resume_from:
            check_resumable(resume_from, dict(module.hparams["net"]))
            rank_zero_info("resuming from %s", resume_from)
        # weights_only: resuming runs no code from the checkpoint file either.
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        validate_final_weights(trainer, module, datamodule)
    checkpoint = trainer.checkpoint_callback
    best_score = checkpoint.best_model_score if checkpoint else None
    return {
        "metrics": scalar_metrics(trainer.callback_metrics),
        "resumed_from": resume_from,
        "best_checkpoint": (checkpoint.best_model_path if checkpoint else "") or None,
        "best_score": float(best_score) if best_score is not None else None,
    }


def evaluate_best(
    trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule, fitted: dict
) -> dict:
    """Test the fit's best checkpoint (the module's own weights if none was kept), loading it into ``module``."""
    # verbose=False: the run's one printed score is the headline of the held-out evaluation that follows.
    trainer.test(module, datamodule=datamodule, ckpt_path=fitted["best_checkpoint"], weights_only=True, verbose=False)
    return scalar_metrics(trainer.callback_metrics)


def run_record(cfg: DictConfig, trainer: L.Trainer, fitted: dict, tested: dict) -> dict:
    """What ``metrics.json`` holds of the fit and test: metrics, best checkpoint, steps, world size."""
    value = fitted["best_score"] if fitted["best_score"] is not None else fitted["metrics"].get(cfg.optimized_metric)
    return {
        "about": {
            "headline": "the held-out score of the inference recipe's scored output (held_out.headline)",
            "held_out": "the held-out slices predicted by the inference recipe; each section says what it scores",
            "metrics": "what Lightning logged: train/* over the last epoch; val/* on the validation slices at the "
            "last validation (the best checkpoint is chosen on optimized_metric, best-on-validation); test/* on "
            "the held-out slices with the best weights, whole slices, no test-time augmentation (test_per_slice: "
            "the same per slice, gathered from every process)",
        },
        "metrics": {**fitted["metrics"], **tested},
        "best_checkpoint": fitted["best_checkpoint"],
        "optimized_metric": cfg.optimized_metric,
        "optimized_value": value,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "world_size": trainer.world_size,
        "resumed_from": str(fitted["resumed_from"]) if fitted["resumed_from"] else None,
    }
