"""The seed's results figure: input, label and U-Net output for a few held-out slices."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from lightning.pytorch.loggers import WandbLogger  # noqa: E402


def results_figure(examples: list[dict[str, np.ndarray]], path: str | Path, title: str = "") -> Path:
    """Save a 3-row grid (input, label, interior probability) with one column per example slice."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = len(examples)
    fig, axes = plt.subplots(3, cols, figsize=(3 * cols, 9), squeeze=False)
    for col, example in enumerate(examples):
        for row, (key, name, cmap) in enumerate(
            (("image", "input", "gray"), ("label", "label", "gray"), ("prob", "U-Net output", "magma"))
        ):
            ax = axes[row, col]
            ax.imshow(np.asarray(example[key], dtype=np.float32), cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)
    return path


class ResultsFigure(L.Callback):
    """After each validation epoch, writes ``val_epoch_XXX.png`` (and ``latest.png``) and logs it to W&B."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        examples = getattr(pl_module, "figure_examples", [])
        if trainer.sanity_checking or not trainer.is_global_zero or not examples:
            return
        examples = [{k: v.float().numpy() for k, v in e.items()} for e in examples]
        epoch = trainer.current_epoch
        path = results_figure(examples, self.dirpath / f"val_epoch_{epoch:03d}.png", f"epoch {epoch}")
        results_figure(examples, self.dirpath / "latest.png", f"epoch {epoch}")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="val/results", images=[str(path)], step=trainer.global_step)
