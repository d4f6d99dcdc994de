"""Train a U-Net: ``python -m src.train [overrides]``; fits, then tests the best checkpoint on held-out slices.

Returns (for Hydra sweepers) the value of ``optimized_metric`` for the best checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig

from src.eval import held_out_evaluation
from src.inference.tiling import tta_transforms
from src.models.checkpoint import check_resumable, find_last_checkpoint
from src.utils.cli import run_task
from src.utils.figures import augmentation_figure
from src.utils.instantiate import build_module, build_trainer, instantiate_group
from src.utils.run_dir import print_config_tree, save_run_record, write_json_atomic

log = logging.getLogger(__name__)


def _scalar_metrics(metrics: dict) -> dict[str, float]:
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


def resume_path(cfg: DictConfig) -> str | None:
    """``cfg.ckpt_path``, with ``last`` meaning the newest ``last.ckpt`` of the earlier runs of this task."""
    ckpt_path = cfg.get("ckpt_path")
    if str(ckpt_path) == "last":
        return str(find_last_checkpoint(Path(cfg.paths.log_dir) / cfg.task_name, cfg.paths.output_dir))
    return str(ckpt_path) if ckpt_path else None


def train(cfg: DictConfig) -> float | None:
    from hydra.utils import instantiate

    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    datamodule = instantiate(cfg.data)
    module = build_module(cfg)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer = build_trainer(cfg, callbacks=callbacks, logger=loggers or False)
    if trainer.local_rank == 0:
        datamodule.prepare_data()  # fail on missing or bad data before anything is written
    if trainer.is_global_zero:
        print_config_tree(cfg)
        save_run_record(output_dir, cfg)
        for logger in trainer.loggers:
            logger.log_hyperparams(dict(cfg=cfg_to_dict(cfg)))

    if cfg.train and trainer.is_global_zero and cfg.get("augmentation_preview", 0) > 0:
        datamodule.setup("fit")
        figure = augmentation_figure(
            datamodule.train_dataloader().dataset,
            output_dir / "figures" / "augmented_crops.png",
            cfg.augmentation_preview,
        )
        log.info("augmented training crops: %s", figure)
    resume_from = resume_path(cfg) if cfg.train else None
    if cfg.train:
        if resume_from:
            check_resumable(resume_from, dict(module.hparams["net"]))
            rank_zero_info("resuming from %s", resume_from)
        # weights_only: resuming runs no code from the checkpoint file either.
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        validate_final_weights(trainer, module, datamodule)
    fit_metrics = _scalar_metrics(trainer.callback_metrics)

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    test_metrics: dict[str, float] = {}
    if cfg.test:
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        test_metrics = _scalar_metrics(trainer.callback_metrics)

    held_out = None
    if cfg.test and trainer.is_global_zero:
        # trainer.test loaded the best weights into `module`.
        held_out = held_out_evaluation(
            module, datamodule, trainer, cfg.get("postprocess"), tta_transforms(cfg.test_tta), output_dir
        )
        log.info(
            "held-out slices %s (TTA %s): threshold V_rand %.4f V_info %.4f%s%s; written to %s",
            datamodule.splits["test"],
            held_out["tta"],
            held_out["threshold"]["vrand"],
            held_out["threshold"]["vinfo"],
            "; contour map V_rand {vrand:.4f} V_info {vinfo:.4f}".format(**held_out["contours"])
            if "contours" in held_out
            else "",
            "; {method} V_rand {vrand:.4f} V_info {vinfo:.4f}".format(**held_out["postprocess"])
            if "postprocess" in held_out
            else "",
            output_dir / "predictions",
        )

    best_score = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
    value = float(best_score) if best_score is not None else fit_metrics.get(cfg.optimized_metric)
    if trainer.is_global_zero:
        record = {
            "metrics": {**fit_metrics, **test_metrics},
            "best_checkpoint": best or None,
            "optimized_metric": cfg.optimized_metric,
            "optimized_value": value,
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "world_size": trainer.world_size,
            "resumed_from": str(resume_from) if resume_from else None,
        }
        if held_out is not None:
            record["held_out"] = held_out
        if cfg.test:
            record["test_per_slice"] = getattr(module, "test_report", {}).get("per_slice", [])
        write_json_atomic(output_dir / "metrics.json", record)
        log.info("world size %d; outputs in %s", trainer.world_size, output_dir)
    for logger in trainer.loggers:
        logger.finalize("success")
    return value


def cfg_to_dict(cfg: DictConfig) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)


def main() -> None:
    run_task(train, "train")


if __name__ == "__main__":
    main()
