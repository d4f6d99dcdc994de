"""The results figure: input, label, U-Net output and its merge/split errors for a few held-out slices."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from lightning.pytorch.loggers import WandbLogger  # noqa: E402

from src.metrics.isbi import segment_errors, thinned_segments, truth_segments  # noqa: E402
from src.utils.atomic import atomic_path  # noqa: E402

MERGE_COLOUR = (0.9, 0.1, 0.1)  # red: a proposed segment that covers parts of several true cells
SPLIT_COLOUR = (0.1, 0.45, 1.0)  # blue: a true cell cut into several proposed segments


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
    examples: list[dict[str, np.ndarray]], path: str | Path, title: str = "", threshold: float = 0.5
) -> Path:
    """Save a 4-row grid (input, label, interior probability, errors at ``threshold``), a column per slice.

    Each example holds ``image``, ``label`` and ``prob`` arrays, and optionally ``slice`` (its index).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = len(examples)
    fig, axes = plt.subplots(4, cols, figsize=(3 * cols, 12), squeeze=False)
    rows = (
        ("input", "gray"),
        ("label", "gray"),
        ("U-Net output", "magma"),
        (f"errors at t={threshold:g}\nred merge, blue split", None),
    )
    for col, example in enumerate(examples):
        image, label, prob = (np.asarray(example[k], dtype=np.float32) for k in ("image", "label", "prob"))
        pictures = (image, label, prob, error_overlay(image, prob, label, threshold))
        for row, ((name, cmap), picture) in enumerate(zip(rows, pictures, strict=True)):
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
    fig.tight_layout()
    return _save(fig, path)


class ResultsFigure(L.Callback):
    """After each validation epoch, writes ``val_epoch_XXX.png`` (and ``latest.png``) and logs it to W&B.

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
        path = results_figure(examples, self.dirpath / f"val_epoch_{epoch:03d}.png", title, threshold)
        results_figure(examples, self.dirpath / "latest.png", title, threshold)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="val/results", images=[str(path)], step=trainer.global_step)


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
