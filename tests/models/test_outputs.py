import pytest

from src.models.outputs import named_outputs
from src.utils.errors import UserError


def test_the_classes_come_first_then_one_affinity_channel_per_offset():
    affinities = {"offsets": [[-1, 0], [0, -1], [-9, 0]]}
    assert named_outputs(5, ["membrane", "interior"], affinities) == (
        ["membrane", "interior"],
        ((-1, 0), (0, -1), (-9, 0)),
    )
    assert named_outputs(3, ["a", "b", "c"], None) == (["a", "b", "c"], ())


def test_a_checkpoint_without_class_names_is_the_binary_unet():
    assert named_outputs(2, None, None) == (["membrane", "interior"], ())
    with pytest.raises(UserError, match=r"classes None do not match the network's 3 output channels"):
        named_outputs(3, None, None)


def test_names_that_do_not_fit_the_channels_are_refused():
    with pytest.raises(UserError, match=r"classes \['a', 'b'\] do not match the network's 1 output channels"):
        named_outputs(3, ["a", "b"], {"offsets": [[0, -1], [-1, 0]]})
