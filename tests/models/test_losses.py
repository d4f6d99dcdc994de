"""Losses: values against hand computations, and the weight map's effect."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from src.models.losses import CenterlineDice, CrossEntropy, Dice, DiceCrossEntropy, one_hot, soft_skeleton


@pytest.fixture()
def batch():
    torch.manual_seed(0)
    return torch.randn(2, 2, 8, 8), torch.randint(0, 2, (2, 8, 8))


def test_unweighted_cross_entropy_is_the_plain_mean(batch):
    logits, label = batch
    assert torch.allclose(CrossEntropy()(logits, label), F.cross_entropy(logits, label))


def test_weighted_cross_entropy_is_the_weight_normalised_sum(batch):
    logits, label = batch
    weight = torch.rand(2, 8, 8) * 10
    per_pixel = F.cross_entropy(logits, label, reduction="none")
    expected = (per_pixel * weight).sum() / weight.sum()
    assert torch.allclose(CrossEntropy(weighted=True)(logits, label, weight), expected)
    # Scaling every weight by a constant leaves the loss unchanged.
    assert torch.allclose(CrossEntropy(weighted=True)(logits, label, 3 * weight), expected)
    # Without a weight map (whole validation slices) the weighted loss is the plain mean.
    assert torch.allclose(CrossEntropy(weighted=True)(logits, label), per_pixel.mean())


def test_weight_map_pulls_the_gradient_to_weighted_pixels(batch):
    logits, label = batch
    logits.requires_grad_(True)
    weight = torch.ones(2, 8, 8)
    weight[0, 3, 3] = 100.0
    CrossEntropy(weighted=True)(logits, label, weight).backward()
    grad = logits.grad.abs().sum(dim=1)
    assert grad[0, 3, 3] > 50 * grad[0, 0, 0]


def test_dice_is_zero_for_a_perfect_prediction_and_matches_a_hand_value():
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    label[0, :2] = 1
    perfect = F.one_hot(label, 2).permute(0, 3, 1, 2).float() * 40 - 20
    assert Dice(smooth=0)(perfect, label).item() == pytest.approx(0, abs=1e-6)
    uniform = torch.zeros(1, 2, 4, 4)  # p = 0.5 everywhere: dice per class = 2*4 / (8 + 8) = 0.5
    assert Dice(smooth=0)(uniform, label).item() == pytest.approx(0.5)


def test_dice_cross_entropy_adds_its_parts(batch):
    logits, label = batch
    combined = DiceCrossEntropy(dice_weight=0.5, ce_weight=2.0)(logits, label)
    expected = 0.5 * Dice()(logits, label) + 2.0 * F.cross_entropy(logits, label)
    assert torch.allclose(combined, expected)
    assert not math.isnan(combined.item())


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_from_the_log_softmax_equals_torch_cross_entropy(smoothing):
    torch.manual_seed(1)
    logits, label = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    expected = F.cross_entropy(logits, label, label_smoothing=smoothing)
    torch.testing.assert_close(CrossEntropy(label_smoothing=smoothing)(logits, label), expected)


def test_one_hot_equals_torch_one_hot_moved_to_the_class_axis():
    label = torch.randint(0, 3, (2, 5, 7))
    expected = F.one_hot(label, 3).permute(0, 3, 1, 2).float()
    assert torch.equal(one_hot(label, 3, torch.float32), expected)


@pytest.mark.parametrize("cldice_weight", [0.0, 0.5])
def test_dice_cross_entropy_with_one_softmax_gives_the_gradient_of_its_separate_parts(cldice_weight):
    # The combined loss shares one log-softmax; each part on its own computes its own softmax from the logits.
    torch.manual_seed(2)
    logits = (torch.randn(2, 2, 16, 16) * 3).to(memory_format=torch.channels_last)
    label, weight = torch.randint(0, 2, (2, 16, 16)), torch.rand(2, 16, 16) + 0.5
    combined = DiceCrossEntropy(dice_weight=0.7, ce_weight=1.3, weighted=True, cldice_weight=cldice_weight)
    shared = logits.clone().requires_grad_(True)
    separate = logits.clone().requires_grad_(True)
    combined(shared, label, weight).backward()
    parts = 0.7 * combined.dice(separate, label) + 1.3 * combined.ce(separate, label, weight)
    if cldice_weight:
        parts = parts + cldice_weight * combined.cldice(separate, label)
    parts.backward()
    torch.testing.assert_close(shared.grad, separate.grad, rtol=1e-5, atol=1e-7)
    assert shared.grad.abs().max() > 1e-4  # a real gradient, not zeros on both sides


@pytest.mark.parametrize(
    ("option", "loss_class", "uses_weight_map"),
    [
        ("ce", CrossEntropy, False),
        ("weighted_ce", CrossEntropy, True),
        ("dice", Dice, False),
        ("dice_ce", DiceCrossEntropy, False),
        ("dice_weighted_ce", DiceCrossEntropy, True),
    ],
)
def test_every_loss_option_composes_and_asks_for_the_weight_map_it_needs(option, loss_class, uses_weight_map):
    from hydra.utils import instantiate

    from tests.conftest import compose_config

    cfg = compose_config("train", [f"loss={option}"])
    loss = instantiate(cfg.loss)
    assert isinstance(loss, loss_class)
    assert (cfg.data.weight_map is not None) == uses_weight_map
    assert getattr(loss, "needs_weight_map", False) == uses_weight_map


def test_soft_skeleton_of_a_band_is_its_centre_line():
    band = torch.zeros(1, 1, 20, 20)
    band[..., 5:10, :] = 1  # a horizontal band 5 pixels wide: rows 5-9
    skeleton = soft_skeleton(band, iterations=5)
    assert torch.equal(skeleton[0, 0, :, 4:16].sum(dim=1).nonzero().flatten(), torch.tensor([7]))
    assert torch.all(skeleton[0, 0, 7, 4:16] == 1)


def _membrane_logits(membrane: torch.Tensor) -> torch.Tensor:
    """Saturated logits (class 0 = membrane) for a boolean membrane mask ``(B, H, W)``."""
    return torch.stack([membrane.float(), (~membrane).float()], dim=1) * 40 - 20


def test_centerline_dice_charges_a_gap_more_than_a_thinning_of_the_same_size():
    truth = torch.zeros(1, 24, 24, dtype=torch.bool)
    truth[:, :, 10:13] = True  # a membrane 3 pixels wide between two cells
    label = (~truth).long()
    gap = truth.clone()
    gap[:, 10:13, 10:13] = False  # 9 pixels cut across the membrane: the cells merge
    thinned = truth.clone()
    thinned[:, 8:17, 12] = False  # 9 pixels off one side: the membrane still separates them
    assert CenterlineDice()(_membrane_logits(truth), label).item() == pytest.approx(0, abs=1e-4)
    assert Dice()(_membrane_logits(gap), label).item() == pytest.approx(Dice()(_membrane_logits(thinned), label).item())
    gap_loss = CenterlineDice()(_membrane_logits(gap), label).item()
    thinned_loss = CenterlineDice()(_membrane_logits(thinned), label).item()
    assert gap_loss > thinned_loss + 0.02


def test_dice_cross_entropy_adds_the_weighted_centerline_dice(batch):
    logits, label = batch
    logits.requires_grad_(True)
    combined = DiceCrossEntropy(cldice_weight=0.5)(logits, label)
    expected = Dice()(logits, label) + F.cross_entropy(logits, label) + 0.5 * CenterlineDice()(logits, label)
    assert torch.allclose(combined, expected)
    combined.backward()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("loss", [CrossEntropy(), Dice(), DiceCrossEntropy(), CrossEntropy(label_smoothing=0.1)])
def test_unlabelled_pixels_count_in_no_loss(loss):
    from src.data.labels import IGNORE

    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    label = torch.randint(0, 3, (2, 8, 8))
    label[:, :, 4:] = IGNORE
    value = loss(logits, label)
    value.backward()
    assert torch.isfinite(value) and logits.grad[..., 4:].abs().max() == 0  # no gradient from unlabelled pixels
    cut = loss(logits[..., :4].detach(), label[..., :4])
    assert torch.allclose(value, cut, atol=1e-6)  # the same as the labelled part alone


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: DiceCrossEntropy(ce_weight=-1.0), r"loss.dice_weight=1.0, loss.ce_weight=-1.0, .* must be 0 or more"),
        (lambda: DiceCrossEntropy(dice_weight=0.0, ce_weight=0.0), "not all 0"),
        (lambda: CrossEntropy(label_smoothing=1.5), r"loss.label_smoothing=1.5 must be from 0 up to \(not\) 1"),
    ],
)
def test_a_loss_that_would_be_maximised_or_empty_is_refused(make, words):
    with pytest.raises(ValueError, match=words):
        make()
