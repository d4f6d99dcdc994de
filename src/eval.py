"""Test a checkpoint on the held-out slices: ``python -m src.eval ckpt_path=...``.

Predicts the slices by the checkpoint's inference recipe (any recipe key on the command line overrides it; learned
edges read the run's classifier, or fit one on the training slices of the fold when it has none), scores
every output by the ISBI 2012 protocol with the ``compare`` methods beside, and writes in the run directory
``metrics.json`` (the ``headline`` and every score labelled), ``report.md`` (the same as training's),
``predictions/`` and ``figures/test_slices.png``. Ends with the headline line.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.utils.cli import run_task

log = logging.getLogger(__name__)


def _held_out_fold(cfg: DictConfig, recipe: dict) -> None:
    """The fold training held out (saved in its recipe), unless the command line names one."""
    from hydra.core.hydra_config import HydraConfig

    given = {override.split("=")[0].lstrip("+~") for override in HydraConfig.get().overrides.task}
    for key, value in (recipe.get("held_out") or {}).items():
        if f"data.{key}" not in given:
            cfg.data[key] = value


def _checked_recipe(checkpoint: dict, cfg: DictConfig) -> tuple[dict, str]:
    """The recipe with this command's keys must be one inference runs (its post-processing one this network's
    outputs feed), and the data config must name the checkpoint's classes, in its order: all refused from the
    checkpoint's contents, before Lightning. The recipe and where it came from."""
    from src.data.labels import class_map_of
    from src.inference.recipe import checkpoint_recipe
    from src.models.checkpoint import saved_outputs
    from src.postprocess.instances import build_postprocess
    from src.utils.errors import UserError

    recipe, source = checkpoint_recipe(checkpoint["hyper_parameters"].get("inference"), cfg)
    classes, _, offsets = saved_outputs(checkpoint["hyper_parameters"])
    if recipe["postprocess"]:  # its settings, and whether this network has the outputs it reads
        build_postprocess(recipe["postprocess"], offsets)
    names = class_map_of(cfg.data).names
    if names != classes:
        raise UserError(
            f"checkpoint {cfg.ckpt_path} predicts the classes {classes} but data.classes names {names}; "
            "choose the data config the checkpoint was trained on"
        )
    return recipe, source


def _figure(outputs: list, held_out: dict, module, output_dir: Path) -> str:
    """The held-out slices' figure (image, labels, prediction, errors), its path relative to ``output_dir``."""
    from src.evaluation.figures import results_figure

    swept = held_out.get("threshold")
    title = f"held-out slices, mean Dice {held_out['classes']['mean_dice']:.4f}"
    path = results_figure(
        outputs,
        output_dir / "figures" / "test_slices.png",
        title=title + (f", V_rand {swept['vrand']:.4f}" if swept else ""),
        threshold=swept["threshold"] if swept else 0.5,
        class_names=module.classes,
        boundary=module.boundary_class,
    )
    return str(path.relative_to(output_dir))


def evaluate(cfg: DictConfig) -> dict:
    from src.data.preflight import checked_source
    from src.models.checkpoint import read_checkpoint
    from src.utils.errors import UserError

    # a bad setting or checkpoint, then the user's own stacks, fail here, before Lightning's seconds of imports
    if cfg.figure_slices < 0:
        raise UserError(f"figure_slices={cfg.figure_slices} must be 0 (no figure) or more")
    checkpoint = read_checkpoint(cfg.ckpt_path)
    recipe, source = _checked_recipe(checkpoint, cfg)
    data_source = checked_source(cfg.data)
    import lightning as L
    from hydra.utils import instantiate

    from src.data.sources import source_calibration
    from src.evaluation.edge_classifier import with_fitted_edges
    from src.evaluation.held_out import class_table, headline_line, predict_slices, score_held_out
    from src.evaluation.report import markdown_report
    from src.inference.recipe import describe
    from src.models.checkpoint import load_module
    from src.training.build import build_trainer
    from src.utils.atomic import write_json_atomic, write_text_atomic
    from src.utils.run_record import save_run_record

    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    module = load_module(cfg.ckpt_path, checkpoint=checkpoint)
    _held_out_fold(cfg, recipe)
    datamodule = instantiate(cfg.data, source=data_source)
    trainer = build_trainer(cfg, logger=False, callbacks=[])
    datamodule.prepare_data()
    datamodule.setup("test")
    output_dir = Path(cfg.paths.output_dir)
    save_run_record(output_dir, cfg)
    log.info("inference: %s (%s)", describe(recipe), source)
    module.to(trainer.strategy.root_device)
    compare = OmegaConf.to_container(cfg.compare, resolve=True) if cfg.get("compare") else None
    recipe = with_fitted_edges(module, datamodule, trainer, recipe, output_dir)  # learned edges not fitted yet
    dataset, images, labels = datamodule.held_out("test")
    outputs = predict_slices(module, dataset, trainer, recipe)
    classes, offsets, calibration = module.classes, module.offsets, source_calibration(datamodule.source)
    held_out = score_held_out(
        outputs, recipe, output_dir, images, compare, classes, module.boundary_class, labels, offsets, calibration
    )
    result = {"headline": held_out["headline"], "checkpoint": str(Path(cfg.ckpt_path).resolve()), **held_out}
    figure = _figure(outputs[: cfg.figure_slices], held_out, module, output_dir) if cfg.figure_slices > 0 else None
    write_json_atomic(output_dir / "metrics.json", result)
    write_text_atomic(output_dir / "report.md", markdown_report(held_out, result["checkpoint"], figure))
    log.info("held-out per-class scores of the class map:\n%s", class_table(held_out["classes"]))
    log.info("metrics, report, predictions and figure written to %s", output_dir)
    log.info(headline_line(result["headline"]))
    return result


def main() -> None:
    run_task(evaluate, "eval")


if __name__ == "__main__":
    main()
