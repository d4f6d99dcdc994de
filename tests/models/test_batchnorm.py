"""BatchNorm2d: nn.BatchNorm2d's results, running statistics and gradients, through NCHW kernels where it must."""

import pytest
import torch
from torch import nn

from src.models.batchnorm import BatchNorm2d, fuse_batchnorm, needs_nchw_kernels
from src.models.unet import UNet

CL = torch.channels_last


def _train_step(norm: nn.Module, image: torch.Tensor, weights: torch.Tensor, autocast: bool):
    x = image.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y = torch.relu(norm(x))
    (y.float() * weights).sum().backward()
    grads = [x.grad] + [p.grad for p in norm.parameters()]
    return y, grads


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize(
    "options", [{}, {"momentum": None}, {"affine": False}, {"track_running_stats": False}], ids=str
)
def test_it_trains_and_evaluates_as_nn_batchnorm2d(autocast, options):
    torch.manual_seed(0)
    image = (torch.randn(3, 8, 12, 10) * 2 + 0.5).contiguous(memory_format=CL)
    weights = torch.randn(3, 8, 12, 10)
    ours, reference = BatchNorm2d(8, **options), nn.BatchNorm2d(8, **options)
    if ours.affine:
        with torch.no_grad():
            for p in (*ours.parameters(), *reference.parameters()):
                p.copy_(torch.linspace(0.5, 1.5, 8))
    assert needs_nchw_kernels(image)
    tolerance = {"rtol": 2e-2, "atol": 2e-2} if autocast else {"rtol": 1e-5, "atol": 1e-5}
    for _ in range(3):  # three steps: the running statistics follow the same averages
        (y, grads), (expected, expected_grads) = (_train_step(n, image, weights, autocast) for n in (ours, reference))
        assert y.dtype == expected.dtype and y.is_contiguous(memory_format=CL)
        assert grads[0].is_contiguous(memory_format=CL)
        torch.testing.assert_close(y, expected, **tolerance)
        assert len(grads) == len(expected_grads) == (3 if ours.affine else 1)
        for got, want in zip(grads, expected_grads, strict=True):
            assert want.abs().max() > 0
            torch.testing.assert_close(got, want, **tolerance)
        for p in (*ours.parameters(), *reference.parameters()):
            p.grad = None
    assert ours.state_dict().keys() == reference.state_dict().keys()
    for name, buffer in reference.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[name], buffer)
    if ours.track_running_stats:
        assert int(ours.num_batches_tracked) == 3 and not torch.equal(ours.running_var, torch.ones(8))
    ours.eval(), reference.eval()
    torch.testing.assert_close(ours(image), reference(image))


def test_only_slow_channels_last_layouts_take_the_nchw_kernels():
    for channels, expected in ((8, True), (12, True), (2, True), (16, False), (32, False), (64, False), (1, False)):
        assert needs_nchw_kernels(torch.zeros(2, channels, 6, 6).contiguous(memory_format=CL)) is expected
        assert not needs_nchw_kernels(torch.zeros(2, channels, 6, 6))  # NCHW already
    norm = BatchNorm2d(8)
    y = norm(torch.randn(2, 8, 6, 6).contiguous(memory_format=CL))
    assert "BatchNormInNCHW" in y.grad_fn.name()  # the NCHW path ran
    assert "NativeBatchNorm" in norm(torch.randn(2, 8, 6, 6)).grad_fn.name()  # nn.BatchNorm2d's own
    with torch.no_grad():
        assert norm.eval()(torch.randn(2, 8, 6, 6).contiguous(memory_format=CL)).grad_fn is None


def test_the_nchw_gradients_are_as_near_float64_as_the_channels_last_kernels():
    torch.manual_seed(0)
    image = torch.randn(4, 8, 64, 64).contiguous(memory_format=CL)
    weights = torch.randn(4, 8, 64, 64)
    exact = _train_step(nn.BatchNorm2d(8).double(), image.double(), weights.double(), False)[1]
    for norm in (BatchNorm2d(8), nn.BatchNorm2d(8)):
        grads = _train_step(norm, image, weights, False)[1]
        for got, want in zip(grads, exact, strict=True):
            torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4)


def test_fusing_batchnorm_keeps_the_output():
    net = UNet(depth=3, base_channels=4, padding="same").eval()
    for module in net.modules():  # give the norms non-trivial statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    folded = fuse_batchnorm(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) > 0  # the original is untouched
    x = torch.randn(2, 1, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), atol=1e-4, rtol=1e-4)
