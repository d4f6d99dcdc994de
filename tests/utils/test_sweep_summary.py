"""The summary every multirun ends with: each job's scores and state, then mean and spread."""

import json

import pytest

from src.utils.sweep_summary import summarise


def _job(sweep, number, overrides, vrand=None, failed=None):
    job = sweep / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if vrand is not None:
        metrics = {"metrics": {"test/vrand": vrand, "test/vinfo": 0.9}, "optimized_metric": "val/vrand"}
        (job / "metrics.json").write_text(json.dumps({**metrics, "optimized_value": vrand}))
    if failed:
        (job / "FAILED").write_text(failed + "\n")


def test_finished_jobs_are_averaged_and_failed_ones_listed(tmp_path):
    _job(tmp_path, 0, ["data.fold=0", "seed=1"], vrand=0.90)
    _job(tmp_path, 1, ["data.fold=1", "seed=1"], vrand=0.80)
    _job(tmp_path, 2, ["data.fold=2", "seed=1"], failed="data.fold=2 is out of range")
    summary = summarise(tmp_path)
    assert summary["finished"] == 2 and summary["failed"] == 1
    assert [job["overrides"] for job in summary["jobs"]] == ["data.fold=0", "data.fold=1", "data.fold=2"]
    assert summary["jobs"][2]["error"] == "data.fold=2 is out of range"
    assert summary["stats"]["test/vrand"]["mean"] == pytest.approx(0.85)
    assert summary["stats"]["test/vrand"]["std"] == pytest.approx(0.05)
    text = (tmp_path / "summary.md").read_text()
    assert "2 of 3 jobs finished; 1 failed" in text and "| mean ± std | | | 0.8500 ± 0.0500 |" in text
    assert json.loads((tmp_path / "summary.json").read_text())["finished"] == 2
