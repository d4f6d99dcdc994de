"""Learned edges between affinity fragments: the features of hand-made graphs, the signed mutex
watershed and its cautious rounds by hand, a classifier fitted on known cells finding unseen ones, and the saved
classifier's checks."""

import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.segmentation import watershed

from src.metrics.isbi import scores_from_segments
from src.models.affinities import affinities_of_cells
from src.postprocess.edge_models import AveragedClassifiers
from src.postprocess.learned_edges import (
    QUANTILES,
    LearnedEdges,
    cells_in_rounds,
    edge_features,
    fitted_for,
    load_classifier,
    save_classifier,
    signed_cells,
)
from src.postprocess.region_shapes import pair_shapes
from src.utils.errors import UserError

LINE = np.array([[0, -1], [0, -3]])  # channel k at p: the pair (p, p + LINE[k]); neighbours attract, 3 apart repel


def test_edge_features_of_two_regions_by_hand():
    regions = np.array([[1, 1, 1, 2, 2, 2]])
    affinities = np.full((2, 1, 6), 0.9, np.float32)
    affinities[0, 0, 3] = 0.6  # the one attractive pair between the regions: pixels 3 and 2
    affinities[1, 0, 3:] = [0.2, 0.3, 0.4]  # the repulsive pairs 3-0, 4-1, 5-2
    pairs, features = edge_features(regions, affinities, LINE, attractive=1, stride=1)
    assert pairs.tolist() == [[1, 2]]
    means, counts = features[0, :2], features[0, 2:4]
    groups, quantiles, sizes = features[0, 4:7], features[0, 7 : 7 + len(QUANTILES)], features[0, -2:]
    assert means == pytest.approx([0.6, 0.3])
    assert counts == pytest.approx([math.log(2), math.log(4)])  # log(1 + 1 pair), log(1 + 3 pairs)
    assert groups == pytest.approx([0.6, 0.3, -1.0])  # attractive, short repulsive, no long-range offset
    assert quantiles == pytest.approx([0.6] * len(QUANTILES))
    assert sizes == pytest.approx([math.log(4), math.log(4)])
    # one repulsive pair in 3 along the row: only pixel 3's (3-0, 0.2) is kept
    _, strided = edge_features(regions, affinities, LINE, attractive=1, stride=3)
    assert strided[0, 1] == pytest.approx(0.2) and strided[0, 3] == pytest.approx(math.log(2))
    _, shaped = edge_features(regions, affinities, LINE, attractive=1, stride=1, shapes=True)
    assert (shaped[:, : features.shape[1]] == features).all()  # the shapes follow the affinities' features
    assert shaped[0, features.shape[1] :] == pytest.approx(pair_shapes(regions, np.array([1]), np.array([2]))[0])


def test_the_signed_mutex_watershed_by_hand():
    regions = np.array([[1, 2, 3]])
    # Surest first: 1-2 joins (0.9); 1-3 repels (1 - 0.2 = 0.8): a mutex between {1, 2} and {3}; 2-3 (0.6) is refused.
    pairs = np.array([[1, 2], [2, 3], [1, 3]])
    assert signed_cells(regions, pairs, np.array([0.9, 0.6, 0.2])).tolist() == [[1, 1, 2]]
    # 1-3 at 0.45 repels with 0.55, after 2-3's pull (0.6) has joined all three: one cell.
    assert signed_cells(regions, pairs, np.array([0.9, 0.6, 0.45])).tolist() == [[1, 1, 1]]
    # A cautious round (only pulls surer than 0.7 join): 2-3's pull (0.6) waits; 1-3 still repels, 1-2 joins.
    assert signed_cells(regions, pairs, np.array([0.9, 0.6, 0.45]), surer_than=0.7).tolist() == [[1, 1, 2]]
    assert signed_cells(regions, pairs, np.array([0.65, 0.6, 0.45]), surer_than=0.7).tolist() == [[1, 2, 3]]


def _attractive_mean(features):
    """Weighs an edge by the mean of its attractive pairs (column 2K of a LINE graph's features), none: 0."""
    joined = np.clip(features[:, 4], 0, 1)
    return np.stack([1 - joined, joined], 1)


def test_a_cautious_round_measures_the_grown_regions_again_by_hand():
    regions = np.array([[1, 1, 2, 2, 3, 3]])
    affinities = np.full((2, 1, 6), 0.5, np.float32)
    affinities[0, 0, [2, 4]] = [0.9, 0.6]  # the attractive pairs 2-1 (regions 1-2) and 4-3 (regions 2-3)
    # One round: 1-3 has no attractive pair (weight 0), so its repulsion comes first; 1-2 joins (0.9) and 2-3's
    # pull (0.6) is refused by the mutex 1-3.
    assert cells_in_rounds(regions, affinities, LINE, _attractive_mean, (), 1, 1).tolist() == [[1, 1, 1, 1, 2, 2]]
    # A cautious round at 0.8 joins 1-2 only; measured again, {1, 2}-3 is one edge whose attractive mean is 0.6.
    joined = cells_in_rounds(regions, affinities, LINE, _attractive_mean, (0.8,), 1, 1)
    assert joined.tolist() == [[1, 1, 1, 1, 1, 1]]


def _tiled_cells(shape, seed, count=10):
    """Cells tiling the image with one-pixel membranes (0) between them, as in EM."""
    rng = np.random.default_rng(seed)
    markers = np.zeros(shape, np.int32)
    markers[tuple(rng.integers(0, n, count) for n in shape)] = np.arange(1, count + 1)
    return watershed(ndimage.distance_transform_edt(markers == 0), markers, connectivity=1, watershed_line=True)


OFFSETS = [(-1, 0), (0, -1), (-4, 0), (0, -4), (-9, -9), (9, -9), (-14, 0), (0, -14)]


def _noisy(cells, seed):
    """The cells' affinities with smooth noise: pairs near one another err together, as a network's do."""
    affinities, _ = affinities_of_cells(cells, OFFSETS)
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.normal(0, 1, affinities.shape), (0, 2, 2))
    return np.clip(affinities + 0.35 * noise / noise.std(), 0, 1).astype(np.float32)


@pytest.mark.parametrize("shapes", [False, True])
def test_a_classifier_fitted_on_known_cells_finds_unseen_ones(tmp_path, shapes):
    shape = (64, 64)
    method = LearnedEdges(min_size=0, shapes=shapes).with_offsets(OFFSETS)
    train = [_tiled_cells(shape, seed) for seed in range(8)]
    model = method.fit([_noisy(cells, seed) for seed, cells in enumerate(train)], train)
    path = save_classifier(tmp_path / "edge_classifier.pkl", model, method)
    decode = LearnedEdges(min_size=0, classifier=str(path), shapes=shapes).with_offsets(OFFSETS)
    cautious = LearnedEdges(min_size=0, classifier=str(path), rounds=[0.99, 0.9], shapes=shapes).with_offsets(OFFSETS)
    scores, cautious_scores = [], []
    for seed in (100, 101, 102):
        cells = _tiled_cells(shape, seed)
        found = decode(_noisy(cells, seed))
        scores.append(scores_from_segments(cells.ravel(), found.ravel()).vrand)
        assert (found == method.with_model(model)(_noisy(cells, seed))).all()  # the file holds the same model
        cautious_scores.append(scores_from_segments(cells.ravel(), cautious(_noisy(cells, seed)).ravel()).vrand)
    assert min(scores) >= 0.9, scores
    assert min(cautious_scores) >= 0.9, cautious_scores


def test_averaged_classifiers_are_saved_and_decode_as_fitted(tmp_path):
    cells = [_tiled_cells((48, 48), seed) for seed in range(3)]
    method = LearnedEdges(classifiers=2).with_offsets(OFFSETS)
    model = method.fit([_noisy(c, seed) for seed, c in enumerate(cells)], cells)
    assert isinstance(model, AveragedClassifiers) and len(model.models) == 2
    path = save_classifier(tmp_path / "edge_classifier.pkl", model, method)
    unseen = _noisy(_tiled_cells((48, 48), 7), 7)
    decoded = LearnedEdges(classifier=str(path)).with_offsets(OFFSETS)(unseen)  # a file named is read as it is
    assert (decoded == method.with_model(model)(unseen)).all()
    assert fitted_for(path, {"classifiers": 2}) and not fitted_for(path, {})  # a run's own file serves its count


def test_the_saved_classifier_is_refused_for_other_offsets_or_a_bad_file(tmp_path):
    cells = [_tiled_cells((48, 48), seed) for seed in range(3)]
    method = LearnedEdges().with_offsets(OFFSETS)
    path = save_classifier(tmp_path / "edge_classifier.pkl", method.fit([_noisy(c, 0) for c in cells], cells), method)
    assert load_classifier(path, OFFSETS) is not None
    with pytest.raises(UserError, match="fitted for the offsets"):
        LearnedEdges(classifier=str(path)).with_offsets(OFFSETS[:-1])
    with pytest.raises(UserError, match="cannot be read"):
        LearnedEdges(classifier=str(tmp_path / "missing.pkl")).with_offsets(OFFSETS)
    for other in ({"fragments_h": 0.1}, {"stride": 4}, {"attractive": 1}, {"shapes": True}):  # other features
        with pytest.raises(UserError, match=f"postprocess.{next(iter(other))}=") as refused:
            LearnedEdges(classifier=str(path), **other).with_offsets(OFFSETS)
        assert "fragments_h=0.05 postprocess.stride=2" in str(refused.value)
    (tmp_path / "other.pkl").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="cannot be read"):
        load_classifier(tmp_path / "other.pkl", OFFSETS)


def test_learned_edges_refuse_bad_settings_and_a_missing_classifier():
    with pytest.raises(UserError, match="fragments_h"):
        LearnedEdges(fragments_h=0.0)
    with pytest.raises(UserError, match="stride"):
        LearnedEdges(stride=0)
    with pytest.raises(UserError, match="classifiers=0"):
        LearnedEdges(classifiers=0)
    for rounds in ([0.9, 1.0], [0.4]):  # how sure a cautious round's joins must be: [0.5, 1)
        with pytest.raises(UserError, match=r"postprocess.rounds=.* in \[0.5, 1\)"):
            LearnedEdges(rounds=rounds)
    assert LearnedEdges(rounds=[0.99, 0.9]).rounds == (0.99, 0.9)
    with pytest.raises(UserError, match="leaves none"):
        LearnedEdges().with_offsets([[-1, 0], [0, -1]])
    with pytest.raises(UserError, match="model.target=affinities"):
        LearnedEdges()(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(UserError, match="no fitted classifier"):
        LearnedEdges().with_offsets(OFFSETS)(np.zeros((len(OFFSETS), 8, 8), np.float32))
    one_cell = np.ones((1, 16, 16), np.int32)
    with pytest.raises(UserError, match="no pair of each kind"):
        LearnedEdges().with_offsets(OFFSETS).fit([np.ones((len(OFFSETS), 16, 16), np.float32)], one_cell)
