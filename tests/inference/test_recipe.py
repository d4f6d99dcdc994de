"""The inference recipe: checked when made, followed with command-line overrides, and predicted by."""

import pickle

import numpy as np
import pytest
import torch

from src.inference.recipe import (
    WholeSlicePredictor,
    default_recipe,
    describe,
    follow_recipe,
    make_recipe,
    slice_predictor,
    with_run_classifier,
)
from src.inference.tiling import TiledPredictor
from src.inference.tta import tta_mean
from src.models.module import SegmentationModule
from src.utils.errors import UserError

SETTINGS = {"tile_size": 0, "overlap": 0.5, "stitching": "crop", "sigma_scale": 0.125, "halo": 0, "tta": True}
AGGLOMERATION = {"_target_": "src.postprocess.agglomeration.Agglomeration", "h": 0.07, "sigma": 0.0, "threshold": 0.55}
WATERSHED = {"_target_": "src.postprocess.instances.SeededWatershed"}


def test_a_recipe_must_make_the_output_it_scores():
    recipe = make_recipe({**SETTINGS, "scored": "contours"}, AGGLOMERATION)
    assert recipe["tta"] == list(range(8)) and recipe["postprocess"] == AGGLOMERATION
    with pytest.raises(UserError, match="inference.scored=contours needs a post-processing with a contour map"):
        make_recipe({**SETTINGS, "scored": "contours"}, WATERSHED, prefix="inference.")
    with pytest.raises(UserError, match="scored=cells needs a post-processing"):
        make_recipe({**SETTINGS, "scored": "cells"}, None)
    with pytest.raises(UserError, match="scored=best must be one of"):
        make_recipe({**SETTINGS, "scored": "best"}, None)
    with pytest.raises(UserError, match="tile_size=-1"):
        make_recipe({**SETTINGS, "tile_size": -1, "scored": "probability"}, None)
    with pytest.raises(UserError, match="inference.sigma_scale=-1 must be 0"):
        make_recipe({**SETTINGS, "sigma_scale": -1, "scored": "probability"}, None, prefix="inference.")
    with pytest.raises(UserError, match="halo=-2 must be 0 or more"):
        make_recipe({**SETTINGS, "halo": -2, "scored": "probability"}, None)


def test_overrides_win_and_a_scored_output_they_no_longer_make_falls_back():
    saved = make_recipe({**SETTINGS, "scored": "contours", "held_out": {"fold": 4, "num_folds": 5}}, AGGLOMERATION)
    recipe, source = follow_recipe(saved, {})
    assert recipe == saved and source == "the checkpoint's recipe"
    recipe, source = follow_recipe(saved, {"tta": False, "postprocess": WATERSHED})
    assert recipe["tta"] == [0] and recipe["scored"] == "cells" and recipe["held_out"] == {"fold": 4, "num_folds": 5}
    assert source.endswith("overridden: postprocess, tta")
    recipe, _ = follow_recipe(saved, {"postprocess": None})
    assert recipe["scored"] == "probability" and recipe["postprocess"] is None
    with pytest.raises(UserError, match="scored=contours needs"):
        follow_recipe(saved, {"postprocess": WATERSHED, "scored": "contours"})


def test_a_checkpoint_without_a_recipe_gets_the_training_defaults():
    recipe, source = follow_recipe(None, {})
    assert recipe == default_recipe() and "carries none" in source
    assert recipe["tile_size"] == 0 and recipe["tta"] == list(range(8)) and recipe["scored"] == "probability"
    assert recipe["postprocess"]["_target_"] == "src.postprocess.instances.SeededWatershed"
    assert describe(recipe).startswith("whole slices, mean of 8 flips/rotations, post-processing SeededWatershed(")
    assert describe({**recipe, "tile_size": 256, "tta": [0]}).startswith("tiles of 256 px (overlap 0.5, crop")


def test_whole_slices_are_the_modules_tta_mean_and_tiles_the_tiled_predictor():
    torch.manual_seed(0)
    module = SegmentationModule(
        net={"_target_": "src.models.unet.UNet", "depth": 2, "base_channels": 4},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True},
    ).eval()
    image = np.random.default_rng(0).normal(size=(36, 44)).astype(np.float32)
    recipe = make_recipe({**SETTINGS, "tta": [0, 5], "scored": "probability"}, None)
    predictor = slice_predictor(module, recipe, torch.device("cpu"), None)
    assert isinstance(predictor, WholeSlicePredictor) and predictor.tiles_per_slice(36, 44) == 1
    (got,) = predictor.predict_many([image])
    with torch.inference_mode():
        x = torch.from_numpy(image)[None, None]
        expected = tta_mean(x, (0, 5), lambda view, _: module.interior_probability(view))[0].numpy()
    assert got.shape == (36, 44) and np.array_equal(got, expected)
    tiled = slice_predictor(module, {**recipe, "tile_size": 16}, torch.device("cpu"), None, batch_size=2)
    assert isinstance(tiled, TiledPredictor) and tiled.tta == (0, 5) and tiled.batch_size == 2


@pytest.mark.parametrize("tta", [[0], [0, 1, 5]])
def test_tiles_of_an_affinity_network_give_its_whole_slice_prediction(tta):
    """Valid padding makes tiles exact, so tiled prediction (TTA on the whole slice, offsets turned with it) must
    equal whole-slice prediction, classes and affinities, whatever tile a pair's two pixels fall in."""
    torch.manual_seed(0)
    offsets = [[-1, 0], [0, -1], [-5, 0], [0, -5], [-3, -3], [3, -3]]
    net = {"_target_": "src.models.unet.UNet", "depth": 2, "base_channels": 4, "padding": "valid"}
    module = SegmentationModule(
        net={**net, "num_classes": 2 + len(offsets)},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True},
        affinities={"offsets": offsets, "loss": "dice"},
    ).eval()
    image = np.random.default_rng(1).normal(size=(52, 60)).astype(np.float32)
    recipe = make_recipe({**SETTINGS, "tta": tta, "scored": "probability"}, None)
    (whole,) = slice_predictor(module, recipe, torch.device("cpu"), None, output="all").predict_many([image])
    tiled = slice_predictor(module, {**recipe, "tile_size": 40}, torch.device("cpu"), None, output="all")
    assert tiled.tiles_per_slice(52, 60) == len(tta) * tiled.tiled.tiles_per_slice(52, 60) > len(tta)
    (got,) = tiled.predict_many([image])
    assert got.shape == (2 + len(offsets), 52, 60)
    np.testing.assert_allclose(got, whole, atol=2e-5)
    (interior,) = slice_predictor(module, {**recipe, "tile_size": 40}, torch.device("cpu"), None).predict_many([image])
    np.testing.assert_allclose(interior, whole[1], atol=2e-5)


def test_learned_edges_of_a_checkpoint_get_its_run_s_classifier(tmp_path):
    learned = {"_target_": "src.postprocess.learned_edges.LearnedEdges", "classifier": None}
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert with_run_classifier(learned, ckpt) == learned  # the run has none: as it was (decoding will say so)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "edge_classifier.pkl").write_bytes(b"")
    assert with_run_classifier(learned, ckpt)["classifier"] == str(tmp_path / "run" / "edge_classifier.pkl")
    given = {**learned, "classifier": "mine.pkl"}
    assert with_run_classifier(given, ckpt) == given  # a file named on the command line wins
    other = {"_target_": "src.postprocess.mutex_watershed.MutexWatershed"}
    assert with_run_classifier(other, ckpt) == other and with_run_classifier(None, ckpt) is None


def test_a_run_s_classifier_fitted_on_other_edges_is_not_given(tmp_path):
    from src.postprocess.learned_edges import LearnedEdges, save_classifier

    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    method = LearnedEdges(fragments_h=0.05, stride=2).with_offsets([[-1, 0], [0, -1], [-3, 0], [0, -3]])
    save_classifier(tmp_path / "edge_classifier.pkl", "the fitted model", method)
    learned = {"_target_": "src.postprocess.learned_edges.LearnedEdges", "classifier": None}
    for same in ({}, {"fragments_h": 0.05, "stride": 2, "attractive": 2, "min_size": 7}):  # defaults; min_size: after
        given = with_run_classifier({**learned, **same}, ckpt)
        assert given["classifier"] == str(tmp_path / "edge_classifier.pkl")
    # other features or another count: src.eval fits anew
    for other in ({"fragments_h": 0.1}, {"stride": 8}, {"attractive": 1}, {"classifiers": 8}, {"shapes": True}):
        assert with_run_classifier({**learned, **other}, ckpt) == {**learned, **other}
    path = tmp_path / "edge_classifier.pkl"
    record = pickle.loads(path.read_bytes())
    del record["classifiers"], record["shapes"]  # a file from before these were recorded: one classifier, no shapes
    path.write_bytes(pickle.dumps(record))
    assert with_run_classifier({**learned, "classifiers": 1}, ckpt)["classifier"] == str(path)
    assert LearnedEdges(classifier=str(path)).with_offsets(method.offsets).model == "the fitted model"
    assert with_run_classifier({**learned, "shapes": True}, ckpt)["classifier"] is None
    assert with_run_classifier({**learned, "classifiers": 8}, ckpt)["classifier"] is None
