"""The learned edges' classifier: scikit-learn's gradient-boosted trees, several fitted apart and averaged.

A single fit stops early on a random tenth of the edges it holds out, and which tenth it holds out decides where
it stops; on the same network's affinities that alone can decide whether two large cells merge (docs/affinities.md).
The mean probability of fits that each hold out their own tenth (random states 0, 1, ...) is steadier: bagging's
variance reduction (Breiman, Machine Learning 1996), over the early-stopping splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


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
