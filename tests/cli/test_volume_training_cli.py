"""Training from a user's volumes in other formats, as a user runs it: the same run from a TIFF, an HDF5 and a Zarr."""

import json

import pytest
import torch

from src.data.synthetic import synthetic_stack
from tests.conftest import run_cli, write_volume_copies

QUICK = ["data=tiff", "model.base_channels=4", "model.depth=3", "trainer.accelerator=cpu", "trainer.max_epochs=2",
         "data.train_samples=8", "data.crop_size=64", "logger=csv", "seed=5"]  # fmt: skip


def _train(tmp_path, name: str, copies: tuple[dict, dict], kind: str, *overrides: str) -> tuple[dict, dict]:
    (images, image_key), (labels, label_key) = copies[0][kind], copies[1][kind]
    out = tmp_path / name
    keys = [f"data.source.image_key={image_key}", f"data.source.label_key={label_key}"] if image_key else []
    result = run_cli("src.train", *QUICK, f"data.source.images={images}", f"data.source.labels={labels}", *keys,
                     *overrides, f"paths.output_dir={out}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text()), json.loads((out / "data.json").read_text())


@pytest.mark.slow
def test_training_from_hdf5_and_zarr_copies_gives_the_tiffs_held_out_scores(tmp_path):
    images, labels = synthetic_stack(num_slices=10, size=96, num_cells=20, seed=3)
    copies = write_volume_copies(images, tmp_path / "i"), write_volume_copies(labels, tmp_path / "l")
    tiff, tiff_data = _train(tmp_path, "tiff", copies, "tiff")
    hdf5, _ = _train(tmp_path, "hdf5", copies, "hdf5")
    assert tiff_data["loading"] == "memory"  # a small stack is read whole by default
    assert hdf5["headline"] == tiff["headline"] and hdf5["held_out"]["classes"] == tiff["held_out"]["classes"]
    lazy_tiff, lazy_data = _train(tmp_path, "lazy_tiff", copies, "tiff", "data.loading=lazy")
    lazy_zarr, zarr_data = _train(tmp_path, "lazy_zarr", copies, "zarr3", "data.loading=lazy")
    assert lazy_zarr["headline"] == lazy_tiff["headline"] and lazy_zarr["headline"]["slices"] == [8, 9]
    assert zarr_data["statistics"] == lazy_data["statistics"] and zarr_data["volume"]["format"] == "Zarr"
    checkpoint = sorted((tmp_path / "lazy_zarr" / "checkpoints").glob("*.ckpt"))[-1]
    recorded = torch.load(checkpoint, weights_only=False)["EMDataModule"]["statistics"]
    assert recorded["mean"] == zarr_data["statistics"]["mean"] and len(recorded["mean"]) == 10
