"""The torchmetrics Metric of per-class Dice and IoU equals the numpy count it sums, argmax taken of scores."""

import numpy as np
import torch

from src.data.labels import IGNORE
from src.metrics.classes import class_scores, score_keys
from src.metrics.torchmetrics_classes import ClassScores

NAMES = ["membrane", "glia", "mitochondria"]


def test_metric_equals_numpy_leaving_out_unlabelled_pixels():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, (2, 40, 40))
    pred = np.where(rng.random(label.shape) < 0.7, label, rng.integers(0, 3, label.shape))
    label[:, :5] = IGNORE
    metric = ClassScores(NAMES, prefix="val/")
    for p, t in zip(pred, label, strict=True):  # two updates sum their counts
        metric.update(torch.from_numpy(p)[None], torch.from_numpy(t)[None])
    logged = metric.compute()
    numpy_scores = class_scores(pred, label, NAMES)
    for name in NAMES:
        assert abs(float(logged[f"val/dice/{name}"]) - numpy_scores["dice"][name]) < 1e-6
        assert abs(float(logged[f"val/iou/{name}"]) - numpy_scores["iou"][name]) < 1e-6
    assert abs(float(logged["val/dice/mean"]) - np.mean(list(numpy_scores["dice"].values()))) < 1e-6
    assert abs(float(logged["val/accuracy"]) - numpy_scores["accuracy"]) < 1e-6
    assert 0.6 < numpy_scores["accuracy"] < 0.9
    assert sorted(logged) == sorted(score_keys(NAMES, "val/"))  # the keys optimized_metric is checked against


def test_scores_taken_from_class_scores_or_argmax_and_absent_classes_left_out():
    label = torch.tensor([[[0, 0, 1, 1]]])
    logits = torch.tensor([[[[5.0, 5, -5, -5]], [[-5.0, -5, 5, 5]], [[-9.0, -9, -9, -9]]]])
    metric = ClassScores(NAMES)
    metric.update(logits, label)
    scores = metric.compute()
    assert float(scores["dice/membrane"]) == float(scores["dice/glia"]) == 1.0
    assert "dice/mitochondria" not in scores and float(scores["dice/mean"]) == 1.0
