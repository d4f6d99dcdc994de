"""The held-out evaluation shared by training and src.eval: TTA prediction, post-processing, written stacks."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch

from src.evaluation.held_out import predict_slices
from src.models.module import SegmentationModule


def test_full_tta_prediction_is_equivariant_under_flips_and_rotations():
    torch.manual_seed(0)
    module = SegmentationModule(
        net={"_target_": "src.models.unet.UNet", "depth": 2, "base_channels": 4},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True},
    )
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    image = torch.randn(1, 40, 40)
    rotated = torch.rot90(image, 1, dims=(-2, -1)).flip(-1)
    item = {"label": torch.zeros(40, 40, dtype=torch.long), "slice": torch.tensor(0)}
    dataset = [{"image": image, **item}, {"image": rotated, **item}]
    plain = predict_slices(module, dataset, trainer, tta=(0,))
    full = predict_slices(module, dataset, trainer, tta=tuple(range(8)))
    expected = np.flip(np.rot90(full[0]["prob"], 1), -1)
    # An untrained network is not equivariant, so only the averaged prediction follows the rotation.
    assert np.abs(np.flip(np.rot90(plain[0]["prob"], 1), -1) - plain[1]["prob"]).max() > 1e-3
    assert np.allclose(full[1]["prob"], expected, atol=1e-5)
