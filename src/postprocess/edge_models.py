"""The learned edges' classifier: its targets from labelled cells, and scikit-learn's gradient-boosted trees,
several fitted apart and averaged.

A single fit stops early on a random tenth of the edges it holds out, and which tenth it holds out decides where
it stops; on the same network's affinities that alone can decide whether two large cells merge (docs/affinities.md).
The mean probability of fits that each hold out their own tenth (random states 0, 1, ...) is steadier: bagging's
variance reduction (Breiman, Machine Learning 1996), over the early-stopping splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage


def truth_cells(labels: np.ndarray, boundary: int, ignore: int) -> np.ndarray:
    """The 4-connected cells of a class-id label slice: pixels neither of the ``boundary`` class nor ``ignore``."""
    cells, _ = ndimage.label((labels != boundary) & (labels != ignore))
    return cells


def edge_targets(regions: np.ndarray, truth: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each node pair of ``regions``: whether both go to one true cell of ``truth`` (labelled cells, 0 =
    boundary or unlabelled), each region given to the cell it overlaps most; and whether the pair is known (both
    regions overlap some cell)."""
    counts = np.zeros((int(regions.max()) + 1, int(truth.max()) + 1), np.int64)
    np.add.at(counts, (regions.ravel(), truth.ravel()), 1)
    cell = counts[:, 1:].argmax(1) + 1 if counts.shape[1] > 1 else np.zeros(len(counts), np.int64)
    cell[counts[:, 1:].sum(1) == 0] = 0
    first, second = cell[pairs[:, 0]], cell[pairs[:, 1]]
    known = (first > 0) & (second > 0)
    return known & (first == second), known


class AveragedClassifiers:
    """Fitted classifiers weighing an edge by their mean ``predict_proba``."""

    def __init__(self, models: Sequence[Any]) -> None:
        self.models = list(models)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return np.mean([model.predict_proba(features) for model in self.models], axis=0)


def fit_edge_classifier(features: np.ndarray, joined: np.ndarray, count: int, first_state: int = 0) -> Any:
    """``count`` gradient-boosted classifiers of the edges' ``features`` against ``joined`` (one cell or two), at
    random states ``first_state`` onwards: the one itself when ``count`` is 1 (early stopping as scikit-learn's
    default has it: above 10,000 edges), else their :class:`AveragedClassifiers`, each stopping early on its own
    tenth."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    stopping = "auto" if count == 1 else True
    models = [
        HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, early_stopping=stopping, random_state=seed
        ).fit(features, joined)
        for seed in range(first_state, first_state + count)
    ]
    return models[0] if count == 1 else AveragedClassifiers(models)
