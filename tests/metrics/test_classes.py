"""Per-class Dice and IoU from one confusion matrix in numpy: a direct computation, unlabelled pixels left out."""

import numpy as np

from src.data.labels import IGNORE
from src.metrics.classes import class_scores, confusion_matrix

NAMES = ["membrane", "glia", "mitochondria"]


def _direct_dice(pred, label, c):
    keep = label != IGNORE
    p, t = (pred == c) & keep, (label == c) & keep
    return 2 * np.sum(p & t) / (np.sum(p) + np.sum(t))


def test_dice_iou_and_accuracy_equal_a_direct_count_leaving_out_unlabelled_pixels():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, (2, 40, 40))
    pred = np.where(rng.random(label.shape) < 0.7, label, rng.integers(0, 3, label.shape))
    label[:, :5] = IGNORE
    scores = class_scores(pred, label, NAMES)
    for c, name in enumerate(NAMES):
        assert abs(scores["dice"][name] - _direct_dice(pred, label, c)) < 1e-12
        dice = scores["dice"][name]
        assert abs(scores["iou"][name] - dice / (2 - dice)) < 1e-12
    keep = label != IGNORE
    assert scores["accuracy"] == np.mean(pred[keep] == label[keep])
    assert confusion_matrix(pred, label, 3).sum() == keep.sum()


def test_a_class_neither_labelled_nor_predicted_is_left_out_of_the_mean():
    label = np.array([[0, 0, 1, 1]])
    scores = class_scores(np.array([[0, 0, 1, 0]]), label, NAMES)
    assert "mitochondria" not in scores["dice"] and set(scores["dice"]) == {"membrane", "glia"}
    assert scores["mean_dice"] == (0.8 + 2 / 3) / 2
