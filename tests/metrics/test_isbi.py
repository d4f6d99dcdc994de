"""The ISBI 2012 scores: hand-worked cases, scikit-image cross-checks on real labels, invariances."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import adapted_rand_error, variation_of_information

from src.metrics.isbi import (
    THRESHOLDS,
    best_over_thresholds,
    pixel_error,
    scores_from_segments,
    slice_scores,
    thinned_segments,
    truth_segments,
)


def _two_cells(size=20):
    """Two cells side by side, separated by a 2-pixel membrane, with a 1-pixel membrane frame."""
    label = np.zeros((size, size), np.uint8)
    label[1:-1, 1 : size // 2 - 1] = 255
    label[1:-1, size // 2 + 1 : -1] = 255
    return label


def test_perfect_prediction_scores_one():
    label = _two_cells()
    scores = scores_from_segments(truth_segments(label), thinned_segments(label > 0))
    assert scores.vrand == pytest.approx(1.0) and scores.vinfo == pytest.approx(1.0)


def test_one_merge_by_hand():
    # Two equal cells of n/2 pixels merged into one proposal segment:
    # p_ij = 1/2 twice, a = (1/2, 1/2), b = (1): merge precision = (1/4+1/4)/1 = 1/2, split recall = 1.
    # V_rand = 2 * 0.5 * 1 / 1.5 = 2/3. H(T) = log 2, H(S) = 0, H(T,S) = log 2, so I = 0 and V_info = 0.
    label = _two_cells()
    truth = truth_segments(label)
    merged = np.ones_like(truth)
    scores = scores_from_segments(truth, merged)
    assert scores.rand_merge == pytest.approx(0.5)
    assert scores.rand_split == pytest.approx(1.0)
    assert scores.vrand == pytest.approx(2 / 3)
    assert scores.vinfo == pytest.approx(0.0)


def test_one_split_by_hand():
    # One cell split into two equal halves: recall = 1/2, precision = 1, V_rand = 2/3;
    # H(T) = 0, H(S) = log 2, H(T,S) = log 2, so I = 0 and V_info = 0.
    truth = np.ones((10, 10), np.int64)
    proposal = np.ones((10, 10), np.int64)
    proposal[:, 5:] = 2
    scores = scores_from_segments(truth, proposal)
    assert scores.rand_split == pytest.approx(0.5) and scores.rand_merge == pytest.approx(1.0)
    assert scores.vrand == pytest.approx(2 / 3)
    assert scores.vinfo == pytest.approx(0.0)


def test_all_background_prediction_makes_every_pixel_a_segment():
    label = _two_cells()
    segments = thinned_segments(np.zeros_like(label, bool))
    assert len(np.unique(segments)) == label.size
    scores = scores_from_segments(truth_segments(label), segments)
    n = (label > 0).sum()
    # Every pixel alone: sum p_ij^2 = sum b_j^2 = 1/n, so merge precision = 1 and recall = (1/n) / sum a_i^2.
    a = np.array([(truth_segments(label) == k).sum() for k in (1, 2)]) / n
    recall = (1 / n) / (a**2).sum()
    assert scores.rand_merge == pytest.approx(1.0)
    assert scores.vrand == pytest.approx(2 * recall / (1 + recall))


def test_thinning_leaves_one_pixel_lines_between_regions():
    label = _two_cells()
    segments = thinned_segments(label > 0)
    # The two interiors grow over the membrane; what separates them is a line at most 1 pixel wide per row.
    big = [k for k, c in zip(*np.unique(segments, return_counts=True), strict=True) if c > 1]
    assert len(big) == 2
    singletons = ~np.isin(segments, big)
    assert singletons.sum(axis=1).max() <= 1


def _perturbed(label, rng, noise):
    return ndimage.gaussian_filter((label > 0).astype(float) + rng.normal(0, noise, label.shape), 1.5)


@pytest.mark.parametrize("noise", [0.3, 0.8])
def test_agrees_with_scikit_image_on_real_labels(isbi_stack, noise):
    _, labels = isbi_stack
    rng = np.random.default_rng(1)
    for label in labels[::7]:
        truth = truth_segments(label)
        proposal = thinned_segments(_perturbed(label, rng, noise) > 0.5)
        ours = scores_from_segments(truth, proposal)
        # scikit-image leaves out self-pairs, which moves the score by O(1/n); the line pixels are already
        # their own segments, which is what makes the two comparable.
        are, _, _ = adapted_rand_error(truth, proposal, ignore_labels=(0,))
        assert ours.vrand == pytest.approx(1 - are, abs=1e-5)
        # V_info from scikit-image's conditional entropies (in bits: [H(S|T), H(T|S)]) and the marginals.
        h_s_given_t, h_t_given_s = variation_of_information(truth, proposal, ignore_labels=(0,)) * np.log(2)
        mask = truth > 0
        h_truth, h_prop = (
            -(q * np.log(q)).sum()
            for q in (np.unique(x[mask], return_counts=True)[1] / mask.sum() for x in (truth, proposal))
        )
        info = h_truth - h_t_given_s
        assert info == pytest.approx(h_prop - h_s_given_t, abs=1e-9)
        entropy = (h_truth, h_prop)
        assert ours.vinfo == pytest.approx(2 * info / sum(entropy), abs=1e-5)


def test_invariant_to_label_permutation(isbi_stack):
    _, labels = isbi_stack
    label = labels[3]
    truth = truth_segments(label)
    proposal = thinned_segments(_perturbed(label, np.random.default_rng(2), 0.6) > 0.5)
    perm = np.random.default_rng(3).permutation(proposal.max() + 1) + 1000
    perm_truth = np.concatenate([[0], np.random.default_rng(4).permutation(truth.max()) + 1])
    a = scores_from_segments(truth, proposal)
    b = scores_from_segments(perm_truth[truth], perm[proposal])
    assert a.vrand == pytest.approx(b.vrand, abs=1e-12) and a.vinfo == pytest.approx(b.vinfo, abs=1e-12)


def test_threshold_sweep_picks_the_best_threshold(isbi_stack):
    _, labels = isbi_stack
    label = labels[0]
    # A probability map that is right only when thresholded at 0.7 or above: membranes at 0.65.
    prob = np.where(label > 0, 0.95, 0.65)
    per_slice = slice_scores(prob, label)[None]
    best = best_over_thresholds(per_slice)
    assert best["vrand"] == pytest.approx(1.0) and best["threshold"] >= 0.7
    assert per_slice[0, THRESHOLDS.index(0.5), 0] < 0.5
    assert pixel_error(prob, label) == pytest.approx((label == 0).mean())


def test_smoothed_image_baseline_matches_the_known_figure(isbi_stack):
    # Thresholding the smoothed image scores about 0.86 V_rand on slices 24-29 (the trivial baseline).
    images, labels = isbi_stack
    per_slice = np.stack(
        [
            slice_scores(ndimage.gaussian_filter(i / 255.0, 2), lab)
            for i, lab in zip(images[24:], labels[24:], strict=True)
        ]
    )
    assert best_over_thresholds(per_slice)["vrand"] == pytest.approx(0.86, abs=0.01)
