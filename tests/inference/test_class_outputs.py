"""The cells' probability and the class map from class probabilities."""

import numpy as np
import pytest
import torch

from src.inference.class_outputs import cell_probability, class_map


def test_two_classes_give_the_other_channel_bit_for_bit_and_more_give_one_minus_the_boundary():
    two = torch.tensor([[[0.3]], [[0.7]]])
    assert cell_probability(two, 0) is not None and torch.equal(cell_probability(two, 0), two[1])
    assert torch.equal(cell_probability(two, 1), two[0])
    three = np.array([[[0.2]], [[0.5]], [[0.3]]], np.float32)
    assert cell_probability(three, 0)[0, 0] == pytest.approx(0.8)
    batch = np.stack([three, three])  # (B, C, H, W)
    assert cell_probability(batch, 1).shape == (2, 1, 1) and cell_probability(batch, 1)[0, 0, 0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no boundary class"):
        cell_probability(three, None)


def test_the_class_map_is_the_most_probable_class_as_uint8():
    probs = np.array([[[0.2, 0.6]], [[0.5, 0.1]], [[0.3, 0.3]]], np.float32)
    assert class_map(probs).tolist() == [[1, 0]] and class_map(probs).dtype == np.uint8
    assert class_map(torch.from_numpy(probs)).tolist() == [[1, 0]]
