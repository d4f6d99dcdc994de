"""The export engine: the exported module is the network's interior probability; the checked sizes fit the net."""

import pytest
import torch

from src.inference.regions import class_probabilities
from src.models.exported import InteriorProbability, check_sizes, largest_difference, write_onnx
from src.models.unet import UNet
from src.utils.errors import UserError


def test_interior_probability_is_the_softmax_of_the_interior_channel():
    torch.manual_seed(0)
    net = UNet(depth=2, base_channels=4).eval()
    x = torch.randn(2, 1, 32, 48)
    with torch.no_grad():
        got = InteriorProbability(net)(x)
        expected = net(x).softmax(dim=1)[:, 1:2]
    assert got.shape == (2, 1, 32, 48)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)  # the margin's sigmoid: the softmax, rounded apart
    with torch.no_grad():
        assert torch.equal(got, class_probabilities(net(x))[:, 1:2])  # exactly what inference computes


def test_checked_sizes_are_inputs_the_network_takes():
    net = UNet(depth=3, base_channels=4, padding="same")
    assert check_sizes(net, [20, 64, 70]) == [24, 64, 72]


def test_an_opset_the_exporter_cannot_convert_down_to_is_refused_not_replaced(tmp_path):
    """Where torch's exporter cannot convert down to the opset asked, it keeps its own (18 in torch 2.13) without a
    word: refused, and no file is left."""
    net = InteriorProbability(UNet(depth=2, base_channels=4).eval()).eval()
    with torch.no_grad(), pytest.raises(UserError, match=r"opset=10: torch's ONNX exporter wrote opset \d+ instead"):
        write_onnx(net, torch.randn(2, 1, 32, 32), tmp_path / "model.onnx", 10)
    assert list(tmp_path.iterdir()) == []


def test_largest_difference_of_the_model_with_itself_is_zero():
    net = InteriorProbability(UNet(depth=2, base_channels=4).eval()).eval()

    def run(x):
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()

    assert largest_difference(net, run, [32]) == 0.0


def test_a_network_of_several_classes_is_exported_with_every_class_probability():
    from src.models.exported import exported_model
    from src.models.module import SegmentationModule

    names = ["membrane", "glia", "mitochondria"]
    module = SegmentationModule(
        net={"_target_": "src.models.unet.UNet", "depth": 2, "base_channels": 4, "num_classes": 3},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True},
        classes=names,
    )
    model, output = exported_model(module)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        probs = model(x)
    assert output == "classes" and probs.shape == (1, 3, 32, 32)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 32, 32))
    two = SegmentationModule(
        net={"_target_": "src.models.unet.UNet", "depth": 2, "base_channels": 4},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True},
    )
    assert exported_model(two)[1] == "interior"


def test_an_affinity_network_is_exported_with_its_class_probabilities_and_affinities():
    from src.models.exported import exported_model
    from src.models.module import SegmentationModule

    offsets = [[-1, 0], [0, -1], [-4, 0]]
    module = SegmentationModule(
        net={"_target_": "src.models.unet.UNet", "depth": 2, "base_channels": 4, "num_classes": 5},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True},
        affinities={"offsets": offsets},
    ).eval()
    model, output = exported_model(module)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), module.probabilities(x))
    assert output == "classes_affinities"
