"""A checkpoint's network built without Lightning (src.predict, src.export) predicts what the training module
predicts, names its outputs the same, and refuses weights that do not fit it."""

import subprocess
import sys

import pytest
import torch

from src.models.checkpoint import load_module, load_network
from src.utils.errors import UserError
from tests.conftest import small_module


def _checkpoint(path, members=1, classes=None, affinities=None):
    torch.manual_seed(0)
    module = small_module(members, classes, affinities)
    for norm in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # statistics of a trained net
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


@pytest.mark.parametrize(
    "members, classes, affinities", [(1, None, None), (2, ["a", "b", "c"], [[-1, 0], [0, -3]]), (1, None, [[0, -1]])]
)
def test_the_network_alone_predicts_what_the_training_module_predicts(tmp_path, members, classes, affinities):
    path = _checkpoint(tmp_path / "m.ckpt", members, classes, affinities)
    module, network = load_module(path), load_network(path)
    assert not network.training and isinstance(network, torch.nn.Module)
    assert (network.classes, network.offsets, network.boundary_class) == (
        module.classes,
        module.offsets,
        module.boundary_class,
    )
    assert network.hparams["net"] == module.hparams["net"]
    image = torch.randn(2, 1, 37, 45)  # any size: mirror-padded to fit the network, cropped back
    with torch.no_grad():
        expected, got = module.probabilities(image), network.probabilities(image)
        assert got.shape == (2, len(module.classes) + len(module.offsets), 37, 45)
        assert torch.equal(got, expected)
        if module.boundary_class is not None:
            assert torch.equal(network.interior_probability(image), module.interior_probability(image))


def test_weights_that_do_not_fit_the_saved_config_are_refused_in_one_line(tmp_path):
    path = _checkpoint(tmp_path / "m.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"]["net"]["base_channels"] = 8  # the config no longer describes the weights
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match=r"checkpoint .*m\.ckpt does not match its own network config"):
        load_network(path)


def test_the_network_is_built_without_importing_lightning(tmp_path):
    path = _checkpoint(tmp_path / "m.ckpt")
    script = f"""
import sys, torch
from src.models.checkpoint import load_network
network = load_network({str(path)!r})
network.probabilities(torch.zeros(1, 1, 16, 16))
print(sorted(name for name in ("lightning", "torchmetrics") if name in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
