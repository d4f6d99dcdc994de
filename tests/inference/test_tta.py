"""Test-time augmentation: the dihedral group of the square, its inverses, boxes, settings and the mean."""

import pytest
import torch

from src.inference.tta import DIHEDRAL, dihedral, dihedral_box, dihedral_inverse, tta_mean, tta_transforms
from src.utils.errors import UserError


def test_dihedral_group_inverses():
    x = torch.arange(12.0).reshape(1, 3, 4)
    for index in DIHEDRAL:
        assert torch.equal(dihedral_inverse(dihedral(x, index), index), x)
    assert len({dihedral(torch.arange(9.0).reshape(3, 3), i).flatten().tolist().__str__() for i in DIHEDRAL}) == 8


def test_dihedral_box_follows_the_pixels():
    square = torch.zeros(10, 10)
    square[1:4, 6:9] = 1
    for index in DIHEDRAL:
        top, bottom, left, right = dihedral_box((1, 4, 6, 9), 10, index)
        moved = dihedral(square, index)
        assert moved[top:bottom, left:right].sum() == 9 and moved.sum() == 9


def test_tta_settings_become_transform_indices():
    assert tta_transforms(False) == (0,) and tta_transforms(None) == (0,)
    assert tta_transforms(True) == DIHEDRAL
    assert tta_transforms([0, 2, 4]) == (0, 2, 4)
    for bad in ([9], "yes", []):
        with pytest.raises(UserError, match="test_tta="):
            tta_transforms(bad, "test_tta")


def test_tta_mean_maps_each_view_back_and_averages():
    x = torch.arange(16.0).reshape(1, 4, 4)
    seen = []

    def predict(view: torch.Tensor, index: int) -> torch.Tensor:
        seen.append(index)
        return view * (index + 1)  # a view-dependent output, mapped back by the inverse transform

    mean = tta_mean(x, (0, 3, 5), predict)
    assert seen == [0, 3, 5]
    torch.testing.assert_close(mean, x * (1 + 4 + 6) / 3)
    assert tta_mean(x, (0,), lambda view, _: view.to(torch.bfloat16)).dtype == torch.float32


def test_affinity_tta_turns_the_offsets_with_the_image():
    """A predictor that computes each view's affinities exactly (from its cells) is equivariant, so every flipped or
    rotated view, turned back with its offsets moved (or negated and shifted), must give the image's affinities."""
    import numpy as np
    from scipy import ndimage

    from src.inference.tta import tta_mean_affinities
    from src.models.affinities import affinities_of_cells

    rng = np.random.default_rng(0)
    cells, _ = ndimage.label(ndimage.gaussian_filter(rng.random((40, 52)), 2) > 0.5)
    offsets = [[-1, 0], [0, -1], [-9, -4], [-4, -9], [4, -9], [9, -4], [-5, -5], [5, -5], [0, -7], [-7, 0]]

    def exact(view, _):
        affinities, _ = affinities_of_cells(view[0, 0].numpy().astype(np.int64), offsets)
        return torch.cat([view.float(), torch.from_numpy(affinities)[None]], dim=1)

    want, inside = affinities_of_cells(cells, offsets)
    image = torch.from_numpy(cells)[None, None].float()
    for transforms in ([t] for t in DIHEDRAL):
        out = tta_mean_affinities(image, transforms, exact, offsets)[0]
        assert torch.equal(out[0], image[0, 0])  # the other channels are turned back as they are
        assert np.array_equal(out[1:].numpy()[inside], want[inside]), transforms
    assert np.array_equal(tta_mean_affinities(image, DIHEDRAL, exact, offsets)[0, 1:].numpy()[inside], want[inside])
    # a real network's views differ; the mean of its turned-back views is what the recipe predicts
    with pytest.raises(ValueError, match="counterpart"):
        tta_mean_affinities(image, [1], exact, [[-1, 0], [0, -3]])
