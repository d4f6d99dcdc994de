"""Instance post-processing: components equal the protocol's threshold, the watershed closes membrane gaps."""

import numpy as np
import pytest
from scipy import ndimage

from src.metrics.isbi import score_probabilities, score_segmentations
from src.postprocess.instances import ConnectedComponents, SeededWatershed, postprocess_stack
from src.utils.errors import UserError


def _two_cells_with_a_gap(gap: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Label and probability of two 30x30 cells whose shared membrane has a ``gap``-pixel hole in the map."""
    label = np.zeros((64, 96), np.uint8)
    label[2:62, 2:46] = 255
    label[2:62, 50:94] = 255
    prob = ndimage.gaussian_filter((label > 0).astype(np.float32), 1.0)
    prob[30 : 30 + gap, 44:52] = 0.95  # the network missed a few pixels of membrane
    return label, prob


def test_connected_components_merge_through_the_gap_and_match_the_protocol():
    label, prob = _two_cells_with_a_gap()
    cells = ConnectedComponents(threshold=0.5)(prob)
    assert cells.max() == 1  # one region: the gap joins the two cells
    by_components = score_segmentations(cells[None], label[None])
    by_protocol = score_probabilities(prob[None], label[None], thresholds=(0.5,))
    assert by_components["vrand"] == pytest.approx(by_protocol["vrand"], abs=1e-12)
    assert by_components["vrand"] < 0.7


@pytest.mark.parametrize("markers,h", [("maxima", 0.05), ("distance", 2.0)])
def test_seeded_watershed_closes_a_small_membrane_gap(markers, h):
    label, prob = _two_cells_with_a_gap()
    cells = SeededWatershed(markers=markers, h=h, sigma=1.0)(prob)
    scores = score_segmentations(cells[None], label[None])
    assert len(np.unique(cells[cells > 0])) == 2
    assert scores["vrand"] > 0.99 and scores["vinfo"] > 0.97


def test_watershed_lines_and_mask_leave_borders_at_zero():
    label, prob = _two_cells_with_a_gap()
    lined = SeededWatershed(watershed_line=True, sigma=1.0)(prob)
    assert (lined == 0).any() and (lined == 0).mean() < 0.05  # one-pixel lines only
    masked = SeededWatershed(mask=True, sigma=1.0)(prob)
    assert (masked[ndimage.gaussian_filter(prob, 1.0) <= 0.5] == 0).all()
    assert postprocess_stack(SeededWatershed(sigma=1.0), np.stack([prob, prob])).shape == (2, *prob.shape)


def test_an_empty_probability_map_has_no_cells():
    assert SeededWatershed()(np.zeros((32, 32), np.float32)).max() == 0


@pytest.mark.parametrize(
    "kwargs,word",
    [({"markers": "peaks"}, "markers"), ({"h": 0}, "h=0"), ({"sigma": -1}, "sigma"), ({"threshold": 1.5}, "threshold")],
)
def test_bad_parameters_are_refused_by_name(kwargs, word):
    with pytest.raises(UserError, match=word):
        SeededWatershed(**kwargs)


def test_a_postprocess_that_reads_affinities_gets_the_networks_offsets_or_is_refused():
    from src.postprocess.instances import build_postprocess, reads_affinities

    config = {"_target_": "src.postprocess.mutex_watershed.MutexWatershed", "attractive": 2}
    method = build_postprocess(config, [[-1, 0], [0, -1], [-3, 0]])
    assert reads_affinities(method) and method.offsets == ((-1, 0), (0, -1), (-3, 0))
    with pytest.raises(UserError, match="predicts classes only"):
        build_postprocess(config, ())
    watershed = build_postprocess({"_target_": "src.postprocess.instances.SeededWatershed"}, ())
    assert not reads_affinities(watershed) and watershed == SeededWatershed()
