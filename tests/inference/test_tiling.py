"""Overlap-tile prediction: exact at seams for valid padding, TTA as the mean of transformed predictions."""

import numpy as np
import pytest
import torch

from src.inference.tile_grid import tile_starts
from src.inference.tiling import TiledPredictor
from src.inference.tta import DIHEDRAL, dihedral, dihedral_inverse
from src.inference.whole import predict_logits
from src.models.unet import UNet


def _whole(net: UNet, image: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return predict_logits(net, torch.from_numpy(image)[None, None]).softmax(1)[0, 1].numpy()


def _net(padding: str, depth: int = 3) -> UNet:
    torch.manual_seed(0)
    return UNet(depth=depth, base_channels=4, padding=padding).eval()


@pytest.mark.parametrize("size", [(300, 211), (37, 45), (129, 400)])
def test_valid_padding_tiles_equal_the_whole_slice_exactly(size):
    net = _net("valid")
    image = np.random.default_rng(1).normal(size=size).astype(np.float32)
    predictor = TiledPredictor(net, tile_size=120, overlap=0.5, batch_size=3, channels_last=False)
    assert predictor.tile_out < max(size) or size == (37, 45)
    tiled = predictor.predict(image)
    assert tiled.shape == size
    np.testing.assert_allclose(tiled, _whole(net, image), atol=1e-5)


def test_same_padding_single_tile_equals_the_whole_slice():
    net = _net("same")
    image = np.random.default_rng(2).normal(size=(64, 64)).astype(np.float32)
    tiled = TiledPredictor(net, tile_size=64, channels_last=True).predict(image)
    np.testing.assert_allclose(tiled, _whole(net, image), atol=1e-5)


def test_same_padding_tiles_cover_odd_sizes_with_blending():
    net = _net("same")
    image = np.random.default_rng(3).normal(size=(150, 97)).astype(np.float32)
    predictor = TiledPredictor(net, tile_size=64, overlap=0.5, halo=8)
    prob = predictor.predict(image)
    assert prob.shape == (150, 97) and np.isfinite(prob).all() and prob.min() >= 0 and prob.max() <= 1
    assert predictor.tile_out == 48 and predictor.tiles_per_slice(150, 97) > 4


def test_tta_is_the_mean_of_the_transformed_predictions():
    net = _net("valid", depth=2)
    predictor = TiledPredictor(net, tile_size=124, channels_last=False)
    size = predictor.tile_out  # one tile: the transforms see exactly the same pixels
    image = np.random.default_rng(4).normal(size=(size, size)).astype(np.float32)
    singles = []
    for index in DIHEDRAL:
        moved = dihedral(torch.from_numpy(image), index).numpy().copy()
        singles.append(dihedral_inverse(torch.from_numpy(predictor.predict(moved)), index).numpy())
    with_tta = TiledPredictor(net, tile_size=124, tta=DIHEDRAL, channels_last=False).predict(image)
    np.testing.assert_allclose(with_tta, np.mean(singles, axis=0), atol=1e-5)
    assert np.abs(singles[0] - singles[5]).max() > 1e-4  # the transforms do change a random net's output


@pytest.mark.parametrize(
    "kwargs",
    [
        {"overlap": 1.0},
        {"tta": [9]},
        {"batch_size": 0},
        {"halo": 40},
        {"stitching": "mean"},
        {"output": "cells"},
        {"affinity_channels": 1, "tta": [0, 1]},  # affinities are turned with the whole slice, not per tile
    ],
)
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError):
        TiledPredictor(_net("same"), tile_size=64, **kwargs)


@pytest.mark.parametrize("pad_batches", [False, True])
def test_tiles_batched_across_slices_give_each_slice_its_own_result(pad_batches):
    net = _net("valid")
    rng = np.random.default_rng(5)
    images = [rng.normal(size=size).astype(np.float32) for size in ((150, 140), (60, 200), (150, 140))]
    per_slice = TiledPredictor(net, tile_size=120, batch_size=1, channels_last=False)
    batched = TiledPredictor(net, tile_size=120, batch_size=5, channels_last=False, pad_batches=pad_batches)
    seen = []
    results = list(batched.predict_many(iter(images), on_tiles=seen.append))
    assert [r.shape for r in results] == [i.shape for i in images]
    assert sum(seen) == sum(batched.tiles_per_slice(*i.shape) for i in images) and max(seen) <= 5
    for image, result in zip(images, results, strict=True):
        np.testing.assert_allclose(result, per_slice.predict(image), atol=1e-5)


def _nearest_centre_assembly(net: UNet, image: np.ndarray, predictor: TiledPredictor) -> np.ndarray:
    """Each pixel from the whole-tile prediction of the tile whose centre is nearest (ties to the later tile)."""
    height, width = image.shape
    rows = tile_starts(height, predictor.tile_out, predictor.step, predictor.align)
    cols = tile_starts(width, predictor.tile_out, predictor.step, predictor.align)
    c = predictor.context  # mirrored pixels before the image: a tile's input starts c before its output
    ends = (rows[-1] + predictor.tile_out - height + c, cols[-1] + predictor.tile_out - width + c)
    padded = np.pad(image, [(c, ends[0]), (c, ends[1])], mode="reflect")

    def nearest(starts, p):
        return max(starts, key=lambda s: (-abs(p + 0.5 - s - predictor.tile_out / 2), s))

    out = np.full(image.shape, np.nan, np.float32)
    for r in rows:
        ys = np.array([y for y in range(height) if nearest(rows, y) == r])
        for q in cols:
            xs = np.array([x for x in range(width) if nearest(cols, x) == q])
            tile = np.ascontiguousarray(padded[r : r + predictor.tile_in, q : q + predictor.tile_in])
            out[np.ix_(ys, xs)] = _whole(net, tile)[np.ix_(ys - r + c, xs - q + c)]
    assert not np.isnan(out).any()
    return out


def test_crop_stitching_takes_each_pixel_from_the_tile_whose_centre_is_nearest():
    net = _net("same", depth=2)
    image = np.random.default_rng(6).normal(size=(70, 53)).astype(np.float32)
    predictor = TiledPredictor(net, tile_size=32, overlap=0.5, stitching="crop", batch_size=3, channels_last=False)
    assert predictor.tiles_per_slice(70, 53) == 4 * 3  # rows at 0, 16, 32, 40; columns at 0, 16, 24
    np.testing.assert_allclose(predictor.predict(image), _nearest_centre_assembly(net, image, predictor), atol=1e-5)
    # with a halo cropped from every tile (context only), the output tiles are smaller and start after it
    with_halo = TiledPredictor(net, tile_size=48, overlap=0.5, halo=8, batch_size=4, channels_last=False)
    assert with_halo.tile_out == 32 and with_halo.context == 8
    np.testing.assert_allclose(with_halo.predict(image), _nearest_centre_assembly(net, image, with_halo), atol=1e-5)


def test_crop_stitching_is_closer_to_the_untiled_prediction_than_gaussian_blending():
    torch.manual_seed(0)
    net = UNet(depth=3, base_channels=8).eval()
    image = np.random.default_rng(7).normal(size=(256, 256)).astype(np.float32)
    whole = _whole(net, image)
    errors = {}
    for stitching in ("crop", "gaussian"):
        predictor = TiledPredictor(net, tile_size=128, overlap=0.5, stitching=stitching, channels_last=False)
        error = np.abs(predictor.predict(image) - whole)
        errors[stitching] = error.max(), error.mean()
    # seen: crop 0.038 / 7.5e-4, gaussian 0.052 / 1.4e-3 (tiles of 64 here are within the network's reach of
    # their borders everywhere, and there the two are level: 0.41 / 2.2e-2 against 0.38 / 2.1e-2)
    assert errors["crop"][0] < errors["gaussian"][0] and errors["crop"][1] < 0.7 * errors["gaussian"][1]


def test_crop_stitching_with_tta_averages_the_transformed_predictions():
    net = _net("same", depth=2)
    image = np.random.default_rng(8).normal(size=(64, 64)).astype(np.float32)  # tiles at 0, 16, 32: symmetric
    single = TiledPredictor(net, tile_size=32, channels_last=False)
    expected = np.mean(
        [
            dihedral_inverse(
                torch.from_numpy(single.predict(dihedral(torch.from_numpy(image), k).numpy().copy())), k
            ).numpy()
            for k in DIHEDRAL
        ],
        axis=0,
    )
    with_tta = TiledPredictor(net, tile_size=32, tta=DIHEDRAL, channels_last=True).predict(image)
    np.testing.assert_allclose(with_tta, expected, atol=1e-5)


@pytest.mark.parametrize("queue_pixels", [0, 10**6])
def test_crop_stitching_batches_tiles_by_box_across_slices_and_streams(queue_pixels):
    net = _net("same", depth=2)
    rng = np.random.default_rng(9)
    images = [rng.normal(size=(48, 64)).astype(np.float32) for _ in range(4)]
    per_slice = TiledPredictor(net, tile_size=32, batch_size=1, channels_last=False)
    batched = TiledPredictor(net, tile_size=32, batch_size=4, channels_last=False, queue_pixels=queue_pixels)
    read, sizes, results = [], [], []

    def stream():
        for index, image in enumerate(images):
            read.append(index)
            yield image

    for result in batched.predict_many(stream(), on_tiles=sizes.append):
        results.append(result)
        if queue_pixels == 0:  # nothing may wait: each slice is done before the next is read
            assert len(read) == len(results)
    if queue_pixels:  # 4 slices of 2x3 tiles with 6 different boxes: one full batch of each box
        assert sizes == [4] * 6
    assert sum(sizes) == 4 * 6 and max(sizes) <= 4
    for image, result in zip(images, results, strict=True):
        np.testing.assert_allclose(result, per_slice.predict(image), atol=1e-5)


def test_crop_stitching_of_a_valid_padding_network_is_exact():
    net = _net("valid")
    image = np.random.default_rng(10).normal(size=(200, 170)).astype(np.float32)
    predictor = TiledPredictor(net, tile_size=120, overlap=0.5, stitching="crop", channels_last=False)
    np.testing.assert_allclose(predictor.predict(image), _whole(net, image), atol=1e-5)


def test_compiled_crop_stitching_matches_eager():
    net = _net("same", depth=2)
    image = np.random.default_rng(11).normal(size=(32, 48)).astype(np.float32)  # two tiles, two boxes
    eager = TiledPredictor(net, tile_size=32, batch_size=2, channels_last=False).predict(image)
    compiled = TiledPredictor(net, tile_size=32, batch_size=2, channels_last=False, compile=True, pad_batches=True)
    assert compiled.by_box
    np.testing.assert_allclose(compiled.predict(image), eager, atol=1e-4)
