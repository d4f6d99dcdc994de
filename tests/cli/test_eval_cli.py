"""`python -m src.eval` as a user runs it: the held-out scores of a checkpoint, its report, each post-processing."""

import json

import lightning as L
import pytest

from src.data.datamodule import EMDataModule
from src.data.sources import SyntheticSource
from src.evaluation.held_out import predict_slices, stacked
from src.metrics.isbi import score_probabilities
from src.models.checkpoint import load_module
from tests.conftest import run_cli


def test_eval_with_tta_rescores_the_sweep_and_reports_each_method(small_checkpoint, tmp_path):
    result = run_cli(
        "src.eval",
        "data=synthetic",
        f"ckpt_path={small_checkpoint}",
        "tta=true",
        "figure_slices=0",
        "trainer.accelerator=cpu",
        "trainer.precision=32",
        f"paths.log_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "eval" / "runs").iterdir()
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["tta"] == list(range(8)) and saved["slices"] == [8, 9]

    # The same checkpoint, slices and transforms in this process give the same sweep.
    datamodule = EMDataModule(SyntheticSource(num_slices=10, size=128, num_cells=30, seed=0), fold=4)
    datamodule.setup()
    trainer = L.Trainer(accelerator="cpu", precision="32", logger=False)
    probs, labels, ids = stacked(
        predict_slices(load_module(small_checkpoint), datamodule.subset("test"), trainer, range(8))
    )
    assert saved["vrand"] == pytest.approx(score_probabilities(probs, labels, slice_ids=ids)["vrand"], abs=1e-6)

    assert set(saved["postprocess"]) == {"watershed", "components", "agglomeration"}
    assert set(saved["postprocess"]["agglomeration"]["contours"]) == {"vrand", "vinfo", "threshold", "vinfo_threshold"}
    assert saved["best_method"] in {"threshold", *saved["postprocess"]}
    report = (run / "report.md").read_text()
    assert "| threshold sweep (challenge protocol) |" in report and "agglomeration (" in report
    assert not (run / "figures").exists()
