"""The results figure: input, label, U-Net output and its merge/split errors for a few held-out slices; classes in
a fixed colour map with a legend."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from lightning.pytorch.loggers import WandbLogger  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from src.data.labels import IGNORE  # noqa: E402
from src.metrics.isbi import segment_errors, thinned_segments, truth_segments  # noqa: E402
from src.utils.atomic import atomic_path  # noqa: E402

MERGE_COLOUR = (0.9, 0.1, 0.1)  # red: a proposed segment that covers parts of several true cells
SPLIT_COLOUR = (0.1, 0.45, 1.0)  # blue: a true cell cut into several proposed segments


# Class i is drawn in CLASS_COLOURS[i] in every figure of every run (tab10, then tab20's other half); unlabelled black.
CLASS_COLOURS = [plt.get_cmap("tab10")(i)[:3] for i in range(10)] + [
    plt.get_cmap("tab20")(2 * i + 1)[:3] for i in range(10)
]


def class_colours(classes: np.ndarray) -> np.ndarray:
    """RGB picture of a class-id map in :data:`CLASS_COLOURS` (unlabelled pixels black)."""
    palette = np.zeros((256, 3), dtype=np.float32)
    palette[: len(CLASS_COLOURS)] = CLASS_COLOURS
    palette[IGNORE] = 0.0
    return palette[np.asarray(classes, dtype=np.uint8)]


def error_overlay(image: np.ndarray, prob: np.ndarray, label: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """RGB picture of the input with the merge (red) and split (blue) pixels of ``prob > threshold``."""
    merges, splits = segment_errors(truth_segments(label), thinned_segments(prob > threshold))
    grey = np.asarray(image, dtype=np.float32)
    low, high = np.percentile(grey, (1, 99))
    grey = np.clip((grey - low) / max(high - low, 1e-6), 0, 1) * 0.6 + 0.2
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[splits] = SPLIT_COLOUR
    rgb[merges] = MERGE_COLOUR
    return rgb


def results_figure(
    examples: list[dict[str, np.ndarray]],
    path: str | Path,
    title: str = "",
    threshold: float = 0.5,
    class_names: list[str] | None = None,
    boundary: int | None = 0,
) -> Path:
    """Save a grid, a column per slice: input, label (class colours), U-Net output (the cells' probability for two
    classes, else the class map in class colours) and, where there is a probability, its merge/split errors at
    ``threshold``; a legend names the classes.

    Each example holds ``image`` and ``label`` (class ids), ``classes`` (the predicted class map) and/or ``prob``
    (the cells' probability), and optionally ``slice`` (its index).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    class_names = list(class_names or ["membrane", "interior"])
    has_prob = all(example.get("prob") is not None for example in examples)
    show_classes = not has_prob or len(class_names) > 2
    rows = [("input", "gray"), ("label", None), ("U-Net output" + (" (classes)" if show_classes else ""), None)]
    if has_prob:
        rows.append((f"errors at t={threshold:g}\nred merge, blue split", None))
    cols = len(examples)
    fig, axes = plt.subplots(len(rows), cols, figsize=(3 * cols, 3 * len(rows) + 0.6), squeeze=False)
    for col, example in enumerate(examples):
        image = np.asarray(example["image"], dtype=np.float32)
        label = np.asarray(example["label"])
        pictures = [image, class_colours(label)]
        if show_classes:
            pictures.append(class_colours(example["classes"]))
        else:
            pictures.append(np.asarray(example["prob"], dtype=np.float32))
        if has_prob:
            cells = ((label != boundary) & (label != IGNORE)).astype(np.uint8)
            pictures.append(error_overlay(image, np.asarray(example["prob"], dtype=np.float32), cells, threshold))
        for row, ((name, cmap), picture) in enumerate(zip(rows, pictures, strict=True)):
            if row == 2 and not show_classes:
                cmap = "magma"
            ax = axes[row, col]
            ax.imshow(picture, cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name)
        if "slice" in example:
            axes[0, col].set_title(f"slice {int(example['slice'])}")
    if title:
        fig.suptitle(title)
    legend = [Patch(color=CLASS_COLOURS[i % len(CLASS_COLOURS)], label=name) for i, name in enumerate(class_names)]
    fig.legend(handles=legend, loc="lower center", ncol=min(len(legend), 6), frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, path)


class ResultsFigure(L.Callback):
    """After each validation epoch, writes ``val_epoch_XXX.png`` (and ``latest.png``) and logs it to W&B, with
    the slices and their class masks (:mod:`src.evaluation.wandb_pages`).

    Runs after the module has logged the epoch's scores, so the error row uses its best V_rand threshold.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        examples = getattr(pl_module, "figure_examples", [])
        if trainer.sanity_checking or not trainer.is_global_zero or not examples:
            return
        examples = [{k: v.float().numpy() for k, v in e.items()} for e in examples]
        threshold = float(trainer.callback_metrics.get("val/threshold", 0.5))
        epoch = trainer.current_epoch
        title = f"epoch {epoch}"
        names, boundary = getattr(pl_module, "classes", None), getattr(pl_module, "boundary_class", 0)
        path = results_figure(examples, self.dirpath / f"val_epoch_{epoch:03d}.png", title, threshold, names, boundary)
        results_figure(examples, self.dirpath / "latest.png", title, threshold, names, boundary)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="val/results", images=[str(path)], step=trainer.global_step)
        from src.evaluation.wandb_pages import log_masked_slices

        log_masked_slices(trainer, examples, names)


def augmentation_figure(dataset, path: str | Path, count: int = 8) -> Path:
    """Save ``count`` augmented training crops as they reach the network: the image with the label's membrane
    outline (top row) and, when the dataset has border weight maps, the weights (bottom row)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    items = [dataset[i] for i in range(count)]
    has_weights = "weight" in items[0]
    rows = 2 if has_weights else 1
    fig, axes = plt.subplots(rows, count, figsize=(2.2 * count, 2.3 * rows), squeeze=False, layout="constrained")
    for column, item in enumerate(items):
        image = item["image"][0].numpy()
        label = item["label"].numpy()
        axes[0, column].imshow(image, cmap="gray")
        axes[0, column].contour(label, levels=[0.5], colors=[MERGE_COLOUR], linewidths=0.4)
        if has_weights:
            shown = axes[1, column].imshow(item["weight"].numpy(), cmap="magma")
    if has_weights:
        fig.colorbar(shown, ax=list(axes[1]), fraction=0.01, pad=0.01)
    axes[0, 0].set_ylabel("crop + membrane outline", fontsize=8)
    if has_weights:
        axes[1, 0].set_ylabel("border weight map", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("augmented training crops", fontsize=10)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    """Save and close ``fig`` through a hidden temporary file renamed to ``path``: never a half-written PNG."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=80)
    finally:
        plt.close(fig)
    return path
