"""Multiruns: a failing job does not stop the sweep, and the sweep ends with a cross-validation summary."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.cli.rank_metrics import RANK_PROBE, rank_records
from tests.cli.wandb_records import offline_run
from tests.conftest import run_cli

TINY = ["data=synthetic", "model.base_channels=4", "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1"]


def _sweep(tmp_path: Path, *overrides: str, logger: str = "csv") -> Path:
    """Run a ``src.train`` multirun with CSV logging into ``tmp_path``; it must succeed. Its sweep folder."""
    result = run_cli("src.train", *overrides, f"logger={logger}", f"paths.log_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    return sweep


@pytest.mark.slow
def test_two_fold_sweep_with_a_failing_job_ends_with_its_summary(tmp_path):
    sweep = _sweep(tmp_path, "-m", *TINY, "model.depth=3,0", "data.fold=3,4", logger="default")  # W&B + CSV
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
    # W&B (offline): the jobs that finished are one group, and the group holds a summary run of the sweep
    groups = {offline_run(sweep / str(job["job"]))["group"] for job in done}
    summary_run = offline_run(sweep)
    assert groups == {summary_run["group"]} == {f"train-{sweep.name}"}
    assert summary_run["summary"]["test/vrand/mean"] == pytest.approx(np.mean(vrands))
    assert summary_run["summary"]["finished"] == 2 and summary_run["summary"]["jobs/nrows"] == 4


@pytest.mark.slow
def test_two_trial_optuna_search_reports_its_best_val_vrand(tmp_path):
    sweep = _sweep(tmp_path, "hparams_search=isbi2012_optuna", "hydra.sweeper.n_trials=2", *TINY)
    import yaml

    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = [json.loads((sweep / str(i) / "metrics.json").read_text())["optimized_value"] for i in (0, 1)]
    assert best["best_value"] == pytest.approx(max(values))
    assert set(best["best_params"]) >= {"optimizer.lr", "model.depth"}


@pytest.mark.slow
def test_submitit_local_launcher_runs_each_job_in_its_own_process(tmp_path):
    sweep = _sweep(tmp_path, "-m", "hydra/launcher=submitit_local", *TINY, "model.depth=2,3")
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["finished"] == 2 and [job["overrides"] for job in summary["jobs"]] == [
        "model.depth=2",
        "model.depth=3",
    ]
    assert list(sweep.glob(".submitit/*/*_log.out")), "submitit keeps each job's log"


@pytest.mark.slow
def test_ddp_jobs_in_a_multirun_each_write_into_their_own_folder(tmp_path):
    # Lightning restarts `python -m src.train <command line>` for rank 1; inside a multirun that command line
    # holds the sweep. Each job must still run once, on 2 ranks, in its own folder, and the next job must start
    # its own 2 processes. A job whose rank 1 fails (fail.rank=1) is recorded as failed and the sweep goes on.
    fault = "+callbacks.fail._target_=tests.cli.rank_metrics.FailOnRank"
    sweep = _sweep(
        tmp_path,
        "-m",
        *TINY,
        "model.depth=3",
        "trainer.devices=2",
        RANK_PROBE,
        fault,
        "+callbacks.fail.rank=1,-1",
        "seed=1,2",
    )
    assert [p.name for p in (tmp_path / "train").iterdir()] == ["multiruns"]  # no stray run or second sweep
    summary = json.loads((sweep / "summary.json").read_text())
    assert [(job["overrides"], job["state"]) for job in summary["jobs"]] == [
        ("+callbacks.fail.rank=1 seed=1", "failed"),
        ("+callbacks.fail.rank=1 seed=2", "failed"),
        ("+callbacks.fail.rank=-1 seed=1", "ok"),
        ("+callbacks.fail.rank=-1 seed=2", "ok"),
    ]
    for job in (0, 1):  # the job's process saw its peer go; the rank that failed wrote why
        assert "a fault injected on rank 1" in (sweep / str(job) / "FAILED.rank1").read_text()
        assert (sweep / str(job) / "FAILED").is_file() and not (sweep / str(job) / "metrics.json").exists()
    checksums = []
    for job in (2, 3):
        metrics = json.loads((sweep / str(job) / "metrics.json").read_text())
        zero, one = rank_records(sweep / str(job))
        assert metrics["world_size"] == zero["world_size"] == one["world_size"] == 2
        assert zero["metrics"] == one["metrics"] and zero["weights_checksum"] == one["weights_checksum"]
        assert metrics["metrics"]["test/vrand"] == pytest.approx(zero["metrics"]["test/vrand"], abs=1e-6)
        checksums.append(zero["weights_checksum"])
    assert checksums[0] != checksums[1]  # the two jobs trained with their own seeds


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel_worker_processes(tmp_path):
    sweep = _sweep(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY, "model.depth=2,3")
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["finished"] == 2 and [job["overrides"] for job in summary["jobs"]] == [
        "model.depth=2",
        "model.depth=3",
    ]
    for job, depth in ((0, 2), (1, 3)):
        assert f"depth: {depth}" in (sweep / str(job) / "config.yaml").read_text()
        assert json.loads((sweep / str(job) / "metrics.json").read_text())["epochs"] == 1
    launcher = (sweep / "multirun.yaml").read_text()
    assert "JoblibLauncher" in launcher and "n_jobs: 2" in launcher
