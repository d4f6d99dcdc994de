"""What a Weights & Biases run page shows beyond Lightning's curves: the held-out scores in the run's summary, a
table of per-slice scores, and at each validation the results figure's slices with the predicted and labelled
classes as masks that the page overlays and toggles (``wandb.Image`` masks)."""

from __future__ import annotations

import numpy as np
from lightning.pytorch.loggers import WandbLogger

from src.data.labels import IGNORE
from src.evaluation.held_out import SCORED_SECTION

SCORE_COLUMNS = ("vrand", "vinfo", "rand_split", "rand_merge", "pixel_error")


def wandb_loggers(trainer) -> list[WandbLogger]:
    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


def held_out_summary(held_out: dict) -> dict:
    """The run summary's held-out entries: the headline's V_rand, V_info, per-class and mean Dice, what it scored."""
    headline = held_out["headline"]
    summary = {"held_out/scored": headline["what"], "held_out/slices": list(headline["slices"])}
    summary.update({f"held_out/{key}": headline[key] for key in ("vrand", "vinfo", "mean_dice") if key in headline})
    summary.update({f"held_out/dice/{name}": value for name, value in headline["dice"].items()})
    return summary


def per_slice_table(held_out: dict) -> tuple[list[str], list[list]]:
    """Columns and rows of the per-slice table: the scored output's V_rand, V_info, split and merge scores and
    pixel error (where the classes name a boundary), then the class map's Dice per class."""
    names = held_out["classes"]["names"]
    dice = {row["slice"]: row["dice"] for row in held_out["classes"]["per_slice"]}
    section = held_out.get(SCORED_SECTION.get(held_out["headline"]["scored"], ""), {})
    scored = {row["slice"]: row for row in section.get("per_slice", [])}
    metrics = [m for m in SCORE_COLUMNS if scored and m in next(iter(scored.values()))]
    columns = ["slice", *metrics, *(f"dice_{name}" for name in names)]
    rows = [
        [int(z), *(float(scored[z][m]) for m in metrics), *(float(dice[z][name]) for name in names)]
        for z in held_out["slices"]
    ]
    return columns, rows


def log_held_out(trainer, held_out: dict) -> None:
    """The held-out scores into each W&B run's summary, and the per-slice table."""
    for logger in wandb_loggers(trainer):
        logger.experiment.summary.update(held_out_summary(held_out))
        columns, rows = per_slice_table(held_out)
        logger.log_table(key="held_out/per_slice", columns=columns, data=rows)


def masked_slices(examples: list[dict], names: list[str]) -> tuple[list[np.ndarray], dict]:
    """The figure's slices as 8-bit images, and ``log_image``'s ``masks`` and ``caption`` arguments: each slice's
    predicted classes and its labels (unlabelled pixels as their own value), named by class."""
    labels = dict(enumerate(names)) | {len(names): "unlabelled"}
    images, masks, captions = [], [], []
    for example in examples:
        image = np.asarray(example["image"], np.float32)
        low, high = float(image.min()), float(image.max())
        images.append(np.round(255 * (image - low) / max(high - low, 1e-6)).astype(np.uint8))
        label = np.asarray(example["label"]).astype(np.int64)
        label[label == IGNORE] = len(names)
        masks.append(
            {
                "prediction": {"mask_data": np.asarray(example["classes"], np.uint8), "class_labels": labels},
                "ground_truth": {"mask_data": label.astype(np.uint8), "class_labels": labels},
            }
        )
        captions.append(f"slice {int(example['slice'])}" if "slice" in example else "")
    return images, {"masks": masks, "caption": captions}


def log_masked_slices(trainer, examples: list[dict], names: list[str] | None) -> None:
    """At a validation: the results figure's slices with their class masks, under ``val/slices``."""
    loggers = wandb_loggers(trainer)
    if not loggers or not examples:
        return
    images, extra = masked_slices(examples, list(names or ["background", "foreground"]))
    for logger in loggers:
        logger.log_image(key="val/slices", images=images, step=trainer.global_step, **extra)


def finish_runs(trainer) -> None:
    """End each W&B run of a finished task: Lightning leaves it open, and the next job of a multirun in the same
    process (Hydra's basic launcher) would otherwise log into it instead of starting its own."""
    for logger in wandb_loggers(trainer):
        if logger._experiment is not None:
            logger.experiment.finish()
