"""`python -m src.predict`: stacks of odd sizes and bit depths in, probability and cell stacks of their shape out."""

import json

import numpy as np
import pytest
import tifffile

from src.data.tiff import StackWriter
from src.data.volume import open_volume
from src.predict import predict
from src.utils.errors import UserError
from tests.conftest import compose_config, imported_modules, run_cli, run_clis, write_small_checkpoint


@pytest.mark.parametrize(
    "shape,dtype,stitching",
    [((37, 45), np.uint16, "crop"), ((2, 300, 211), np.float32, "gaussian"), ((1, 600, 130), np.uint8, "crop")],
)
def test_outputs_have_the_input_shape(small_checkpoint, tmp_path, shape, dtype, stitching):
    rng = np.random.default_rng(0)
    stack = (rng.random(shape) * (255 if dtype != np.float32 else 1)).astype(dtype)
    calibrated = len(shape) == 3 and dtype == np.float32  # an ImageJ TIFF stating 40 x 8 x 5 nm voxels
    imagej = {"imagej": True, "resolution": (1 / 5, 1 / 8), "metadata": {"spacing": 40, "unit": "nm"}}
    tifffile.imwrite(tmp_path / "in.tif", stack, **(imagej if calibrated else {}))
    out = tmp_path / "out"
    result = run_cli(
        "src.predict",
        f"ckpt_path={small_checkpoint}",
        f"input={tmp_path / 'in.tif'}",
        f"output={out}",
        "tile_size=128",
        "batch_size=4",
        f"stitching={stitching}",
        "progress=false",
        f"paths.log_dir={tmp_path / 'logs'}",
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # the network is built with torch alone: no seconds of Lightning's imports before the first slice
    imported = imported_modules(result)
    assert "src.models.network" in imported and not imported & {"lightning", "torchmetrics"}
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    prob = tifffile.imread(out / "in_prob.tif").reshape(-1, *shape[-2:])
    cells = tifffile.imread(out / "in_cells.tif").reshape(-1, *shape[-2:])
    slices = 1 if len(shape) == 2 else shape[0]
    assert prob.shape == cells.shape == (slices, *shape[-2:]) and summary["slices"] == slices
    assert prob.dtype == np.float32 and prob.min() >= 0 and prob.max() <= 1
    assert cells.dtype == np.uint32
    for name in ("prob", "cells", "classes"):  # the outputs state the input's voxel size, where it has one
        with open_volume(out / f"in_{name}.tif", None, "output", "") as volume:
            assert (volume.voxel_size, volume.unit) == (((40.0, 8.0, 5.0), "nm") if calibrated else (None, None))
    assert sorted(p.name for p in out.iterdir()) == [
        "in_cells.tif",
        "in_classes.tif",
        "in_prob.tif",
    ]  # no temporary files left
    assert not (tmp_path / "logs").exists()  # predict writes to output= only: no run folder


def test_uint8_output_tta_and_slices_match_the_python_api(small_checkpoint, tmp_path):
    stack = (np.random.default_rng(1).random((4, 90, 70)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", stack)
    args = [
        f"ckpt_path={small_checkpoint}",
        f"input={tmp_path / 's.tif'}",
        "progress=false",
        f"paths.log_dir={tmp_path}",
        "precision=32",  # as the Python API below (auto is bf16 where the CPU has it natively)
    ]
    first = run_cli(
        "src.predict", *args, f"output={tmp_path / 'a'}", "slices=1:3", "tile_size=256", "tta=[0,4]", "postprocess=none"
    )
    assert first.returncode == 0, first.stderr[-3000:]
    prob = tifffile.imread(tmp_path / "a" / "s_prob.tif")
    assert prob.shape == (2, 90, 70) and not (tmp_path / "a" / "s_cells.tif").exists()

    from src.data.normalize import normalize_slices
    from src.inference.tiling import TiledPredictor
    from src.models.checkpoint import load_module

    predictor = TiledPredictor(load_module(small_checkpoint).net, tile_size=256, tta=(0, 4))
    expected = predictor.predict(normalize_slices(stack[1:2])[0])
    np.testing.assert_allclose(prob[0], expected, atol=1e-5)

    small = run_cli(
        "src.predict", *args, f"output={tmp_path / 'b'}", "prob_dtype=uint8", "slices=[1]", "voxel_size=[50,4,4.6]"
    )
    assert small.returncode == 0, small.stderr[-3000:]
    as_bytes = tifffile.imread(tmp_path / "b" / "s_prob.tif")
    with open_volume(tmp_path / "b" / "s_prob.tif", None, "output", "") as volume:  # a voxel size given to predict
        assert volume.voxel_size == (50.0, 4.0, 4.6) and volume.unit == "nanometer"
    predicted = run_cli("src.predict", *args, f"output={tmp_path / 'c'}", "slices=[1]")
    assert predicted.returncode == 0
    assert as_bytes.dtype == np.uint8
    as_float = tifffile.imread(tmp_path / "c" / "s_prob.tif")
    assert np.abs(as_bytes / 255.0 - as_float).max() <= 0.5 / 255 + 1e-6


def test_agglomeration_writes_its_contour_map_and_the_cells_it_cuts(small_checkpoint, isbi_stack, tmp_path):
    tifffile.imwrite(tmp_path / "em.tif", isbi_stack[0][:2, :160, :192])
    out = tmp_path / "out"
    result = run_cli(
        "src.predict",
        f"ckpt_path={small_checkpoint}",
        f"input={tmp_path / 'em.tif'}",
        f"output={out}",
        "postprocess=agglomeration",
        "postprocess.h=0.02",
        "postprocess.threshold=0.99",  # an untrained network's borders are weak: keep all but the weakest
        "progress=false",
        f"paths.log_dir={tmp_path / 'logs'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["em_cells.tif", "em_classes.tif", "em_contours.tif", "em_prob.tif"]
    prob, contours, cells = (tifffile.imread(out / f"em_{n}.tif") for n in ("prob", "contours", "cells"))
    assert contours.dtype == np.float32 and contours.shape == prob.shape == cells.shape == (2, 160, 192)

    from src.postprocess.agglomeration import Agglomeration

    method = Agglomeration(h=0.02, threshold=0.99)
    for p, c, k in zip(prob, contours, cells, strict=True):
        np.testing.assert_array_equal(c, method.contours(p))
        np.testing.assert_array_equal(k, method.cut(c))
    assert (contours < 1).any() and cells.max() > 1


def test_existing_outputs_are_never_replaced_and_bad_input_is_one_line(small_checkpoint, tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((40, 40), np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    (out / "s_prob.tif").write_bytes(b"mine")
    base = ["src.predict", f"ckpt_path={small_checkpoint}", f"output={out}", f"paths.log_dir={tmp_path / 'logs'}"]
    cases = (
        ([f"input={tmp_path / 's.tif'}"], "exists"),
        ([f"input={tmp_path / 'missing.tif'}", f"output={tmp_path / 'o2'}"], "not found"),
        ([f"input={tmp_path / 's.tif'}", f"output={tmp_path / 'o3'}", "tta=[9]"], "tta"),
        ([f"input={tmp_path / 's.tif'}", f"output={tmp_path / 'o4'}", "overlap=1.0"], "overlap"),
        ([f"input={tmp_path / 's.tif'}", f"output={tmp_path / 'o5'}", "stitching=mean"], "stitching"),
        ([f"input={tmp_path / 's.tif'}", f"output={tmp_path / 'o6'}", "voxel_size=[4,4]"], "not a voxel size"),
    )
    for result, (_, words) in zip(run_clis([(*base, *extra) for extra, _ in cases]), cases, strict=True):
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and words in result.stderr, result.stderr
    assert (out / "s_prob.tif").read_bytes() == b"mine" and not (tmp_path / "o6").exists()
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").rglob("*.tif"))


def test_help_describes_the_task_its_keys_and_examples():
    result = run_cli("src.predict", "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("python -m src.predict: segment a TIFF image or stack")
    assert "Examples:" in text and "python -m src.predict ckpt_path=RUN/checkpoints/last.ckpt input=" in text
    assert "tile_size: null" in text and "# 0: whole slices" in text and "output: ???" in text
    assert (
        "postprocess: agglomeration, components, learned_edges, mean_affinity, mutex_watershed, none, watershed" in text
    )
    assert "optimizer" not in text and "max_epochs" not in text  # training's keys are not predict's


def test_a_failed_write_leaves_no_finished_looking_file(tmp_path):
    path = tmp_path / "stack.tif"
    with pytest.raises(RuntimeError), StackWriter(path) as writer:
        writer.write(np.zeros((4, 4), np.float32))
        raise RuntimeError("crash in the middle")
    assert list(tmp_path.iterdir()) == []
    with StackWriter(path) as writer:
        for i in range(3):
            writer.write(np.full((4, 5), i, np.uint8))
        writer.commit()
    with open_volume(path) as reader:
        assert reader.shape == (3, 4, 5) and reader.read(2).max() == 2


def test_an_output_folder_under_a_file_is_refused_with_the_output_names_before_the_module(tmp_path):
    """Before the module's seconds of building: the names of the outputs are checked, and so is where they would go."""
    from omegaconf import OmegaConf

    from src.predict import output_paths
    from src.utils.errors import UserError

    (tmp_path / "results").write_text("a file\n")
    cfg = OmegaConf.create({"input": "in.tif", "output": str(tmp_path / "results" / "a" / "b"), "probabilities": 0})
    recipe = {"postprocess": None, "scored": "probability"}
    with pytest.raises(UserError, match=r"output folder .*results/a/b cannot be made \(Not a directory\)"):
        output_paths(cfg, recipe, ["boundary", "cells"], 0)
    cfg.output = str(tmp_path / "fine" / "a")
    assert output_paths(cfg, recipe, ["boundary", "cells"], 0)["prob"] == tmp_path / "fine" / "a" / "in_prob.tif"


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("batch_size=0", "batch_size=0 must be at least 1"),
        ("num_workers=-1", "num_workers=-1 must be 0"),
        ("queue_megapixels=-1", "queue_megapixels=-1.0 must be positive"),
        ("block_halo=-4", "block_halo=-4 must be auto"),
        ("block_shape=[64,64]", r"block_shape=\[64, 64\] must be three positive sizes \(z, y, x\)"),
        ("block_shape=[1,0,64]", "must be three positive sizes"),
        ("slices=0:2", "slices= chooses slices of a TIFF output"),
        ("voxel_size=[4,4]", "is not a voxel size"),
        ("voxel_size=[50,4,4] voxel_unit=nanometr", "voxel_unit=nanometr is not a unit of length"),
    ],
)
def test_bad_settings_are_refused_before_the_input_or_checkpoint_is_read(tmp_path, setting, words):
    missing = tmp_path / "not_there"
    paths = [f"ckpt_path={missing}.ckpt", f"input={missing}.tif", f"output={tmp_path / 'out.zarr'}"]
    with pytest.raises(UserError, match=words):
        predict(compose_config("predict", [*paths, *setting.split()]))
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_zarr_output_is_refused_before_lightning_is_imported(tmp_path):
    from src.inference.zarr_output import ZarrOutput

    ckpt = write_small_checkpoint(tmp_path / "same.ckpt", depth=2, padding="same")
    tifffile.imwrite(tmp_path / "in.tif", np.zeros((2, 64, 64), np.uint8))
    ZarrOutput(tmp_path / "out.zarr").create((2, 64, 64), (1, 64, 64), ["membrane", "interior"], 0, None, None,
                                             "float32", {"slice_statistics": []})  # fmt: skip
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = [f"ckpt_path={ckpt}", f"input={tmp_path / 'in.tif'}", f"output={tmp_path / 'out.zarr'}", "progress=false"]
    result = run_cli("src.predict", *args, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 2 and "holds an interrupted prediction; pass resume=true" in result.stderr
    imported = imported_modules(result)  # the plan is made with torch alone, seconds before Lightning's imports
    assert "src.inference.block_plan" in imported and not imported & {"lightning", "src.inference.block_run"}
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # the partial output kept as it was
