"""Fitting a run's edge classifier after training: on the training slices' predicted affinities, written beside
the run and named in the recipe; other recipes and data read lazily are left as they are or refused."""

from __future__ import annotations

import lightning as L
import pytest
import tifffile
import torch

from src.data.datamodule import EMDataModule
from src.data.sources import SyntheticSource, TiffSource
from src.data.synthetic import synthetic_stack
from src.evaluation.edge_classifier import with_fitted_edges
from src.inference.recipe import make_recipe, needs_fitting
from src.models.module import SegmentationModule
from src.postprocess.learned_edges import load_classifier
from src.utils.errors import UserError

OFFSETS = [[-1, 0], [0, -1], [-4, 0], [0, -4], [-6, -6], [6, -6]]
LEARNED = {"_target_": "src.postprocess.learned_edges.LearnedEdges", "fragments_h": 0.05, "classifier": None}
SETTINGS = {"tile_size": 0, "overlap": 0.5, "stitching": "crop", "sigma_scale": 0.125, "halo": 0, "tta": False}


def _module() -> SegmentationModule:
    torch.manual_seed(0)
    return SegmentationModule(
        net={"_target_": "src.models.unet.UNet", "depth": 2, "base_channels": 4, "num_classes": 2 + len(OFFSETS)},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True},
        affinities={"offsets": OFFSETS},
    )


def test_only_learned_edges_without_a_file_are_fitted():
    assert needs_fitting(LEARNED)
    assert not needs_fitting({**LEARNED, "classifier": "run/edge_classifier.pkl"})
    assert not needs_fitting({"_target_": "src.postprocess.mutex_watershed.MutexWatershed"}) and not needs_fitting(None)
    recipe = make_recipe({**SETTINGS, "scored": "probability"}, None)
    assert with_fitted_edges(None, None, None, recipe, None) is recipe  # nothing to fit: nothing read


def test_the_classifier_is_fitted_on_the_training_slices_and_named_in_the_recipe(tmp_path):
    datamodule = EMDataModule(SyntheticSource(num_slices=5, size=64, num_cells=8, seed=0), fold=4, num_workers=0)
    datamodule.setup("test")
    recipe = make_recipe({**SETTINGS, "scored": "cells"}, LEARNED)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    fitted = with_fitted_edges(_module(), datamodule, trainer, recipe, tmp_path)
    path = tmp_path / "edge_classifier.pkl"
    assert fitted["postprocess"] == {**LEARNED, "classifier": str(path)} and recipe["postprocess"] == LEARNED
    assert hasattr(load_classifier(path, OFFSETS), "predict_proba")
    with pytest.raises(UserError, match="fitted for the offsets"):
        load_classifier(path, OFFSETS[:-1])


def test_data_read_lazily_are_refused_before_anything_is_predicted(tmp_path):
    images, labels = synthetic_stack(num_slices=5, size=64, num_cells=8, seed=0)
    tifffile.imwrite(tmp_path / "images.tif", images)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    source = TiffSource(str(tmp_path / "images.tif"), str(tmp_path / "labels.tif"))
    datamodule = EMDataModule(source, fold=4, num_workers=0, loading="lazy")
    datamodule.setup("test")
    recipe = make_recipe({**SETTINGS, "scored": "cells"}, LEARNED)
    run = tmp_path / "run"
    with pytest.raises(UserError, match="data.loading=memory"):
        with_fitted_edges(_module(), datamodule, None, recipe, run)
    assert not run.exists()
