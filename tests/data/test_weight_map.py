"""The U-Net paper's border weight map against a brute-force evaluation of its formula."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from src.data.weight_map import border_weight_map, class_balance_weights


def _brute_force_border_term(label: np.ndarray, w0: float, sigma: float) -> np.ndarray:
    cells, count = ndimage.label(label)
    distances = np.sort(np.stack([ndimage.distance_transform_edt(cells != i) for i in range(1, count + 1)]), axis=0)
    term = w0 * np.exp(-((distances[0] + distances[1]) ** 2) / (2 * sigma**2))
    return np.where(label == 0, term, 0.0)


def test_border_term_matches_the_formula_on_a_real_label(isbi_stack):
    label = (isbi_stack[1][3, 100:228, 200:328] > 0).astype(np.uint8)
    got = border_weight_map(label, w0=10, sigma=5, class_balance=False) - 1.0
    expected = _brute_force_border_term(label, 10, 5)
    # The only difference allowed is the cut-off at d1 + d2 = 4 sigma, where the term is w0 * exp(-8).
    assert np.abs(got - expected).max() <= 10 * np.exp(-8) + 1e-5
    assert got.max() > 5  # thin membranes between touching cells get a large share of w0


def test_weights_peak_in_the_gap_between_two_touching_cells():
    label = np.ones((40, 60), np.uint8)
    label[:, 29:31] = 0  # a 2-pixel membrane between two cells
    label[:, :3] = 0  # a thick border with one cell only on one side
    weights = border_weight_map(label, w0=10, sigma=5, class_balance=False)
    gap = weights[:, 29:31]
    # Each gap pixel is 1 px from one cell and 2 px from the other: d1 + d2 = 3.
    assert np.allclose(gap, 1 + 10 * np.exp(-(3**2) / 50), atol=1e-4)
    assert np.all(weights[:, 0] < 1.01)  # far from a second cell: no border weight
    assert np.all(weights[label == 1] == 1)  # cell interiors get only the class weight


def test_class_weights_balance_the_two_classes():
    label = np.zeros((10, 10), np.uint8)
    label[:, :8] = 1
    weights = class_balance_weights(label)
    assert np.isclose(weights[label == 0].sum(), weights[label == 1].sum())
    assert np.isclose(weights.mean(), 1.0)
