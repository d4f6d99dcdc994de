"""Affinity targets from class labels, their loss, and how offsets turn with the image."""

from functools import partial

import numpy as np
import pytest
import torch

from src.data.labels import IGNORE
from src.inference.tta import dihedral_inverse
from src.models.affinities import (
    AffinityLoss,
    affinities_of_cells,
    affinity_targets,
    cells_of_labels,
    channel_sources,
    transformed_offset,
)
from src.utils.errors import UserError

# 0 = membrane, 1 = interior: two cells split by a membrane column, one pixel unlabelled
LABEL = np.array(
    [
        [1, 1, 0, 1],
        [1, 1, 0, 1],
        [1, IGNORE, 0, 1],
    ]
)


def test_cells_are_the_connected_pixels_of_no_boundary_and_no_ignore():
    assert cells_of_labels(LABEL, boundary=0).tolist() == [[1, 1, 0, 2], [1, 1, 0, 2], [1, 0, 0, 2]]


def test_nearest_cell_splits_each_membrane_between_the_cells_beside_it():
    # columns 0-1 are cell 1, column 3 cell 2; the membrane column 2 is one pixel from each: the tie goes to one
    # side along the whole column, and the unlabelled pixel stays in no cell
    cells = cells_of_labels(LABEL, boundary=0, nearest_cell=True)
    assert cells[:, :2].tolist() == [[1, 1], [1, 1], [1, 0]] and cells[:, 3].tolist() == [2, 2, 2]
    assert set(cells[:, 2].tolist()) <= {1, 2}
    wide = np.array([[1, 0, 0, 0, 0, 1]] * 2)  # a four-pixel membrane: two pixels to each cell
    assert cells_of_labels(wide, boundary=0, nearest_cell=True).tolist() == [[1, 1, 1, 2, 2, 2]] * 2
    assert not cells_of_labels(np.zeros((2, 3), int), boundary=0, nearest_cell=True).any()  # no cell at all
    target, _, _ = affinity_targets(torch.from_numpy(wide)[None], [[0, -1]], boundary=0, nearest_cell=True)
    assert target[0, 0].tolist() == [[0, 1, 1, 0, 1, 1]] * 2  # the one cut is in the membrane's middle


def test_targets_by_hand():
    offsets = [[0, -1], [0, -2], [-1, 0]]
    target, mask, _ = affinity_targets(torch.from_numpy(LABEL)[None], offsets, boundary=0)
    target, mask = target[0], mask[0]
    # [0, -1]: same cell as the left neighbour; pairs that touch the membrane are 0; column 0 leaves the image
    assert target[0].tolist() == [[0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert mask[0].tolist() == [[False, True, True, True], [False, True, True, True], [False, False, False, True]]
    # [0, -2]: cells 1 and 2 across the membrane are not one cell
    assert not target[1].any() and mask[1][:, 2:].tolist() == [[True, True], [True, True], [True, False]]
    # [-1, 0]: same cell as the pixel above; row 0 leaves the image; the unlabelled pixel is masked both ways
    assert target[2].tolist() == [[0, 0, 0, 0], [1, 1, 0, 1], [1, 0, 0, 1]]
    assert mask[2][2].tolist() == [True, False, True, True] and not mask[2][0].any()


def test_the_loss_is_low_for_right_affinities_and_ignores_masked_pairs():
    target, mask, cells = affinity_targets(torch.from_numpy(LABEL)[None], [[0, -1], [-1, 0]], boundary=0)
    right = (target * 2 - 1) * 20
    for kind in ("dice", "bce", "dice_bce", "dice_malis"):
        loss = partial(AffinityLoss(kind, offsets=[[0, -1], [-1, 0]]), cells=cells)
        assert loss(right, target, mask) < 0.02 < loss(-right, target, mask)
        # whatever is predicted where the mask is off changes nothing
        assert loss(right + 50 * (~mask), target, mask) == pytest.approx(loss(right, target, mask).item())
    with pytest.raises(UserError, match="affinity_loss"):
        AffinityLoss("focal")
    with pytest.raises(UserError, match="nearest-neighbour"):
        AffinityLoss("dice_malis", offsets=[[0, -3]])


def test_offsets_turn_with_the_image():
    # a quarter turn back (torch.rot90 by -1) takes a displacement down to one to the left, and so on
    turned = [transformed_offset(o, lambda g: dihedral_inverse(g, 1)) for o in ([1, 0], [0, 1], [2, -5])]
    mask = torch.zeros(11, 11)
    mask[5 + 2, 5 - 5] = 1
    y, x = dihedral_inverse(mask, 1).nonzero()[0].tolist()
    assert turned[2] == (y - 5, x - 5) and turned[0] != (1, 0)
    assert channel_sources([[0, -1], [-1, 0]], lambda g: dihedral_inverse(g, 1)) in (
        [(1, 1), (0, -1)],
        [(1, -1), (0, 1)],
        [(1, 1), (0, 1)],
        [(1, -1), (0, -1)],
    )
    with pytest.raises(ValueError, match="counterpart"):
        channel_sources([[0, -1], [-3, 0]], lambda g: dihedral_inverse(g, 1))


def test_targets_of_cells_in_3d():
    cells = np.zeros((2, 3, 3), int)
    cells[0], cells[1] = 1, 2
    target, inside = affinities_of_cells(cells, [[-1, 0, 0], [0, 0, -1]])
    assert not target[0].any() and inside[0][1].all() and not inside[0][0].any()
    assert target[1][:, :, 1:].all()
