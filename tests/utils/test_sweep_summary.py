"""Multiruns: a failing job does not stop the sweep, and the sweep ends with a cross-validation summary."""

import json

import numpy as np
import pytest

from tests.conftest import run_cli


@pytest.mark.slow
def test_two_fold_sweep_with_a_failing_job_ends_with_its_summary(tmp_path):
    result = run_cli(
        "src.train",
        "-m",
        "data=synthetic",
        "model.base_channels=4",
        "model.depth=3,0",
        "data.fold=3,4",
        "trainer.max_epochs=1",
        "trainer.check_val_every_n_epoch=1",
        "logger=csv",
        f"paths.log_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["finished"] == 2 and summary["failed"] == 2
    failed = [job for job in summary["jobs"] if job["state"] == "failed"]
    assert all("model.depth=0" in job["overrides"] and "model.depth=0" in job["error"] for job in failed)
    assert all((sweep / str(job["job"]) / "FAILED").is_file() for job in failed)
    done = [job for job in summary["jobs"] if job["state"] == "ok"]
    assert sorted(job["overrides"] for job in done) == ["model.depth=3 data.fold=3", "model.depth=3 data.fold=4"]
    for job in done:
        metrics = json.loads((sweep / str(job["job"]) / "metrics.json").read_text())
        assert job["test/vrand"] == metrics["metrics"]["test/vrand"]
    vrands = [job["test/vrand"] for job in done]
    assert summary["stats"]["test/vrand"]["mean"] == pytest.approx(np.mean(vrands))
    assert summary["stats"]["test/vrand"]["std"] == pytest.approx(np.std(vrands))
    table = (sweep / "summary.md").read_text()
    assert "2 of 4 jobs finished; 2 failed" in table and f"{np.mean(vrands):.4f} ±" in table
