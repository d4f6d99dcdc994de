"""Train a U-Net: ``python -m src.train [overrides]``; fits, then predicts the held-out slices with the best
weights by the inference recipe, scores them and ends with one headline line (also in metrics.json, report.md).

Returns (for Hydra sweepers) the value of ``optimized_metric`` for the best checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.utils.cli import run_task

# Torch, Lightning and our modules are imported inside the functions, once the config is composed: a bad key
# then fails in about a second instead of after several seconds of imports (docs/speed.md).
log = logging.getLogger(__name__)


def _log_held_out(held_out: dict, output_dir: Path) -> None:
    from src.evaluation.held_out import class_table
    from src.inference.recipe import describe

    parts = [f"{held_out['classes']['what']}: mean Dice {held_out['classes']['mean_dice']:.4f}"]
    for key in ("threshold", "contours", "postprocess"):
        if key in held_out:
            parts.append(f"{held_out[key]['what']}: V_rand {held_out[key]['vrand']:.4f}")
    log.info("held-out slices %s by %s", held_out["slices"], describe(held_out["recipe"]))
    log.info("held-out per-class scores of the class map:\n%s", class_table(held_out["classes"]))
    log.info("scores: %s; stacks in %s", "; ".join(parts), output_dir / "predictions")


def _test(module, datamodule, trainer, output_dir: Path, record: dict) -> dict:
    """The held-out evaluation by the module's inference recipe (learned edges fitted first on the training
    slices): ``record`` with the headline first and every score, report.md beside, the headline's V_rand and
    V_info logged to the run's loggers (W&B, CSV)."""
    from src.data.sources import source_calibration
    from src.evaluation.edge_classifier import with_fitted_edges
    from src.evaluation.held_out import held_out_evaluation
    from src.evaluation.report import markdown_report
    from src.evaluation.wandb_pages import log_held_out
    from src.utils.atomic import write_text_atomic

    dataset, images, labels = datamodule.held_out("test")
    calibration = source_calibration(datamodule.source)  # the held-out TIFFs state the data's voxel size
    recipe = with_fitted_edges(module, datamodule, trainer, module.hparams.inference, output_dir)
    held_out = held_out_evaluation(module, dataset, trainer, recipe, output_dir, images, None, labels, calibration)
    _log_held_out(held_out, output_dir)
    report = markdown_report(held_out, checkpoint=record["best_checkpoint"] or "the final weights (none kept)")
    write_text_atomic(output_dir / "report.md", report)
    headline = held_out["headline"]
    for logger in trainer.loggers:
        scores = {f"headline/{key}": headline[key] for key in ("vrand", "vinfo", "mean_dice") if key in headline}
        scores.update({f"headline/dice/{name}": value for name, value in headline["dice"].items()})
        logger.log_metrics(scores, step=trainer.global_step)
    log_held_out(trainer, held_out)  # W&B: the scores in the run's summary, the per-slice table
    test_per_slice = getattr(module, "test_report", {}).get("per_slice", [])
    return {"headline": headline, **record, "held_out": held_out, "test_per_slice": test_per_slice}


def train(cfg: DictConfig) -> float | None:
    from src.data.preflight import checked_source
    from src.training.config_checks import check_training_config, check_training_parts

    check_training_config(cfg)  # bad settings or stacks fail here, before Lightning's seconds of imports
    source = checked_source(cfg.data)
    check_training_parts(cfg)  # then the optimizer, loss, augmentation and post-processing (torch, no Lightning)
    import lightning as L
    from hydra.utils import instantiate

    from src.evaluation.figures import augmentation_figure
    from src.evaluation.held_out import headline_line
    from src.evaluation.wandb_pages import finish_runs
    from src.training.build import build_module, build_trainer, instantiate_group
    from src.training.fit import evaluate_best, fit, run_record
    from src.utils.atomic import write_json_atomic
    from src.utils.run_record import print_config_tree, save_run_record

    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    datamodule = instantiate(cfg.data, source=source)
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
        datamodule.setup("fit")  # each process reads its data in fit; this one records how, before training
        write_json_atomic(output_dir / "data.json", datamodule.describe())
        if cfg.train and cfg.get("augmentation_preview", 0) > 0:
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
            record = _test(module, datamodule, trainer, output_dir, record)
        write_json_atomic(output_dir / "metrics.json", record)
        log.info("world size %d; outputs in %s", trainer.world_size, output_dir)
    for logger in trainer.loggers:
        logger.finalize("success")
    finish_runs(trainer)
    if trainer.is_global_zero and "headline" in record:
        log.info(headline_line(record["headline"]))  # the run's last line: its one score
    return record["optimized_value"]


def main() -> None:
    run_task(train, "train")


if __name__ == "__main__":
    main()
