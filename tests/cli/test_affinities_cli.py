"""An affinity network through every task: src.train scores the mutex watershed's cells, src.score (the referee)
agrees from the cells file and from the affinity file src.predict writes, src.eval decodes by mean affinity."""

import json

import numpy as np
import pytest
import tifffile
import zarr

from src.evaluation.scoring import read_affinities, score_arrays
from src.postprocess.learned_edges import LearnedEdges
from tests.cli.test_train_cli import FAST, _runs, _train_run
from tests.conftest import run_cli

AFFINITIES = ["model.target=affinities", "model.offsets=[[-1,0],[0,-1],[-5,0],[0,-5],[-5,-5],[5,-5]]"]


@pytest.mark.slow
def test_affinities_train_predict_score_and_eval(tmp_path):
    run, metrics = _train_run(
        tmp_path,
        *FAST,
        *AFFINITIES,
        "postprocess=mutex_watershed",
        "inference.scored=cells",
        "trainer.max_epochs=3",
        "logger=csv",
    )
    headline = metrics["headline"]
    assert headline["scored"] == "cells" and headline["what"].startswith("cells of MutexWatershed")
    files = {name: run / path for name, path in metrics["held_out"]["files"].items()}
    labels = f"labels={files['test_labels.tif']}"

    # the referee: the cells file scored as a labelled segmentation gives the run's own numbers
    referee = run_cli("src.score", f"prediction={files['test_cells.tif']}", labels, "kind=labels")
    assert referee.returncode == 0, referee.stderr[-3000:]
    assert json.loads(referee.stdout)["vrand"] == pytest.approx(headline["vrand"], abs=1e-9)
    assert json.loads(referee.stdout)["vinfo"] == pytest.approx(headline["vinfo"], abs=1e-9)

    # src.predict by the checkpoint's recipe writes the affinities (offsets in the metadata) and the same cells
    out = tmp_path / "predicted"
    ckpt = f"ckpt_path={metrics['best_checkpoint']}"
    predicted = run_cli("src.predict", ckpt, f"input={files['test_images.tif']}", f"output={out}")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    summary = json.loads(predicted.stdout[predicted.stdout.index("{") :])
    assert summary["scored"] == str(out / "test_images_cells.tif")
    decoded = run_cli(
        "src.score", f"prediction={summary['affinities']}", "kind=affinities", "postprocess=mutex_watershed", labels
    )
    assert decoded.returncode == 0, decoded.stderr[-3000:]
    assert json.loads(decoded.stdout)["vrand"] == pytest.approx(headline["vrand"], abs=1e-4)

    # src.eval decodes the same network's affinities by mean-affinity agglomeration (waterz) instead
    evaluated = run_cli("src.eval", "data=synthetic", ckpt, "postprocess=mean_affinity", f"paths.log_dir={tmp_path}")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    (eval_run,) = _runs(tmp_path, "eval")
    saved = json.loads((eval_run / "metrics.json").read_text())
    assert saved["headline"]["what"].startswith("cells of MeanAffinity") and 0 <= saved["headline"]["vrand"] <= 1

    # tiles (same padding, a halo of context cropped from each): the affinities move from the whole-slice ones
    # no more than the cells' probability does, so the affinities are stitched as well as the classes
    images = f"input={files['test_images.tif']}"
    tiled = run_cli("src.predict", ckpt, images, f"output={tmp_path / 'tiled'}", "tile_size=64", "halo=16")
    assert tiled.returncode == 0, tiled.stderr[-3000:]
    tiled_summary = json.loads(tiled.stdout[tiled.stdout.index("{") :])
    moved = {}
    for name in ("affinities", "prob"):
        whole, by_tiles = (tifffile.imread(run[name]).astype(np.float64) for run in (summary, tiled_summary))
        scale = 255 if tifffile.imread(summary[name]).dtype == np.uint8 else 1
        assert by_tiles.shape == whole.shape
        moved[name] = np.abs(by_tiles - whole).mean() / scale
    assert 0 < moved["affinities"] < 2 * moved["prob"] + 1e-3, moved


@pytest.mark.slow
def test_learned_edges_are_fitted_by_training_and_read_by_eval_predict_and_score(tmp_path):
    run, metrics = _train_run(
        tmp_path, *FAST, *AFFINITIES, "postprocess=learned_edges", "inference.scored=cells", "trainer.max_epochs=3"
    )
    classifier = run / "edge_classifier.pkl"
    headline = metrics["headline"]
    assert headline["what"].startswith("cells of LearnedEdges") and classifier.is_file()
    assert metrics["held_out"]["recipe"]["postprocess"]["classifier"] == str(classifier)
    files = {name: run / path for name, path in metrics["held_out"]["files"].items()}
    labels = f"labels={files['test_labels.tif']}"

    # src.eval of the run's checkpoint reads the run's classifier and gives the run's cells
    ckpt = f"ckpt_path={metrics['best_checkpoint']}"
    evaluated = run_cli("src.eval", "data=synthetic", ckpt, f"paths.log_dir={tmp_path}")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    (eval_run,) = _runs(tmp_path, "eval")
    saved = json.loads((eval_run / "metrics.json").read_text())["headline"]
    assert (saved["vrand"], saved["vinfo"]) == (headline["vrand"], headline["vinfo"])

    # src.predict writes the same cells and the affinities, which src.score decodes with the classifier named
    out = tmp_path / "predicted"
    predicted = run_cli("src.predict", ckpt, f"input={files['test_images.tif']}", f"output={out}")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    summary = json.loads(predicted.stdout[predicted.stdout.index("{") :])
    assert (tifffile.imread(summary["cells"]) == tifffile.imread(files["test_cells.tif"])).all()
    decoded = run_cli(
        "src.score",
        f"prediction={summary['affinities']}",
        "kind=affinities",
        "postprocess=learned_edges",
        f"postprocess.classifier={classifier}",
        labels,
    )
    assert decoded.returncode == 0, decoded.stderr[-3000:]
    assert json.loads(decoded.stdout)["vrand"] == pytest.approx(headline["vrand"], abs=1e-4)
    # cautious rounds are a config key of the decoder: src.score scores what decoding in this process gives
    scoring = [f"prediction={summary['affinities']}", "kind=affinities", "postprocess=learned_edges", labels]
    cautious = run_cli("src.score", *scoring, f"postprocess.classifier={classifier}", "postprocess.rounds=[0.9]")
    assert cautious.returncode == 0, cautious.stderr[-3000:]
    affinities, offsets = read_affinities(summary["affinities"])
    method = LearnedEdges(classifier=str(classifier), rounds=[0.9]).with_offsets(offsets)
    cells = np.stack([method(one) for one in affinities])
    expected = score_arrays(cells, tifffile.imread(files["test_labels.tif"]), kind="labels")
    assert json.loads(cautious.stdout)["vrand"] == pytest.approx(expected["vrand"], abs=1e-9)
    # without a classifier src.score says how to give one, in one line
    missing = run_cli(
        "src.score", f"prediction={summary['affinities']}", "kind=affinities", "postprocess=learned_edges", labels
    )
    assert missing.returncode != 0 and "postprocess.classifier=" in missing.stderr

    # a run that lost its classifier: src.predict says so before reading the input, and writes nothing
    classifier.rename(run / "kept.pkl")
    lost = run_cli("src.predict", ckpt, f"input={files['test_images.tif']}", f"output={tmp_path / 'lost'}")
    assert lost.returncode != 0 and "no edge_classifier.pkl fitted" in lost.stderr and "Traceback" not in lost.stderr
    assert not (tmp_path / "lost").exists()
    # blockwise prediction to Zarr cuts the cells too, so it is refused the same way; without cells it needs none
    lost_zarr = [ckpt, f"input={files['test_images.tif']}", f"output={tmp_path / 'lost.zarr'}"]
    blocks = run_cli("src.predict", *lost_zarr)
    assert blocks.returncode != 0 and "no edge_classifier.pkl fitted" in blocks.stderr
    assert not (tmp_path / "lost.zarr").exists() and not (tmp_path / ".lost.partial.zarr").exists()
    blocks = run_cli("src.predict", *lost_zarr, "postprocess=none")
    assert blocks.returncode == 0, blocks.stderr[-3000:]
    assert zarr.open_group(tmp_path / "lost.zarr", mode="r")["labels"].attrs["labels"] == ["classes"]
