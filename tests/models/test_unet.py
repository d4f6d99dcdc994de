import pytest
import torch

from src.models.unet import LocalContrast, UNet, UNetEnsemble, UpConvolution, build_unet, concat_channels


@pytest.mark.parametrize("depth", [1, 3, 4, 5])
def test_same_padding_keeps_size(depth):
    net = UNet(depth=depth, base_channels=4)
    size = 2**depth * 3
    out = net(torch.zeros(2, 1, size, 2 * size))
    assert out.shape == (2, 2, size, 2 * size)


def test_paper_valid_sizes():
    # The paper's figure: a 572x572 tile gives a 388x388 output map.
    net = UNet(depth=4, base_channels=2, padding="valid", norm="none")
    assert net.output_size(572) == 388
    assert net.valid_input_size(388) == 572
    out = net(torch.zeros(1, 1, 572, 572))
    assert out.shape == (1, 2, 388, 388)


def test_size_that_cannot_pass_names_working_sizes():
    net = UNet(depth=4, base_channels=2)
    with pytest.raises(ValueError, match="nearest sizes that work: 96 or 112"):
        net(torch.zeros(1, 1, 100, 112))
    valid = UNet(depth=4, base_channels=2, padding="valid")
    with pytest.raises(ValueError, match="cannot pass a U-Net of depth 4 with valid padding"):
        valid(torch.zeros(1, 1, 573, 572))


def test_bad_arguments_name_the_key():
    with pytest.raises(ValueError, match="model.depth=0"):
        UNet(depth=0)
    with pytest.raises(ValueError, match="model.padding='full'"):
        UNet(padding="full")
    with pytest.raises(ValueError, match="model.norm='layer'"):
        UNet(norm="layer")


def test_skip_connections_carry_information():
    # Zeroing the bottleneck must not zero the output: the skips feed the expanding path directly.
    torch.manual_seed(0)
    net = UNet(depth=2, base_channels=4, norm="none").eval()
    for p in net.downs[-1].parameters():
        p.data.zero_()
    x = torch.randn(1, 1, 32, 32)
    out = net(x)
    assert out.abs().sum() > 0
    assert not torch.allclose(out, net(torch.randn(1, 1, 32, 32)))


def test_build_unet_gives_one_network_or_an_ensemble_of_independent_ones():
    single = build_unet(depth=2, base_channels=4)
    assert type(single) is UNet
    torch.manual_seed(0)
    pair = build_unet(members=2, depth=2, base_channels=4)
    assert isinstance(pair, UNetEnsemble) and len(pair.members) == 2
    first, second = (m.inc[0].weight for m in pair.members)
    assert not torch.equal(first, second)  # each member initialised on its own
    assert (pair.depth, pair.padding, pair.output_size(64)) == (2, "same", 64)
    x = torch.randn(3, 1, 64, 64)
    assert pair.train()(x).shape == (6, 2, 64, 64)  # the members' logits, stacked along the batch
    assert pair.eval()(x).shape == (3, 2, 64, 64)
    with pytest.raises(ValueError, match="members=0"):
        build_unet(members=0, depth=2, base_channels=4)


def test_split_batch_gives_each_member_its_own_share_of_the_crops():
    torch.manual_seed(0)
    pair = build_unet(members=2, split_batch=True, depth=2, base_channels=4, norm="none").train()
    x = torch.randn(4, 1, 32, 32)
    out = pair(x)
    first, second = pair.members
    assert out.shape == (4, 2, 32, 32)  # one output per crop, not one per member and crop
    assert torch.allclose(out[:2], first(x[:2])) and torch.allclose(out[2:], second(x[2:]))
    assert not torch.allclose(out[2:], first(x[2:]))
    with pytest.raises(ValueError, match="multiple of model.members"):
        pair(torch.randn(3, 1, 32, 32))
    pair.eval()  # prediction is unchanged: the mean of both members on every crop
    mean = (first(x).softmax(1) + second(x).softmax(1)) / 2
    assert torch.allclose(pair(x).softmax(1), mean, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_concat_channels_equals_torch_cat_in_every_memory_format(dtype):
    torch.manual_seed(0)
    first = torch.randn(2, 3, 10, 12, dtype=dtype, requires_grad=True)
    second = torch.randn(2, 5, 10, 12, dtype=dtype, requires_grad=True)
    expected = torch.cat([first, second], dim=1)
    for fmt in (torch.contiguous_format, torch.channels_last):
        a, b = first.contiguous(memory_format=fmt), second.contiguous(memory_format=fmt)
        out = concat_channels(a, b)
        assert out.shape == (2, 8, 10, 12) and torch.equal(out, expected)
        assert out.is_contiguous(memory_format=fmt)
        # Gradients reach each input as through torch.cat.
        weight = torch.randn_like(expected)
        (ga, gb) = torch.autograd.grad((out * weight).sum(), [first, second])
        assert torch.equal(ga, weight[:, :3]) and torch.equal(gb, weight[:, 3:])
    # A cropped channels-last view (valid padding crops the skip connection) concatenates as well.
    wide = torch.randn(2, 3, 14, 16).contiguous(memory_format=torch.channels_last)
    cropped = wide[..., 2:12, 2:14]
    assert torch.equal(concat_channels(cropped, second.detach()), torch.cat([cropped, second.detach()], 1))


@pytest.mark.parametrize("autocast", [False, True])
def test_up_convolution_equals_the_transposed_convolution_with_its_gradients(autocast):
    torch.manual_seed(0)
    reference = torch.nn.ConvTranspose2d(6, 4, kernel_size=2, stride=2)
    up = UpConvolution(6, 4)
    up.load_state_dict(reference.state_dict())  # the same parameters, under the same names
    image = torch.randn(3, 6, 5, 7)
    tolerance = {"rtol": 2e-2, "atol": 2e-2} if autocast else {"rtol": 1e-5, "atol": 1e-5}
    for fmt in (torch.channels_last, torch.contiguous_format):
        for grad in (True, False):  # with a gradient the matrix product runs (channels-last); else the convolution
            results = []
            for layer in (reference, up):
                layer.zero_grad()
                x = image.contiguous(memory_format=fmt).requires_grad_(grad)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast), torch.set_grad_enabled(grad):
                    y = layer(x)
                assert y.shape == (3, 4, 10, 14) and y.is_contiguous(memory_format=fmt)
                grads = ()
                if grad:
                    (y.float() * torch.arange(y.numel()).reshape(y.shape).sin()).sum().backward()
                    grads = (x.grad, layer.weight.grad, layer.bias.grad)
                results.append((y.float(), *grads))
            for got, expected in zip(results[1], results[0], strict=True):
                assert got.abs().max() > 0
                torch.testing.assert_close(got, expected, **tolerance)
    # Each output pixel is the weight's tap at its offset inside its 2x2 block: pixel (3, 4) is input (1, 2)'s
    # tap (1, 0).
    x = torch.randn(1, 6, 5, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = up(x)
    expected = torch.einsum("c,co->o", x[0, :, 1, 2], up.weight[:, :, 1, 0]) + up.bias
    torch.testing.assert_close(y[0, :, 3, 4], expected)


def test_an_ensemble_averages_class_probabilities_and_affinities_each_as_such():
    from src.models.unet import build_unet

    torch.manual_seed(0)
    ensemble = build_unet(members=2, affinity_channels=3, depth=2, base_channels=4, num_classes=5).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        members = [member(x) for member in ensemble.members]
        out = ensemble(x)
    classes = torch.stack([m[:, :2].softmax(dim=1) for m in members]).mean(dim=0)
    joined = torch.stack([m[:, 2:].sigmoid() for m in members]).mean(dim=0)
    assert torch.allclose(out[:, :2].softmax(dim=1), classes, atol=1e-6)
    assert torch.allclose(out[:, 2:].sigmoid(), joined, atol=1e-5)


def _reference_local_contrast(image: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """The same normalisation by plain loops over numpy's mirrored image: three box means of 2r + 1 pixels."""
    import numpy as np

    def box(a: np.ndarray, axis: int) -> np.ndarray:
        padded = np.pad(a, [(radius, radius) if d == axis else (0, 0) for d in range(a.ndim)], mode="reflect")
        windows = [np.take(padded, range(i, i + a.shape[axis]), axis=axis) for i in range(2 * radius + 1)]
        return np.mean(windows, axis=0)

    def smooth(a: np.ndarray) -> np.ndarray:
        for _ in range(3):
            a = box(box(a, 1), 0)
        return a

    a = image.double().numpy()
    centred = a - smooth(a)
    return torch.from_numpy(centred / np.sqrt(smooth(centred**2) + eps))


def test_local_contrast_equals_its_definition_and_evens_out_contrast():
    torch.manual_seed(0)
    image = torch.randn(40, 48)
    image[:, 24:] = 0.3 * image[:, 24:] + 3.0  # a faint, shifted half: a blurred or dim part of a slice
    layer = LocalContrast(sigma=2.0)
    assert layer.radius == 2  # three boxes of 5 pixels: variance 6, sigma 2.45, the nearest to 2
    out = layer(image[None, None])[0, 0]
    assert torch.allclose(out.double(), _reference_local_contrast(image, 2, layer.eps), atol=1e-4)
    # the faint half comes out at about the contrast of the sharp one (it went in at 0.3 of it)
    assert out[:, 30:].std() > 0.8 * out[:, :18].std()


def test_contrast_sigma_adds_a_fixed_layer_that_checkpoints_do_not_carry():
    plain, normalised = UNet(depth=3, base_channels=4), UNet(depth=3, base_channels=4, contrast_sigma=16)
    assert isinstance(normalised.contrast, LocalContrast)
    assert plain.state_dict().keys() == normalised.state_dict().keys()
    normalised.load_state_dict(plain.state_dict())  # so older checkpoints (no contrast) load as they are
    image = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(normalised.eval()(image), plain.eval()(image))
        assert torch.allclose(normalised(image), plain(normalised.contrast(image)))
