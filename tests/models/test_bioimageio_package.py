"""The bioimage.io package's parts: channel names, training-data terms, cover, test slice, README; and a package
that fails bioimageio.core's test is refused with one line and no file."""

import numpy as np
import pytest
import tifffile
from omegaconf import OmegaConf
from PIL import Image

from src.models import bioimageio_package as package
from src.models.checkpoint import load_module
from src.utils.errors import UserError
from tests.conftest import compose_config, write_small_checkpoint


def test_channels_are_the_classes_then_one_affinity_per_offset():
    assert package.channel_names(["membrane", "interior"], ()) == ["membrane", "interior"]
    assert package.channel_names(["m", "i"], [(-1, 0), (0, -9)]) == ["m", "i", "affinity [-1, 0]", "affinity [0, -9]"]


def test_a_runs_data_set_names_its_terms_and_citations():
    datasets = OmegaConf.to_container(compose_config("export", ["ckpt_path=x"]).bioimageio.datasets)
    isbi = package.dataset_terms({"config": {"data": {"source": {"dataset": "isbi2012"}}}}, datasets)
    assert isbi["licence"] == "CC-BY-NC-4.0" and [c["doi"] for c in isbi["cite"]][-1] == "10.3389/fnana.2015.00142"
    own = package.dataset_terms({"config": {"data": {"source": {"images": "/d/stack.tif"}}}}, datasets)
    assert own == {"name": "stack.tif"}


def test_the_cover_is_the_results_figure_padded_to_two_by_one(tmp_path):
    (tmp_path / "figures").mkdir()
    Image.new("RGB", (300, 400), "red").save(tmp_path / "figures" / "latest.png")
    cover = Image.open(package.cover_image({"run": tmp_path}, tmp_path / "cover.png"))
    assert cover.size == (800, 400) and cover.getpixel((400, 200)) == (255, 0, 0)
    assert cover.getpixel((10, 10)) == (255, 255, 255)
    assert package.cover_image({"run": tmp_path / "none"}, tmp_path / "c.png") is None


def test_the_test_slice_comes_from_the_runs_held_out_images_or_is_asked_for(tmp_path):
    (tmp_path / "predictions").mkdir()
    stack = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    tifffile.imwrite(tmp_path / "predictions" / "test_images.tif", stack)
    facts = {"run": tmp_path, "metrics": {"held_out": {"files": {"test_images.tif": "predictions/test_images.tif"}}}}
    assert np.array_equal(package.test_slice(facts, None, 1), stack[1].astype(np.float32))
    with pytest.raises(UserError, match=r"bioimageio.test_slice=2 is out of range: .* has 2 slices \(0 to 1\)"):
        package.test_slice(facts, None, 2)
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(UserError, match=r"bioimageio.test_input .*rgb.tif has shape \(2, 8, 8, 3\); expected a grey"):
        package.test_slice(facts, str(tmp_path / "rgb.tif"), 0)
    with pytest.raises(UserError, match=r"bioimageio.test_input not found: .*missing.tif \(check bioimageio"):
        package.test_slice(facts, str(tmp_path / "missing.tif"), 0)
    with pytest.raises(UserError, match="pass test_input="):
        package.test_slice({"run": tmp_path}, None, 0)


def test_the_readme_has_a_validation_section_with_the_held_out_scores():
    headline = {"vrand": 0.98, "vinfo": 0.99, "dice": {"m": 0.9}, "what": "cells", "slices": [24, 25]}
    scores = package.held_out_scores({"metrics": {"headline": headline}})
    text = package.documentation("M", ["m", "i"], (), {"name": "isbi2012", "terms": "T"}, scores)
    assert "## Validation" in text and "| V_rand | 0.9800 |" in text and "| Dice m | 0.9000 |" in text
    assert "Scored: cells of slices [24, 25]" in text


@pytest.mark.slow
@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda out: 1 - out, "failed bioimageio.core's test"),  # not what the network computes
        (np.zeros_like, "description is not valid"),  # the spec refuses a test output with no values to compare
    ],
)
def test_a_package_failing_bioimageio_cores_test_is_one_line_and_no_file(tmp_path, monkeypatch, wrong, words):
    ckpt = write_small_checkpoint(tmp_path / "model.ckpt", padding="same")
    images = tmp_path / "raw.tif"
    tifffile.imwrite(images, np.random.default_rng(0).integers(0, 255, (1, 64, 64), dtype=np.uint8))
    settings = compose_config("export", ["ckpt_path=x", f"bioimageio.test_input={images}"]).bioimageio
    write = package.write_test_tensors
    monkeypatch.setattr(package, "write_test_tensors", lambda work, raw, out: write(work, raw, wrong(out)))
    out = tmp_path / "model.zip"
    with pytest.raises(UserError, match=words) as failure:
        package.write_package(load_module(ckpt), ckpt, out, settings, 18)
    assert "\n" not in str(failure.value) and sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt", "raw.tif"]


def test_an_affinity_network_is_described_with_a_channel_per_class_then_per_offset(tmp_path):
    import torch

    from src.models.exported import PackagedUNet
    from src.models.module import SegmentationModule

    offsets = [[-1, 0], [0, -1], [-3, 0], [0, -3]]
    module = SegmentationModule(
        net={"_target_": "src.models.unet.UNet", "depth": 2, "base_channels": 4, "num_classes": 2 + len(offsets)},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True},
        affinities={"offsets": offsets, "loss": "dice"},
    ).eval()
    images = tmp_path / "raw.tif"
    tifffile.imwrite(images, np.random.default_rng(0).integers(0, 255, (1, 32, 32), dtype=np.uint8))
    settings = compose_config("export", ["ckpt_path=x", f"bioimageio.test_input={images}"]).bioimageio
    work = tmp_path / "package"
    work.mkdir()
    description = package.describe_package(module, work, settings, {"run": tmp_path}, 18)
    (output,) = description.outputs
    assert output.axes[1].channel_names == ["membrane", "interior", *(f"affinity {o}" for o in offsets)]
    expected = np.load(work / "test_output.npy")
    assert expected.shape == (1, 6, 32, 32) and np.allclose(expected[:, :2].sum(1), 1, atol=1e-5)
    state = torch.load(work / "state_dict.pt")
    rebuilt = PackagedUNet(**description.weights.pytorch_state_dict.architecture.kwargs).eval()
    rebuilt.load_state_dict(state)
    raw = np.load(work / "test_input.npy")
    with torch.no_grad():
        again = rebuilt(torch.from_numpy((raw - raw.mean()) / (raw.std() + 1e-6)).float()).numpy()
    np.testing.assert_allclose(again, expected, atol=1e-5)  # the state dict's architecture gives the test output
