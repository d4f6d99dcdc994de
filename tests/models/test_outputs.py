import pytest

from src.models.outputs import affinity_settings, check_offsets, named_outputs
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


def test_offsets_are_checked():
    assert check_offsets([[-1, 0], [0, -3]]) == ((-1, 0), (0, -3))
    for bad in ([[0, 0]], [[-1, 0], [-1, 0]], [[-1, 0, 0]], "x", []):
        with pytest.raises(UserError, match="model.offsets"):
            check_offsets(bad)


def test_affinity_settings_take_the_boundary_rule():
    net = {"num_classes": 2, "target": "affinities", "offsets": [[-1, 0]], "affinity_boundary": "nearest_cell"}
    assert affinity_settings(net)["boundary"] == "nearest_cell" and net["num_classes"] == 3
    with pytest.raises(UserError, match="model.affinity_boundary=grow must be one of cut, nearest_cell"):
        affinity_settings({"num_classes": 2, "target": "affinities", "offsets": [[-1, 0]], "affinity_boundary": "grow"})


def test_the_affinity_loss_weight_must_be_positive():
    net = {"num_classes": 2, "target": "affinities", "offsets": [[-1, 0]], "affinity_weight": 0.5}
    assert affinity_settings(net)["weight"] == 0.5
    for bad in (0, -1):
        net = {"num_classes": 2, "target": "affinities", "offsets": [[-1, 0]], "affinity_weight": bad}
        with pytest.raises(UserError, match=f"model.affinity_weight={float(bad)} must be positive"):
            affinity_settings(net)
