"""The expanding path run over a box of each tile gives the whole tile's output there, with less work."""

import pytest
import torch

from src.inference.regions import axis_spans, box_probabilities, class_probabilities, output_probabilities
from src.models.unet import UNet, UNetEnsemble


def _full(net, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x).softmax(dim=1)[:, 1]


BOXES = [(0, 64, 0, 48), (3, 17, 40, 48), (20, 41, 0, 5), (63, 64, 11, 30), (30, 34, 30, 34)]


@pytest.mark.parametrize("up_mode", ["transpose", "bilinear", "nearest"])
def test_box_probabilities_equal_the_whole_tiles_output_inside_each_box(up_mode):
    torch.manual_seed(0)
    net = UNet(depth=3, base_channels=4, up_mode=up_mode).eval()
    x = torch.randn(len(BOXES), 1, 64, 48)
    full = _full(net, x)
    with torch.no_grad():
        boxed = box_probabilities(net, x, BOXES)
    for row, (prob, (top, bottom, left, right)) in enumerate(zip(boxed, BOXES, strict=True)):
        assert prob.shape == (2, bottom - top, right - left) and prob.dtype == torch.float32
        torch.testing.assert_close(prob[1], full[row, top:bottom, left:right], atol=2e-6, rtol=0)
        torch.testing.assert_close(prob.sum(0), torch.ones_like(prob[0]))  # class probabilities


def test_tiles_sharing_a_box_run_together_and_still_match():
    torch.manual_seed(1)
    net = UNet(depth=2, base_channels=4).eval().to(memory_format=torch.channels_last)
    x = torch.randn(4, 1, 32, 32).contiguous(memory_format=torch.channels_last)
    boxes = [(8, 24, 0, 20)] * 2 + [(0, 32, 0, 32)] * 2
    with torch.no_grad():
        boxed = box_probabilities(net, x, boxes)
    full = _full(net, x)
    for row, (top, bottom, left, right) in enumerate(boxes):
        torch.testing.assert_close(boxed[row][1], full[row, top:bottom, left:right], atol=2e-6, rtol=0)


def test_an_ensemble_gives_its_members_mean_probability_inside_the_box():
    torch.manual_seed(2)
    ensemble = UNetEnsemble(members=2, depth=2, base_channels=4).eval()
    x = torch.randn(2, 1, 32, 32)
    boxes = [(4, 20, 10, 32), (0, 8, 0, 8)]
    with torch.no_grad():
        boxed = box_probabilities(ensemble, x, boxes)
        mean = torch.stack([m(x).softmax(1)[:, 1] for m in ensemble.members]).mean(0)
    for row, (top, bottom, left, right) in enumerate(boxes):
        torch.testing.assert_close(boxed[row][1], mean[row, top:bottom, left:right], atol=2e-6, rtol=0)


def test_spans_cover_the_box_with_two_pixels_a_level_and_stop_at_the_tile():
    # the middle third of a 256 tile (kept pixels 64..191) at depth 4, transposed up-sampling
    spans = axis_spans(64, 192, 256, depth=4, up_halo=0)
    assert [s.kept for s in spans] == [(64, 192), (31, 97), (14, 50), (6, 26)]
    assert [s.needed for s in spans] == [(62, 194), (29, 99), (12, 52), (4, 28)]
    assert spans[-1].below == (2, 14)  # of the 16x16 bottom of the U
    # the expanding path reads about half of the finest level instead of all of it
    assert (spans[0].needed[1] - spans[0].needed[0]) / 256 < 0.52
    at_border = axis_spans(0, 192, 256, depth=4, up_halo=1)
    assert all(s.needed[0] == 0 and s.below[0] == 0 for s in at_border)  # clipped at the tile's edge


def test_bad_boxes_and_networks_are_refused():
    net = UNet(depth=2, base_channels=4).eval()
    x = torch.randn(1, 1, 32, 32)
    with pytest.raises(ValueError, match="does not lie"):
        box_probabilities(net, x, [(0, 33, 0, 8)])
    with pytest.raises(ValueError, match="2 boxes for a batch of 1"):
        box_probabilities(net, x, [(0, 8, 0, 8)] * 2)
    with pytest.raises(ValueError, match="same-padding"):
        box_probabilities(UNet(depth=2, base_channels=4, padding="valid"), torch.randn(1, 1, 44, 44), [(0, 4, 0, 4)])


def test_output_probabilities_are_the_class_softmax_then_the_affinity_sigmoids():
    logits = torch.randn(2, 5, 3, 4)
    probs = output_probabilities(logits, affinity_channels=3)
    assert torch.allclose(probs[:, :2], class_probabilities(logits[:, :2]))
    assert torch.allclose(probs[:, 2:], logits[:, 2:].sigmoid())
    assert torch.equal(output_probabilities(logits), class_probabilities(logits))
