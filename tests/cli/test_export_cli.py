"""`python -m src.export`: TorchScript and ONNX files that reproduce the checkpoint's probabilities."""

import json

import numpy as np
import pytest
import tifffile
import torch

from src.export import export
from src.models.checkpoint import load_module
from src.models.exported import InteriorProbability
from src.utils.errors import UserError
from tests.conftest import compose_config, run_cli


def _expected(ckpt, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return InteriorProbability(load_module(ckpt).net).eval()(torch.from_numpy(x)).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exported_model_matches_the_checkpoint(small_checkpoint, tmp_path, fmt):
    out = tmp_path / f"model.{fmt}"
    result = run_cli(
        "src.export",
        f"ckpt_path={small_checkpoint}",
        f"format={fmt}",
        f"output={out}",
        f"paths.log_dir={tmp_path / 'logs'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["max_abs_diff"] < 1e-4 and len(summary["checked_sizes"]) == 3
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [out.name]
    # An input size the export command did not check, batch of 3, rectangular.
    x = np.random.default_rng(0).normal(size=(3, 1, 236, 204)).astype(np.float32)
    if fmt == "onnx":
        import onnxruntime

        got = onnxruntime.InferenceSession(str(out)).run(None, {"image": x})[0]
    else:
        with torch.no_grad():
            got = torch.jit.load(str(out))(torch.from_numpy(x)).numpy()
    expected = _expected(small_checkpoint, x)
    assert got.shape == expected.shape == (3, 1, 236 - 88, 204 - 88)  # valid padding, depth 3: 44 px each side
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_existing_file_and_bad_format_are_refused(small_checkpoint, tmp_path):
    out = tmp_path / "model.onnx"
    out.write_text("mine")
    for extra, words in (([f"output={out}"], "exists"), (["format=tflite", f"output={tmp_path / 'x'}"], "format")):
        result = run_cli("src.export", f"ckpt_path={small_checkpoint}", *extra, f"paths.log_dir={tmp_path / 'l'}")
        assert result.returncode == 2 and words in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert out.read_text() == "mine"


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("check_sides=[]", r"check_sides=\[\] must list one or more positive sizes"),
        ("check_sides=[-5]", r"check_sides=\[-5\] must list"),
        ("tolerance=-1", "tolerance=-1.0 must be 0 or more"),
        ("format=torchscript output=m.onnx", "m.onnx has the suffix of format=onnx, but format=torchscript writes .pt"),
        ("format=onnx output=m.zip", "pass format=bioimageio or name the output \\*.onnx"),
        ("format=bioimageio bioimageio.authors=[]", r"bioimageio.authors=\[\] names no one"),
    ],
)
def test_checks_that_would_check_nothing_are_refused_before_the_checkpoint_is_read(tmp_path, setting, words):
    cfg = compose_config("export", [f"ckpt_path={tmp_path / 'not_there.ckpt'}", *setting.split()])
    with pytest.raises(UserError, match=words):
        export(cfg)


def test_without_output_the_file_goes_beside_the_checkpoint_and_the_path_is_said(small_checkpoint, tmp_path):
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(small_checkpoint.read_bytes())
    result = run_cli("src.export", f"ckpt_path={ckpt}", "format=torchscript", f"paths.log_dir={tmp_path / 'logs'}")
    assert result.returncode == 0, result.stderr[-3000:]
    written = ckpt.parent / "last-unet.pt"
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["last-unet.pt", "last.ckpt"]
    assert f"exported torchscript model: {written} (beside the checkpoint" in result.stderr
    assert not (tmp_path / "logs").exists()  # no run folder


@pytest.mark.slow
def test_a_bioimageio_package_passes_its_test_and_reproduces_predict(tmp_path):
    """A trained run exported as a bioimage.io package: bioimageio.core's own test of it passes (offline), and
    bioimageio.core running it on the held-out slices gives src.predict's probabilities (float32, no TTA)."""
    from bioimageio.core import predict, test_model

    from tests.cli.test_train_cli import FAST, _train_run

    run, metrics = _train_run(tmp_path, *FAST, "trainer.max_epochs=2", "logger=csv")
    ckpt = metrics["best_checkpoint"]
    package = tmp_path / "model.zip"
    result = run_cli("src.export", f"ckpt_path={ckpt}", "format=bioimageio", f"output={package}")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["test"] == "passed" and sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [package.name]
    tested = test_model(package)
    formats = {d.name.split("(")[-1].rstrip(")") for d in tested.details if d.name.startswith("Reproduce")}
    assert tested.status == "passed" and formats == {"onnx", "pytorch_state_dict", "torchscript"}

    images = run / metrics["held_out"]["files"]["test_images.tif"]
    out = tmp_path / "predicted"
    extra = ("tta=false", "precision=32", "probabilities=true", "postprocess=none")
    predicted = run_cli("src.predict", f"ckpt_path={ckpt}", f"input={images}", f"output={out}", *extra)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    classes = ["membrane", "interior"]
    for z, raw in enumerate(tifffile.imread(images)):
        sample = predict(model=package, inputs={"raw": raw.astype(np.float32)[None, None]})
        (probs,) = [t.data.values for t in sample.members.values()]
        assert probs.shape == (1, 2, *raw.shape)
        for c, name in enumerate(classes):
            np.testing.assert_allclose(probs[0, c], tifffile.imread(out / f"test_images_prob_{name}.tif")[z], atol=2e-4)
