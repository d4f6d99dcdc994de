"""The learned edges' classifiers: their targets from labelled cells, one fit as before, several fitted apart (each
on its own early-stopping split) and averaged."""

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from src.postprocess.edge_models import AveragedClassifiers, edge_targets, fit_edge_classifier, truth_cells


def _edges(count, seed=0):
    """Edge features whose first column says, noisily, whether the edge joins one cell."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(count, 4))
    return features, features[:, 0] + rng.normal(0, 0.8, count) > 1.0


def test_one_classifier_is_the_single_fit_at_random_state_0():
    features, joined = _edges(600)
    single = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=0).fit(features, joined)
    model = fit_edge_classifier(features, joined, 1)
    assert isinstance(model, HistGradientBoostingClassifier)
    np.testing.assert_array_equal(model.predict_proba(features), single.predict_proba(features))


def test_several_classifiers_stop_on_their_own_splits_and_are_averaged():
    features, joined = _edges(2000)
    bag = fit_edge_classifier(features, joined, 3)
    assert isinstance(bag, AveragedClassifiers) and len(bag.models) == 3
    each = [model.predict_proba(features) for model in bag.models]
    assert not np.array_equal(each[0], each[1]) and not np.array_equal(each[1], each[2])  # other held-out tenths
    np.testing.assert_allclose(bag.predict_proba(features), np.mean(each, axis=0))
    third = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, early_stopping=True, random_state=2)
    np.testing.assert_array_equal(each[2], third.fit(features, joined).predict_proba(features))


def test_edge_targets_follow_the_cell_each_region_overlaps_most():
    regions = np.array([[1, 1, 2, 2, 3, 3, 4]])
    truth = np.array([[1, 1, 1, 1, 0, 2, 0]])  # region 3 is half membrane, half cell 2; region 4 all membrane
    pairs = np.array([[1, 2], [2, 3], [3, 4], [1, 3]])
    joined, known = edge_targets(regions, truth, pairs)
    assert joined.tolist() == [True, False, False, False]
    assert known.tolist() == [True, True, False, True]


def test_truth_cells_leave_out_the_boundary_and_unlabelled_pixels():
    labels = np.array([[1, 1, 0, 1], [255, 1, 0, 1]])
    assert truth_cells(labels, boundary=0, ignore=255).tolist() == [[1, 1, 0, 2], [0, 1, 0, 2]]
