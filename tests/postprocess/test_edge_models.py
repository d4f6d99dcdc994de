"""The learned edges' classifiers: one fit as before, several fitted apart (each on its own early-stopping split)
and averaged."""

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from src.postprocess.edge_models import AveragedClassifiers, fit_edge_classifier


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
