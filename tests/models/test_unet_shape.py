"""The U-Net's settings and size arithmetic without a network: the same answers as the network built."""

import pytest
import torch

from src.models.unet import UNet
from src.models.unet_shape import UNetSizes, check_members, check_unet_settings

GOOD = dict(depth=3, base_channels=4, padding="same", norm="batch", dropout=0.0, up_mode="transpose")


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_the_sizes_are_those_the_built_network_gives(padding):
    sizes, net = UNetSizes(2, padding), UNet(depth=2, base_channels=2, padding=padding).eval()
    for size in range(40, 80):
        try:
            expected = net(torch.zeros(1, 1, size, size)).shape[-1]
        except (RuntimeError, ValueError):
            expected = None  # the network refuses it, so must the arithmetic
        if expected is None:
            with pytest.raises(ValueError, match=f"input size {size} cannot pass"):
                sizes.output_size(size)
        else:
            assert sizes.output_size(size) == expected


def test_a_refused_size_names_the_nearest_that_pass():
    with pytest.raises(ValueError, match="nearest sizes that work: 32 or 40"):
        UNetSizes(3, "same").output_size(36)
    assert UNetSizes(4, "valid").valid_input_size(388) == 572  # the paper's tile: 572 in, 388 out


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"depth": 0}, "model.depth=0 must be at least 1"),
        ({"base_channels": 0}, "model.base_channels=0"),
        ({"padding": "full"}, "model.padding='full'"),
        ({"norm": "layer"}, "model.norm='layer' is not one of batch, instance, group, none"),
        ({"dropout": 1.0}, "model.dropout=1.0"),
        ({"up_mode": "pixelshuffle"}, "model.up_mode='pixelshuffle'"),
        ({"contrast_sigma": -1.0}, "model.contrast_sigma=-1.0"),
    ],
)
def test_settings_no_unet_can_have_are_named(change, words):
    check_unet_settings(**GOOD)
    with pytest.raises(ValueError, match=words):
        check_unet_settings(**{**GOOD, **change})
    with pytest.raises(ValueError, match=words):  # the network refuses them alike
        UNet(**{**GOOD, **change})


def test_an_ensemble_needs_a_member():
    check_members(1)
    with pytest.raises(ValueError, match="model.members=0 must be at least 1"):
        check_members(0)
