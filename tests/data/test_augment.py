"""Augmentation: geometry moves image, label and weight map together; intensity transforms keep the range."""

from __future__ import annotations

import os
import subprocess
import sys

import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from src.config import PROJECT_ROOT
from src.data.augment import CoarseGridElastic, PatchyBlur, build_train_transform, checked_augmentation
from src.data.datasets import RandomCropDataset
from src.utils.errors import UserError


def test_elastic_deformation_moves_label_and_weights_with_the_image():
    rng = np.random.default_rng(0)
    label = np.kron(rng.random((8, 8)) > 0.5, np.ones((8, 8))).astype(np.uint8)  # 8-pixel blocks
    image = label.astype(np.float32)  # the image is the label: any misalignment would show
    weight = label.astype(np.float32) * 7 + 1
    transform = A.Compose([CoarseGridElastic(grid=3, std=10, p=1.0)], additional_targets={"weight": "mask"})
    transform.set_random_seed(1)
    out = transform(image=image, mask=label, weight=weight)
    assert not np.array_equal(out["mask"], label)  # something moved
    assert set(np.unique(out["mask"])) <= {0, 1}  # nearest interpolation keeps labels binary
    assert set(np.unique(out["weight"])) <= {1.0, 8.0}
    agree = (out["image"] > 0.5) == (out["mask"] == 1)
    assert agree.mean() > 0.98  # bilinear image vs nearest label differ only along edges
    assert np.array_equal(out["weight"] == 8.0, out["mask"] == 1)


def test_elastic_displacements_have_the_requested_spread():
    transform = CoarseGridElastic(grid=3, std=10, p=1.0)
    transform.set_random_seed(2)
    shifts = []
    for _ in range(50):
        params = transform.get_params_dependent_on_data({"shape": (96, 96)}, {})
        rows, cols = np.mgrid[0:96, 0:96]
        shifts.append((params["map_x"] - cols)[[0, 0, 95, 95], [0, 95, 0, 95]])  # corners = grid points
    assert 7 < np.std(shifts) < 13


def test_patchy_blur_blurs_where_its_share_is_high_and_leaves_the_label():
    rows = np.arange(64)[:, None] % 8 < 4
    image = np.broadcast_to(rows, (64, 64)).astype(np.float32)  # 4-pixel stripes: a blur flattens them
    label = (image > 0.5).astype(np.uint8)
    transform = A.Compose([PatchyBlur(sigma=(2.0, 2.0), grid=3, p=1.0)])
    transform.set_random_seed(3)
    params = transform.transforms[0].get_params_dependent_on_data({"shape": (64, 64)}, {})
    share = params["share"]
    assert share.shape == (64, 64) and share.min() >= 0.0 and share.max() <= 1.0
    assert share.max() - share.min() > 0.3  # patches: the blur's share varies across the crop
    out = transform.transforms[0].apply(image, **params)
    blurred = cv2.GaussianBlur(image, (0, 0), 2.0, borderType=cv2.BORDER_REFLECT_101)
    assert np.allclose(out, image + share * (blurred - image), atol=1e-6)
    contrast = np.abs(out - 0.5)  # a full blur takes the stripes near 0.5; unblurred they are 0.5 away
    assert contrast[share < 0.2].mean() > contrast[share > 0.8].mean() + 0.2
    assert np.array_equal(transform(image=image, mask=label)["mask"], label)


def test_patchy_blur_refuses_a_reversed_sigma_range():
    with pytest.raises(ValueError, match=r"patch blur sigma=\[3.0, 1.0\]"):
        PatchyBlur(sigma=(3.0, 1.0))


def test_bad_augmentation_settings_are_named_in_one_line():
    with pytest.raises(UserError, match=r"^data.augmentation.noise_p=2 is a probability; give a value from 0 to 1$"):
        checked_augmentation({"noise_p": 2}, 64)
    with pytest.raises(UserError, match=r"^data.augmentation: std_range: All values in .* >= 0 .*\(albumentations\)"):
        checked_augmentation({"noise_p": 0.5, "noise_std": [-0.1, 0.5]}, 64)
    good = {"noise_p": 0.5, "noise_std": [0.1, 0.5], "patch_blur_p": 1.0}
    assert checked_augmentation(good, 64) == good and checked_augmentation(None, 64) == {}


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"gamma_p": 1, "gamma_limit": [120, 80]}, r"gamma_limit=\[120, 80\] is a range; give it as \[low, high\]"),
        ({"blur_sigma": [1.0, 0.5]}, r"blur_sigma=\[1.0, 0.5\] is a range"),
        ({"brightness_limit": -0.2}, r"brightness_limit=-0.2 is a shift of the \[0, 1\] range"),
        ({"contrast_limit": 1.5}, r"contrast_limit=1.5 must be from 0 up to \(not\) 1"),
    ],
)
def test_settings_albumentations_would_take_reversed_or_inverting_are_refused(settings, words):
    """albumentations takes these without a word: a reversed gamma or blur range, a negative brightness limit (a
    reversed shift) and a contrast limit of 1 or more (a factor at or below 0 inverts the crop)."""
    with pytest.raises(UserError, match=f"^data.augmentation.{words}"):
        checked_augmentation(settings, 64)


def test_crop_dataset_keeps_standardised_intensities_and_aligned_weights(isbi_stack):
    images = isbi_stack[0][:2].astype(np.float32)
    images = (images - images.mean()) / images.std()
    labels = (isbi_stack[1][:2] > 0).astype(np.uint8)
    weights = labels.astype(np.float32) * 4 + 1
    transform = build_train_transform(
        128, elastic_p=1.0, brightness_contrast_p=1.0, gamma_p=1.0, blur_p=0.5, noise_p=0.5
    )
    dataset = RandomCropDataset(images, labels, transform, length=8, weights=weights)
    for i in range(8):
        item = dataset[i]
        assert item["image"].shape == (1, 128, 128) and item["weight"].shape == (128, 128)
        # Intensity transforms work on [0, 1]; the result is mapped back, not clipped to [0, 1].
        assert item["image"].min() < -0.5 and item["image"].max() > 0.5
        assert torch.equal(item["weight"] == 5, item["label"] == 1)


def test_padding_is_left_out_only_when_no_slice_needs_it_and_the_crops_stay_the_same(isbi_stack):
    image = isbi_stack[0][0].astype(np.float32) / 255
    label = (isbi_stack[1][0] > 0).astype(np.uint8)
    options = {"brightness_contrast_p": 0.5, "elastic_p": 0.5}
    padded = build_train_transform(128, **options)
    unpadded = build_train_transform(128, slice_shape=image.shape, **options)
    assert isinstance(padded.transforms[0], A.PadIfNeeded)
    assert not any(isinstance(step, A.PadIfNeeded) for step in unpadded.transforms)
    assert isinstance(build_train_transform(128, slice_shape=(512, 100)).transforms[0], A.PadIfNeeded)
    for seed in range(20):  # the padding step draws no random numbers: every crop is the same without it
        outs = []
        for transform in (padded, unpadded):
            transform.set_random_seed(seed)
            outs.append(transform(image=image, mask=label))
        assert np.array_equal(outs[0]["image"], outs[1]["image"]) and np.array_equal(outs[0]["mask"], outs[1]["mask"])


def test_importing_our_augmentation_asks_no_server_for_albumentations_updates():
    count_requests = (
        "import urllib.request as request\n"
        "calls = []\n"
        "request.OpenerDirector.open = lambda self, *args, **kwargs: calls.append(args) or ''\n"
        "import src.data.augment\n"
        "print(len(calls))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    result = subprocess.run([sys.executable, "-c", count_requests], capture_output=True, text=True, env=env,
                            cwd=PROJECT_ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "0"
