"""The held-out evaluation shared by training and src.eval: the recipe's prediction, every output scored and
labelled, one headline, the stacks written."""

from __future__ import annotations

import lightning as L
import numpy as np
import tifffile
import torch

from src.data.tiff import Calibration
from src.data.volume import open_volume
from src.evaluation.held_out import headline_line, predict_slices, score_held_out
from src.inference.recipe import make_recipe
from src.models.module import SegmentationModule

SETTINGS = {"tile_size": 0, "overlap": 0.5, "stitching": "crop", "sigma_scale": 0.125, "halo": 0}
AGGLOMERATION = {"_target_": "src.postprocess.agglomeration.Agglomeration", "h": 0.07, "sigma": 0.0, "threshold": 0.55}
WATERSHED = {"_target_": "src.postprocess.instances.SeededWatershed", "sigma": 1.0}


def _module() -> SegmentationModule:
    torch.manual_seed(0)
    return SegmentationModule(
        net={"_target_": "src.models.unet.UNet", "depth": 2, "base_channels": 4},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True},
    )


def test_full_tta_prediction_is_equivariant_under_flips_and_rotations():
    module = _module()
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    image = torch.randn(1, 40, 40)
    rotated = torch.rot90(image, 1, dims=(-2, -1)).flip(-1)
    item = {"label": torch.zeros(40, 40, dtype=torch.long), "slice": torch.tensor(0)}
    dataset = [{"image": image, **item}, {"image": rotated, **item}]
    plain = predict_slices(
        module, dataset, trainer, make_recipe({**SETTINGS, "tta": False, "scored": "probability"}, None)
    )
    full = predict_slices(
        module, dataset, trainer, make_recipe({**SETTINGS, "tta": True, "scored": "probability"}, None)
    )
    expected = np.flip(np.rot90(full[0]["prob"], 1), -1)
    # An untrained network is not equivariant, so only the averaged prediction follows the rotation.
    assert np.abs(np.flip(np.rot90(plain[0]["prob"], 1), -1) - plain[1]["prob"]).max() > 1e-3
    assert np.allclose(full[1]["prob"], expected, atol=1e-5)


def _outputs() -> list[dict]:
    """Two slices of a smooth interior probability with a membrane cross, and the matching truth."""
    rng = np.random.default_rng(0)
    label = np.ones((48, 48), np.int64)
    label[23:25, :] = 0
    label[:, 23:25] = 0
    outputs = []
    for index in (7, 8):
        prob = np.clip(label * 0.9 + rng.normal(0, 0.05, label.shape), 0, 1).astype(np.float32)
        classes = (prob > 0.5).astype(np.uint8)
        outputs.append({"image": prob, "label": label, "prob": prob, "classes": classes, "slice": index})
    return outputs


def test_every_output_is_scored_labelled_and_the_recipes_scored_one_is_the_headline(tmp_path):
    recipe = make_recipe({**SETTINGS, "tta": False, "scored": "contours"}, AGGLOMERATION)
    images = np.full((2, 48, 48), 100, np.uint8)
    compare = {"watershed": WATERSHED, "agglomeration": AGGLOMERATION}
    calibration = Calibration((50.0, 4.0, 4.0), "nanometer")  # the data's voxel size, stated by every stack
    result = score_held_out(_outputs(), recipe, tmp_path, images=images, compare=compare, calibration=calibration)
    names = ("images", "classes", "probability", "cells", "contours", "labels")
    assert set(result["files"]) == {f"test_{n}.tif" for n in names}
    for name in names:
        with open_volume(tmp_path / result["files"][f"test_{name}.tif"], None, "held-out stack", "") as volume:
            assert Calibration.of(volume) == calibration
    assert np.array_equal(tifffile.imread(tmp_path / result["files"]["test_images.tif"]), images)
    headline = result["headline"]
    assert headline["scored"] == "contours" and headline["prediction"] == "predictions/test_contours.tif"
    assert headline["vrand"] == result["contours"]["vrand"] and headline["slices"] == [7, 8]
    assert headline["what"] == "contour map of Agglomeration, best of the threshold sweep"
    assert result["threshold"]["what"].startswith("interior probability, best of the threshold sweep")
    assert result["postprocess"]["what"] == "cells of Agglomeration at its fixed cut (no sweep)"
    assert list(result["compared"]) == ["watershed"]  # the recipe's own method is not scored twice
    assert 0.9 < headline["vrand"] <= 1.0
    line = headline_line(headline)
    assert line.startswith("headline: contour map of Agglomeration") and "held-out slices 7-8: V_rand " in line


def test_a_probability_recipe_heads_with_the_sweep_and_writes_no_cells(tmp_path):
    recipe = make_recipe({**SETTINGS, "tta": False, "scored": "probability"}, None)
    result = score_held_out(_outputs(), recipe, tmp_path)
    assert result["headline"]["prediction"] == "predictions/test_probability.tif"
    assert result["headline"]["vrand"] == result["threshold"]["vrand"]
    assert "postprocess" not in result and "test_cells.tif" not in result["files"]


def test_several_classes_are_scored_per_class_and_the_boundary_class_by_the_protocol(tmp_path):
    label = np.full((2, 48, 48), 2, np.int64)  # interior (class 2 of 3)
    label[:, 23:25, :] = 0  # membrane cross
    label[:, :, 23:25] = 0
    label[:, 5:10, 5:10] = 1  # a mitochondrion
    label[:, 40:, 40:] = 255  # unlabelled
    predicted = label.copy()
    predicted[:, 5:10, 5:7] = 2  # part of the mitochondrion missed
    predicted[label == 255] = 2
    outputs = [
        {
            "image": np.zeros((48, 48), np.float32),
            "label": lab,
            "classes": pred.astype(np.uint8),
            "prob": (pred != 0).astype(np.float32),
            "slice": i,
        }
        for i, (lab, pred) in enumerate(zip(label, predicted, strict=True))
    ]
    raw = np.choose(np.where(label == 255, 3, label), [0, 191, 255, 7]).astype(np.uint8)
    recipe = make_recipe({**SETTINGS, "tta": False, "scored": "probability"}, None)
    names = ["membrane", "mitochondria", "interior"]
    result = score_held_out(outputs, recipe, tmp_path, class_names=names, boundary=0, labels_as_read=raw)
    dice = result["classes"]["dice"]
    assert dice["membrane"] == 1.0 and abs(dice["mitochondria"] - 2 * 15 / (25 + 15)) < 1e-12
    assert result["headline"]["vrand"] == result["threshold"]["vrand"] > 0.9
    assert result["headline"]["mean_dice"] == result["classes"]["mean_dice"]
    assert "mean Dice" in headline_line(result["headline"]) and "mitochondria 0.750" in headline_line(
        result["headline"]
    )
    assert tifffile.TiffFile(tmp_path / "predictions" / "test_classes.tif").shaped_metadata[0]["classes"] == names
    assert np.array_equal(tifffile.imread(tmp_path / "predictions" / "test_labels.tif"), raw)
    no_boundary = score_held_out(outputs, recipe, tmp_path / "b", class_names=names, boundary=None)
    assert "threshold" not in no_boundary and no_boundary["headline"]["scored"] == "classes"
    assert headline_line(no_boundary["headline"]).endswith(f"mean Dice {no_boundary['classes']['mean_dice']:.4f}")
