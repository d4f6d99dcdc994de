"""`python -m src.score`: any prediction stack scored against labels, checked against scikit-image."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from skimage.metrics import adapted_rand_error, variation_of_information

from src.metrics.isbi import thinned_segments, truth_segments
from src.score import score
from src.utils.errors import UserError
from tests.conftest import compose_config, imported_modules, run_cli, run_clis


def _prediction(labels: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = (labels > 0).astype(np.float32) + rng.normal(0, 0.6, labels.shape).astype(np.float32)
    return np.clip(ndimage.gaussian_filter(noisy, (0, 1.2, 1.2)), 0, 1).astype(np.float32)


def _skimage_scores(prob: np.ndarray, label: np.ndarray, threshold: float) -> tuple[float, float]:
    """V_rand and V_info of one slice, with scikit-image doing the table arithmetic."""
    truth, proposal = truth_segments(label), thinned_segments(prob > threshold)
    error, _, _ = adapted_rand_error(truth, proposal, ignore_labels=(0,))
    h_s_t, h_t_s = variation_of_information(truth, proposal, ignore_labels=(0,))
    mask = truth > 0
    h_t, h_s = (
        -(q * np.log2(q)).sum()
        for q in (np.unique(x[mask], return_counts=True)[1] / mask.sum() for x in (truth, proposal))
    )
    return 1 - error, 2 * (h_t - h_t_s) / (h_t + h_s)


@pytest.fixture()
def stacks(isbi_stack, tmp_path):
    labels = isbi_stack[1]
    pred = _prediction(labels[24:30], seed=5)
    pred_path, label_path = tmp_path / "pred.tif", tmp_path / "labels.tif"
    tifffile.imwrite(pred_path, pred)
    tifffile.imwrite(label_path, labels)
    return pred_path, label_path, pred, labels


def test_cli_scores_agree_with_scikit_image(stacks):
    pred_path, label_path, pred, labels = stacks
    result = run_cli(
        "src.score", f"prediction={pred_path}", f"labels={label_path}", "label_slices=24:30", "compact=true"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(result.stdout)
    assert scores["label_slices"] == list(range(24, 30)) and scores["kind"] == "probability"
    for entry, prob, label in zip(scores["per_slice"], pred, labels[24:30], strict=True):
        vrand, _ = _skimage_scores(prob, label, scores["threshold"])
        _, vinfo = _skimage_scores(prob, label, scores["vinfo_threshold"])
        assert entry["vrand"] == pytest.approx(vrand, abs=1e-5)
        assert entry["vinfo"] == pytest.approx(vinfo, abs=1e-5)
        assert entry["pixel_error"] == pytest.approx(((prob > 0.5) != (label > 0)).mean())
    assert scores["vrand"] == pytest.approx(np.mean([s["vrand"] for s in scores["per_slice"]]))
    best = max(scores["per_threshold"], key=lambda row: row["vrand"])
    assert best["threshold"] == scores["threshold"] and best["vrand"] == pytest.approx(scores["vrand"])


def test_postprocessing_is_scored_beside_the_sweep(stacks):
    pred_path, label_path, *_ = stacks
    result = run_cli(
        "src.score", f"prediction={pred_path}", f"labels={label_path}", "label_slices=24:30", "postprocess=watershed"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    post = json.loads(result.stdout)["postprocess"]
    assert post["method"] == "SeededWatershed" and 0.0 < post["vrand"] <= 1.0 and len(post["per_slice"]) == 6


def test_the_referee_never_imports_torch(stacks):
    """Scoring needs no network: src.score starts without torch's seconds of import, postprocessing included."""
    pred_path, label_path, *_ = stacks
    args = [f"prediction={pred_path}", f"labels={label_path}", "label_slices=24:26", "postprocess=agglomeration"]
    result = run_cli("src.score", *args, "prediction_slices=0:2", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["postprocess"]["method"] == "Agglomeration"
    imported = imported_modules(result)
    assert {"numpy", "skimage.segmentation", "src.postprocess.instances"} <= imported
    assert not imported & {"torch", "torchmetrics", "lightning"}


def test_output_file_is_written_and_never_overwritten(stacks, tmp_path):
    pred_path, label_path, *_ = stacks
    out = tmp_path / "scores.json"
    args = [f"prediction={pred_path}", f"labels={label_path}", "label_slices=24:30", f"output={out}"]
    assert run_cli("src.score", *args).returncode == 0
    first = out.read_text()
    assert json.loads(first)["slices"] == 6
    again = run_cli("src.score", *args, "label_slices=24:26")
    assert again.returncode == 2 and "exists" in again.stderr and out.read_text() == first


BAD_INPUTS = [
    (["label_slices=24:40"], "reaches past"),
    ([], "6 prediction slices but 30 label slices"),
    (["label_slices=[24,31]"], "names slice 31"),
    (["label_slices=24:30", "kind=labels"], "integer cell labels"),
    (["label_slices=24:30", "kind=cells"], "kind='cells'"),
    (["label_slices=24:30", "thresholds=[0.5,1.5]"], "thresholds"),
]


def test_bad_input_is_one_line(stacks):
    pred_path, label_path, *_ = stacks
    calls = [("src.score", f"prediction={pred_path}", f"labels={label_path}", *extra) for extra, _ in BAD_INPUTS]
    for result, (extra, words) in zip(run_clis(calls), BAD_INPUTS, strict=True):
        assert result.returncode == 2 and result.stdout == "", (extra, result.stderr)
        assert result.stderr.count("\n") == 1 and words in result.stderr, (extra, result.stderr)


def test_a_failed_score_in_an_empty_folder_leaves_it_as_it_was(tmp_path):
    # score, predict and export make no run folder: their working directory is never taken for one and removed.
    work = tmp_path / "empty"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "src.score", "prediction=missing.tif", "labels=missing.tif"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "prediction not found: missing.tif" in result.stderr
    assert work.is_dir() and list(work.iterdir()) == []


def test_a_negative_number_of_workers_is_refused_before_the_files_are_read(tmp_path):
    cfg = compose_config("score", [f"prediction={tmp_path / 'p.tif'}", f"labels={tmp_path / 'l.tif'}", "workers=-1"])
    with pytest.raises(UserError, match=r"workers=-1 must be 0 \(one process per CPU core\) or more"):
        score(cfg)
