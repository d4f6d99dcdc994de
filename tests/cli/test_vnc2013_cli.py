"""Five classes on real data (../shared/data/vnc2013): training ends with a per-class table of the held-out
sections, src.predict writes a class map with the class names in it, src.score reads labels in the data set's own
convention; a class map is never written over a user's file."""

import json

import numpy as np
import pytest
import tifffile

from src.data.tiff import stack_metadata
from tests.conftest import run_cli

NAMES = ["membrane", "glia", "mitochondria", "synapse", "interior"]


@pytest.fixture(scope="module")
def vnc_run(tmp_path_factory, vnc_dir):
    logs = tmp_path_factory.mktemp("vnc")
    result = run_cli(
        "src.train",
        "data=vnc2013",
        f"data.source.mirror={vnc_dir}",
        f"paths.data_dir={logs / 'data'}",
        f"paths.log_dir={logs}",
        "trainer=cpu",
        "trainer.max_steps=3",
        "trainer.check_val_every_n_epoch=100",
        "data.crop_size=128",
        "data.train_samples=12",
        "data.class_balance=0.5",
        "model.depth=3",
        "model.base_channels=4",
        "inference.tta=false",
        "postprocess=none",
        "logger=csv",
        "figure_slices=0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = next((logs / "train" / "runs").iterdir())
    return run, result.stdout + result.stderr


def test_training_ends_with_a_per_class_table_of_the_held_out_sections(vnc_run):
    run, output = vnc_run
    metrics = json.loads((run / "metrics.json").read_text())
    classes = metrics["held_out"]["classes"]
    assert metrics["held_out"]["slices"] == [11, 12, 13]  # fold 4 of 14 sections in 5 folds
    assert classes["names"] == NAMES and set(classes["dice"]) <= set(NAMES)
    table = output[output.index("held-out per-class scores") :]
    for name, dice in classes["dice"].items():
        assert f"{name:<16}{dice:>8.4f}" in table
    assert metrics["headline"]["mean_dice"] == classes["mean_dice"]
    assert "mean Dice" in output.strip().splitlines()[-1] or "headline:" in output
    labels = tifffile.imread(run / "predictions" / "test_labels.tif")
    assert set(np.unique(labels).tolist()) <= {0, 32, 64, 96, 128, 159, 191, 223, 255}  # as the data set stores them
    assert "| mitochondria |" in (run / "report.md").read_text()


def test_predict_writes_a_class_map_of_the_input_shape_with_the_names_and_score_reads_it(vnc_run, vnc_dir, tmp_path):
    run, _ = vnc_run
    checkpoint = run / "checkpoints" / "last.ckpt"
    test_volume = vnc_dir / "test-volume.tif"
    args = [f"ckpt_path={checkpoint}", f"input={test_volume}", f"output={tmp_path}", "slices=0:2", "progress=false"]
    result = run_cli("src.predict", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    class_map = tifffile.imread(tmp_path / "test-volume_classes.tif")
    assert class_map.shape == (2, 1024, 1024) and class_map.dtype == np.uint8 and class_map.max() < 5
    assert stack_metadata(tmp_path / "test-volume_classes.tif")["classes"] == NAMES
    before = (tmp_path / "test-volume_classes.tif").read_bytes()
    again = run_cli("src.predict", *args)
    assert again.returncode != 0 and "test-volume_classes.tif exists" in again.stderr.strip().splitlines()[-1]
    assert (tmp_path / "test-volume_classes.tif").read_bytes() == before  # nothing written over it

    held_out = run / "predictions"
    scored = run_cli(
        "src.score",
        f"prediction={held_out / 'test_classes.tif'}",
        f"labels={held_out / 'test_labels.tif'}",
        "data=vnc2013",
        "compact=true",
    )
    assert scored.returncode == 0, scored.stderr[-3000:]
    score = json.loads(scored.stdout)
    metrics = json.loads((run / "metrics.json").read_text())
    assert score["classes"]["dice"] == pytest.approx(metrics["held_out"]["classes"]["dice"])
