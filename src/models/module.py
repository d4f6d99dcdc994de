"""The LightningModule that trains a U-Net to give every pixel one of the data config's classes.

It knows nothing of files: the network, optimizer and scheduler arrive as configs (plain dicts with a
``_target_``), so the checkpoint's hyperparameters are plain data and rebuild the same network.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Timer

from src.data.labels import IGNORE
from src.inference.class_outputs import cell_probability
from src.metrics.torchmetrics_classes import ClassScores
from src.metrics.torchmetrics_isbi import ISBIScores
from src.models.affinities import AffinityLoss, affinity_targets
from src.models.losses import CrossEntropy
from src.models.network import NetworkOutputs
from src.models.schedules import run_progress
from src.utils.errors import NonFiniteLossError, UserError


def _center_crop_to(label: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top = (label.shape[-2] - height) // 2
    left = (label.shape[-1] - width) // 2
    return label[..., top : top + height, left : left + width]


class SegmentationModule(NetworkOutputs, L.LightningModule):
    """U-Net + a configurable loss, with per-stage pixel metrics and the ISBI scores on whole held-out slices.

    Args:
        net: config of the network (``_target_: src.models.unet.build_unet`` or ``UNet`` and its arguments).
        optimizer: partial config of a ``torch.optim`` optimizer.
        scheduler: partial config of a schedule from :mod:`src.models.schedules` (stepped per batch), or None.
        channels_last: run convolutions in channels-last memory format (faster on CPUs and recent GPUs).
        figure_slices: how many validation slices to keep for the results figure.
        loss: config of a loss from :mod:`src.models.losses` (default: plain cross-entropy).
        inference: the inference recipe training scored the held-out slices with (:mod:`src.inference.recipe`),
            kept in the checkpoint for ``src.predict`` and ``src.eval``.
        classes: the class names, in the order of the network's output channels.
        boundary_class: the index of the class whose complement makes the cells V_rand / V_info score (membranes),
            or None when the classes have none (then only per-class Dice and IoU are scored).
        affinities: ``{"offsets": [[dy, dx], ...], "loss": "dice", "weight": 1.0}`` when the network also predicts
            affinities (``model.target=affinities``, :mod:`src.models.affinities`): one output channel per offset
            after the class channels, trained with that loss beside the class loss; None for classes alone.
    """

    def __init__(
        self,
        net: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        channels_last: bool = True,
        figure_slices: int = 3,
        loss: dict | None = None,
        inference: dict | None = None,
        classes: list[str] | None = None,
        boundary_class: int | None = 0,
        affinities: dict | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.build_network(net, classes, boundary_class, affinities, channels_last)
        self.affinity_loss = AffinityLoss(affinities.get("loss", "dice"), offsets=self.offsets) if affinities else None
        self.nearest_cell = bool(affinities) and affinities.get("boundary") == "nearest_cell"  # affinity targets
        self.loss = instantiate(loss) if loss else CrossEntropy()
        # Accuracy and per-class Dice and IoU from one confusion matrix a batch (src/metrics/torchmetrics_classes.py).
        self.train_pixel = ClassScores(self.classes, prefix="train/")
        self.val_pixel = ClassScores(self.classes, prefix="val/")
        self.test_pixel = ClassScores(self.classes, prefix="test/")
        self.val_isbi = ISBIScores()
        self.test_isbi = ISBIScores()
        self.figure_examples: list[dict[str, torch.Tensor]] = []
        self.train_clock_s = 0.0  # seconds of training the schedule reads: rank 0's, shared (_share_clock)

    # ----- steps -------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        image = batch["image"].contiguous(memory_format=self.memory_format)
        logits = self.net(image)
        # An ensemble (src.models.unet.UNetEnsemble) returns each member's logits, stacked along the batch axis.
        members = logits.shape[0] // image.shape[0]
        label = _center_crop_to(batch["label"], *logits.shape[-2:]).repeat(members, 1, 1)
        weight = batch.get("weight")
        if weight is None and getattr(self.loss, "needs_weight_map", False):
            raise UserError(
                f"{type(self.loss).__name__}(weighted=True) needs border weight maps, but the data module gives "
                "none; set data.weight_map (loss=weighted_ce sets it) or choose an unweighted loss"
            )
        if weight is not None:
            weight = _center_crop_to(weight, *logits.shape[-2:]).repeat(members, 1, 1)
        loss = self.loss(logits[:, : len(self.classes)], label, weight)
        if self.offsets:  # made once for the batch, repeated for the members as the labels are
            target, mask, cells = affinity_targets(
                label[: len(image)], self.offsets, self.boundary_class, self.nearest_cell
            )
            target, mask = target.repeat(members, 1, 1, 1), mask.repeat(members, 1, 1, 1)
            cells = np.tile(cells, (members, 1, 1)) if self.affinity_loss.needs_cells else None
            affinity_loss = self.affinity_loss(logits[:, len(self.classes) :], target, mask, cells)
            self.log("train/affinity_loss", affinity_loss, on_step=False, on_epoch=True, batch_size=len(image))
            loss = loss + self.hparams.affinities.get("weight", 1.0) * affinity_loss
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the training loss became {loss.item()} at global step {self.global_step} (epoch "
                f"{self.current_epoch}, batch {batch_idx}); lower the learning rate or check the input data"
            )
        self.train_pixel.update(logits[:, : len(self.classes)].detach().argmax(dim=1), label)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(image))
        return loss

    def on_train_epoch_end(self) -> None:
        # compute() already sums the confusion matrices of every process (torchmetrics), as for the ISBI scores
        self.log_dict(self.train_pixel.compute())
        self.train_pixel.reset()

    def _eval_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch["image"])[:, : len(self.classes)]
        label = batch["label"]
        loss = self.loss(logits, label)  # whole slices carry no weight map: the unweighted loss
        probs = logits.float().softmax(dim=1)
        getattr(self, f"{stage}_pixel").update(probs.argmax(dim=1), label)
        self.log(f"{stage}/loss", loss, on_epoch=True, sync_dist=True, batch_size=len(label))
        if self.boundary_class is not None:
            cells = (label != self.boundary_class) & (label != IGNORE)
            getattr(self, f"{stage}_isbi").update(cell_probability(probs, self.boundary_class), cells, batch["slice"])
        return probs

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        probs = self._eval_step(batch, "val")
        keep = self.hparams.figure_slices - len(self.figure_examples)
        if keep > 0:
            for i in range(min(keep, len(probs))):
                example = {
                    "image": batch["image"][i, 0].cpu(),
                    "label": batch["label"][i].cpu(),
                    "classes": probs[i].argmax(dim=0).cpu(),
                    "slice": batch["slice"][i].cpu(),
                }
                if self.boundary_class is not None:
                    example["prob"] = cell_probability(probs[i], self.boundary_class).cpu()
                self.figure_examples.append(example)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self.figure_examples = []

    def _log_eval_epoch(self, stage: str) -> None:
        pixel = getattr(self, f"{stage}_pixel")
        isbi = getattr(self, f"{stage}_isbi")
        # Both metrics gather every process's counts in compute(): their values are logged as they are, since
        # Lightning's sync_dist would all-reduce them again (and NCCL refuses the CPU tensors it would get).
        self.log_dict(pixel.compute())
        pixel.reset()
        if self.boundary_class is None:
            return
        scores = isbi.compute()
        self.log_dict({f"{stage}/{key}": value for key, value in scores.items()})
        if stage == "test":
            self.test_report = isbi.report()
        isbi.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_eval_epoch("val")
        if not self.trainer.sanity_checking:
            self.last_validated_step = self.global_step

    def on_test_epoch_end(self) -> None:
        self._log_eval_epoch("test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        return {"slice": batch["slice"], "probs": self.class_probabilities(batch["image"])}

    # ----- optimisation ------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self.hparams.optimizer)(params=self.parameters())
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer, progress=self._progress)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_train_start(self) -> None:
        self._share_clock()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._share_clock()

    def _budget_timer(self) -> Timer | None:
        """The trainer's ``max_time`` clock, or None when training has no time budget."""
        timer = next((cb for cb in self.trainer.callbacks if isinstance(cb, Timer)), None)
        return timer if timer is not None and timer._duration else None

    def _share_clock(self) -> None:
        """Rank 0's training time for the schedule, broadcast (as Lightning's Timer shares its stop) so that under
        DDP every process steps at one learning rate even when the clock leads it."""
        timer = self._budget_timer()
        if timer is not None:
            self.train_clock_s = float(self.trainer.strategy.broadcast(timer.time_elapsed("train")))

    def _progress(self, step: int) -> float:
        """Fraction of the run done at optimizer step ``step``: by steps, or by time when ``max_time`` runs short."""
        if self._trainer is None:
            return 0.0
        timer = self._budget_timer()
        budget_s = timer._duration if timer is not None else None
        return run_progress(step, int(self.trainer.estimated_stepping_batches), self.train_clock_s, budget_s)
