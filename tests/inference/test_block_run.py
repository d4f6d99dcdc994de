"""``src.predict output=OUT.zarr``: the same output from 1 or 2 processes and any block shape as the whole-slice TIFF
path; killed half-way and resumed, the same output again; bad settings refused before anything is written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
import zarr

from src.config import PROJECT_ROOT
from src.data.volume import open_volume
from src.inference.block_run import slice_statistics
from tests.conftest import run_cli, same_partition, write_small_checkpoint, write_volume_copies

pytestmark = pytest.mark.slow
COMMON = ["precision=32", "tta=false", "progress=false", "trainer.accelerator=cpu"]


@pytest.fixture(scope="module")
def setup(isbi_stack, tmp_path_factory):
    root = tmp_path_factory.mktemp("blocks")
    stack = isbi_stack[0][:3, :160, :190]
    copies = write_volume_copies(stack, root / "copies")
    tifffile.imwrite(root / "labels.tif", isbi_stack[1][:3, :160, :190])
    ckpt = write_small_checkpoint(root / "same.ckpt", depth=3, padding="same")
    return root, copies, ckpt


def _predict(ckpt, source, output, *extra, timeout=300):
    path, key = source
    args = [f"ckpt_path={ckpt}", f"input={path}", f"output={output}", *COMMON, *extra]
    if key:
        args.append(f"input_key={key}")
    return run_cli("src.predict", *args, timeout=timeout)


def test_one_or_two_processes_and_any_blocks_give_the_whole_slice_prediction(setup):
    root, copies, ckpt = setup
    tiff = run_cli(
        "src.predict",
        f"ckpt_path={ckpt}",
        f"input={copies['tiff'][0]}",
        f"output={root / 'tif'}",
        *COMMON,
        "tile_size=0",
        "postprocess=none",
        "probabilities=true",
    )
    assert tiff.returncode == 0, tiff.stderr[-2000:]
    one = _predict(ckpt, copies["hdf5"], root / "one.zarr", "block_shape=[2,64,64]", "cells_halo=190")
    assert one.returncode == 0, one.stderr[-2000:]
    two = _predict(
        *(ckpt, copies["zarr3"], root / "two.zarr", "block_shape=[1,50,77]", "trainer.devices=2"),
        *("trainer.strategy=ddp", "voxel_size=[30,6,6]", "voxel_unit=micrometer", "cells_halo=190"),
    )
    assert two.returncode == 0, two.stderr[-2000:]
    assert json.loads(two.stdout[two.stdout.index("{") :])["processes"] == 2
    expected = tifffile.imread(root / "tif" / "v_prob_interior.tif")
    for name in ("one.zarr", "two.zarr"):
        out = zarr.open_group(root / name, mode="r")
        np.testing.assert_allclose(out["0"][1], expected, atol=2e-6)
        np.testing.assert_allclose(out["prob/0"][:], expected, atol=2e-6)
        np.testing.assert_array_equal(out["labels/classes/0"][:], tifffile.imread(root / "tif" / "v_classes.tif"))
        # the recipe's watershed, cut block by block with a halo as wide as the slice: each slice's own cells
        assert out["labels"].attrs["labels"] == ["classes", "cells"] and not (root / name / ".cells").exists()
        _assert_whole_slice_cells(out["labels/cells/0"][:], out["prob/0"][:], WATERSHED)
    with open_volume(root / "one.zarr", "prob") as volume:  # the voxel size of the HDF5 input travels
        assert volume.voxel_size == (50.0, 4.0, 4.0)
    with open_volume(root / "two.zarr", "prob") as volume:  # or the one given to predict
        assert volume.voxel_size == (30.0, 6.0, 6.0) and volume.unit == "micrometer"
    scores = [
        run_cli("src.score", f"prediction={prediction}", f"labels={root / 'labels.tif'}", "compact=true", *key)
        for prediction, key in ((root / "one.zarr", ["prediction_key=prob"]), (root / "tif" / "v_prob.tif", []))
    ]
    assert all(score.returncode == 0 for score in scores), scores[0].stderr[-1500:]
    zarr_score, tiff_score = (json.loads(score.stdout) for score in scores)
    assert zarr_score["vrand"] == pytest.approx(tiff_score["vrand"], abs=1e-4)


WATERSHED = {"_target_": "src.postprocess.instances.SeededWatershed"}


def _assert_whole_slice_cells(cells: np.ndarray, source: np.ndarray, config: dict, offsets=()) -> None:
    """``cells`` number each cell once in the volume and are, slice by slice, ``config``'s cells of ``source``."""
    from src.postprocess.instances import build_postprocess

    method = build_postprocess(config, offsets)
    assert set(np.intersect1d(cells[0], cells[1]).tolist()) <= {0}
    for z in range(cells.shape[0]):
        expected = method(source[:, z] if offsets else source[z])
        assert same_partition(cells[z], expected) and len(np.unique(expected)) > 2


def test_a_killed_run_resumes_to_the_same_output(setup):
    root, copies, ckpt = setup
    agglomeration = "postprocess=agglomeration"  # cells and, block by block, its contour map
    whole = _predict(ckpt, copies["n5"], root / "whole.zarr", "block_shape=[1,32,32]", agglomeration)
    assert whole.returncode == 0, whole.stderr[-2000:]
    target = root / "killed.zarr"
    args = [
        f"ckpt_path={ckpt}",
        f"input={copies['n5'][0]}",
        "input_key=raw",
        f"output={target}",
        *COMMON,
        "block_shape=[1,32,32]",
        agglomeration,
    ]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    process = subprocess.Popen(
        [sys.executable, "-m", "src.predict", *args], cwd=PROJECT_ROOT, start_new_session=True, **quiet
    )
    done = root / ".killed.partial.zarr" / ".done"
    deadline = time.time() + 240
    while time.time() < deadline and (not done.exists() or len(os.listdir(done)) < 5):
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written = len(os.listdir(done))
    assert 5 <= written < 3 * 5 * 6 and not target.exists()
    refused = _predict(ckpt, copies["n5"], target, "block_shape=[1,32,32]", agglomeration)
    assert refused.returncode == 2 and "holds an interrupted prediction; pass resume=true" in refused.stderr
    other = _predict(ckpt, copies["n5"], target, "block_shape=[1,64,64]", agglomeration, "resume=true")
    assert other.returncode == 2 and "was started with other settings (block_shape differ)" in other.stderr
    resumed = _predict(ckpt, copies["n5"], target, "block_shape=[1,32,32]", agglomeration, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert zarr.open_group(target, mode="r")["contours/0"][:].min() < 0.9  # borders below the interiors' 1
    for key in ("0", "prob/0", "labels/classes/0", "labels/cells/0", "contours/0"):
        a, b = zarr.open_group(root / "whole.zarr", mode="r")[key][:], zarr.open_group(target, mode="r")[key][:]
        np.testing.assert_array_equal(a, b)


def test_slice_statistics_are_the_per_slice_standardisation(setup):
    _, copies, _ = setup
    with open_volume(*copies["tiff"]) as volume:
        stats = slice_statistics(volume, rows=37)
        stack = volume.read_all().astype(np.float64)
    np.testing.assert_allclose(stats[:, 0], stack.mean(axis=(1, 2)))
    np.testing.assert_allclose(stats[:, 1], stack.std(axis=(1, 2)))


def test_the_slurm_script_splits_the_blocks_over_its_tasks(setup, tmp_path):
    # No cluster here: the batch script runs as sbatch would start it on one node with 2 tasks (the fake srun of
    # the training script's test starts them); Lightning takes ranks from SLURM's variables and starts none.
    from tests.cli.test_train_cli import SRUN_ON_THIS_MACHINE

    root, copies, ckpt = setup
    (tmp_path / "srun").write_text(SRUN_ON_THIS_MACHINE)
    (tmp_path / "srun").chmod(0o755)
    slurm = {
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NNODES": "1",
        "SLURM_JOB_ID": "73108",
        "SLURM_JOB_NAME": "unet-em-predict",
        "SLURM_NODELIST": "127.0.0.1",
    }
    env = {**os.environ, **slurm, "PATH": f"{tmp_path}:{os.environ['PATH']}", "PYTHON": sys.executable}
    script = PROJECT_ROOT / "scripts" / "slurm" / "predict_multinode.sbatch"
    overrides = [
        f"ckpt_path={ckpt}",
        f"input={copies['zarr2'][0]}",
        "input_key=raw",
        f"output={tmp_path / 'o.zarr'}",
        *COMMON,
        "block_shape=[1,64,64]",
    ]
    done = subprocess.run(
        ["bash", str(script), *overrides], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout[done.stdout.index("{") :])["processes"] == 2
    # one block, two processes: the one without a block meets the other at the end (an idle step) and both finish
    whole = _predict(
        ckpt, copies["zarr2"], tmp_path / "one.zarr", "block_shape=[3,160,190]", "trainer.devices=2", timeout=120
    )
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert json.loads(whole.stdout[whole.stdout.index("{") :])["processes"] == 2
    a, b = (zarr.open_group(tmp_path / name, mode="r")["0"][:] for name in ("o.zarr", "one.zarr"))
    np.testing.assert_allclose(a, b, atol=2e-6)


def test_an_affinity_network_blockwise_writes_the_tiff_paths_affinities(setup, tmp_path):
    """The OME-Zarr output of an affinity network holds, beside the classes, ``affinities/0`` with the offsets in
    its attributes: the same values the TIFF path writes to ``<name>_affinities.tif``."""
    import torch

    from src.models.module import SegmentationModule

    root, copies, _ = setup
    torch.manual_seed(0)
    offsets = [[-1, 0], [0, -1], [-4, 0], [0, -4]]
    module = SegmentationModule(
        net={"_target_": "src.models.unet.UNet", "depth": 3, "base_channels": 4, "num_classes": 2 + len(offsets)},
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True},
        affinities={"offsets": offsets},
    )
    ckpt = tmp_path / "affinities.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, ckpt)
    zarr_run = _predict(
        *(ckpt, copies["tiff"], tmp_path / "a.zarr", "block_shape=[2,64,96]"),
        *("postprocess=mutex_watershed", "cells_halo=190"),
    )
    assert zarr_run.returncode == 0, zarr_run.stderr[-2000:]
    tiff_run = _predict(ckpt, copies["tiff"], tmp_path / "tiff", "postprocess=none")
    assert tiff_run.returncode == 0, tiff_run.stderr[-2000:]
    group = zarr.open_group(tmp_path / "a.zarr", mode="r")
    assert group["affinities"].attrs["offsets"] == offsets
    (tiff,) = (tmp_path / "tiff").glob("*_affinities.tif")
    np.testing.assert_allclose(group["affinities/0"][:].transpose(1, 0, 2, 3), tifffile.imread(tiff), atol=1e-5)
    mutex = {"_target_": "src.postprocess.mutex_watershed.MutexWatershed"}  # its cells, from the stored affinities
    _assert_whole_slice_cells(group["labels/cells/0"][:], group["affinities/0"][:], mutex, offsets)
