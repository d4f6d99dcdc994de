"""Mean-affinity agglomeration (waterz) of affinity maps, 2-D and 3-D."""

import numpy as np
import pytest
from scipy import ndimage

from src.models.affinities import affinities_of_cells
from src.postprocess.affinity_agglomeration import MeanAffinity, nearest_channels
from src.utils.errors import UserError


def _same_partition(cells, found):
    inside = cells > 0
    pairs = np.unique(np.stack([cells[inside], found[inside]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1] == cells.max()


@pytest.mark.parametrize(
    ("shape", "offsets"),
    [((48, 40), [[-3, 0], [-1, 0], [0, -1]]), ((5, 24, 20), [[-1, 0, 0], [0, -1, 0], [0, 0, -1], [0, -4, 0]])],
)
def test_noisy_affinities_of_known_cells_give_them_back(shape, offsets):
    rng = np.random.default_rng(2)
    cells, _ = ndimage.label(ndimage.gaussian_filter(rng.random(shape), 2) > 0.5)
    affinities, _ = affinities_of_cells(cells, offsets)
    noisy = np.clip(affinities + rng.normal(0, 0.1, affinities.shape), 0, 1).astype(np.float32)
    found = MeanAffinity(threshold=0.5).with_offsets(offsets)(noisy)
    assert found.shape == shape and found.min() >= 0
    assert _same_partition(cells, found)


def test_the_threshold_decides_how_far_fragments_merge():
    # Two halves of a slice joined by affinities of 0.6 everywhere across their border: merged when
    # 1 - 0.6 = 0.4 is under the threshold, kept apart when it is over.
    affinities = np.ones((2, 8, 8), np.float32)
    affinities[0, 4, :] = 0.6  # between rows 3 and 4 ([-1, 0])
    offsets = [[-1, 0], [0, -1]]
    assert len(np.unique(MeanAffinity(0.5).with_offsets(offsets)(affinities))) == 1
    assert len(np.unique(MeanAffinity(0.3).with_offsets(offsets)(affinities))) == 2


def test_the_nearest_neighbour_offsets_are_required():
    assert nearest_channels([[0, -1], [-5, 0], [-1, 0]]) == [2, 0]
    with pytest.raises(UserError, match=r"\[0, -1\]"):
        MeanAffinity().with_offsets([[-1, 0], [-3, 0]])
    with pytest.raises(UserError, match="threshold"):
        MeanAffinity(threshold=1.0)
