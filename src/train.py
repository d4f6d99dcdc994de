"""Train a U-Net: ``python -m src.train [overrides]``; fits, then tests the best checkpoint on held-out slices.

Returns (for Hydra sweepers) the value of ``optimized_metric`` for the best checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.evaluation.figures import augmentation_figure
from src.evaluation.held_out import held_out_evaluation
from src.inference.tta import tta_transforms
from src.training.build import build_module, build_trainer, instantiate_group
from src.training.fit import evaluate_best, fit, run_record
from src.utils.atomic import write_json_atomic
from src.utils.cli import run_task
from src.utils.run_record import print_config_tree, save_run_record

log = logging.getLogger(__name__)


def _log_held_out(held_out: dict, slices: list[int], output_dir: Path) -> None:
    parts = [f"threshold V_rand {held_out['threshold']['vrand']:.4f} V_info {held_out['threshold']['vinfo']:.4f}"]
    if "contours" in held_out:
        parts.append("contour map V_rand {vrand:.4f} V_info {vinfo:.4f}".format(**held_out["contours"]))
    if "postprocess" in held_out:
        parts.append("{method} V_rand {vrand:.4f} V_info {vinfo:.4f}".format(**held_out["postprocess"]))
    log.info(
        "held-out slices %s (TTA %s): %s; written to %s",
        slices,
        held_out["tta"],
        "; ".join(parts),
        output_dir / "predictions",
    )


def train(cfg: DictConfig) -> float | None:
    import lightning as L

    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    datamodule = instantiate(cfg.data)
    module = build_module(cfg)
    loggers = instantiate_group(cfg.get("logger"))
    trainer = build_trainer(cfg, callbacks=instantiate_group(cfg.get("callbacks")), logger=loggers or False)
    if trainer.local_rank == 0:
        datamodule.prepare_data()  # fail on missing or bad data before anything is written
    if trainer.is_global_zero:
        print_config_tree(cfg)
        save_run_record(output_dir, cfg)
        for logger in trainer.loggers:
            logger.log_hyperparams(dict(cfg=OmegaConf.to_container(cfg, resolve=True)))
        if cfg.train and cfg.get("augmentation_preview", 0) > 0:
            datamodule.setup("fit")
            path = output_dir / "figures" / "augmented_crops.png"
            figure = augmentation_figure(datamodule.train_dataloader().dataset, path, cfg.augmentation_preview)
            log.info("augmented training crops: %s", figure)

    fitted = fit(cfg, trainer, module, datamodule)
    tested = (
        evaluate_best(trainer, module, datamodule, fitted) if cfg.test else {}
    )  # loads the best weights into `module`
    record = run_record(cfg, trainer, fitted, tested)
    if trainer.is_global_zero:
        if cfg.test:
            method = instantiate(cfg.postprocess) if cfg.get("postprocess") else None
            test_slices = datamodule.subset("test")
            tta = tta_transforms(cfg.test_tta, "test_tta")
            record["held_out"] = held_out_evaluation(module, test_slices, trainer, method, tta, output_dir)
            record["test_per_slice"] = getattr(module, "test_report", {}).get("per_slice", [])
            _log_held_out(record["held_out"], datamodule.splits["test"], output_dir)
        write_json_atomic(output_dir / "metrics.json", record)
        log.info("world size %d; outputs in %s", trainer.world_size, output_dir)
    for logger in trainer.loggers:
        logger.finalize("success")
    return record["optimized_value"]


def main() -> None:
    run_task(train, "train")


if __name__ == "__main__":
    main()
