import pytest
import torch

from src.inference.whole import predict_logits
from src.models.unet import UNet


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("size", [(37, 50), (64, 64), (5, 9), (130, 77)])
def test_any_image_size_gives_output_of_that_size(padding, size):
    net = UNet(depth=3, base_channels=2, padding=padding).eval()
    with torch.no_grad():
        out = predict_logits(net, torch.randn(2, 1, *size))
    assert out.shape == (2, 2, *size)


def test_whole_prediction_equals_plain_forward_when_size_fits():
    torch.manual_seed(0)
    net = UNet(depth=2, base_channels=4).eval()
    x = torch.randn(1, 1, 32, 48)
    with torch.no_grad():
        assert torch.allclose(predict_logits(net, x), net(x))
