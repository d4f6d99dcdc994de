"""The one-pass pixel scores equal torchmetrics' binary accuracy, F1 (Dice) and Jaccard index."""

import pytest
import torch
from torchmetrics.classification import BinaryAccuracy, BinaryF1Score, BinaryJaccardIndex

from src.metrics.pixel import PixelScores


@pytest.mark.parametrize("as_probability", [False, True])
def test_pixel_scores_equal_torchmetrics_over_several_batches(as_probability):
    torch.manual_seed(0)
    ours = PixelScores(prefix="val/")
    theirs = {"accuracy": BinaryAccuracy(), "dice": BinaryF1Score(), "iou": BinaryJaccardIndex()}
    for _ in range(3):
        prob = torch.rand(4, 32, 48)
        label = (torch.rand(4, 32, 48) < 0.7).long()
        pred = prob if as_probability else prob > 0.5
        ours.update(pred, label)
        for metric in theirs.values():
            metric.update(prob, label)
    scores = ours.compute()
    assert set(scores) == {"val/accuracy", "val/dice", "val/iou"}
    for name, metric in theirs.items():
        torch.testing.assert_close(scores[f"val/{name}"], metric.compute(), atol=1e-6, rtol=0)
    assert 0.3 < scores["val/dice"] < 0.9  # a real mixture of hits and misses, not a degenerate case


def test_undefined_scores_are_zero_and_reset_clears_the_counts():
    scores = PixelScores()
    scores.update(torch.zeros(2, 4, 4, dtype=torch.bool), torch.zeros(2, 4, 4, dtype=torch.long))
    result = scores.compute()
    assert result["accuracy"] == 1.0 and result["dice"] == 0.0 and result["iou"] == 0.0
    scores.reset()
    scores.update(torch.ones(1, 2, 2, dtype=torch.bool), torch.tensor([[[1, 0], [1, 1]]]))
    assert scores.compute()["iou"] == pytest.approx(0.75)
