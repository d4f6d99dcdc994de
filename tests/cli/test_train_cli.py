"""The tasks run as a user runs them: `python -m src.train ...` and `python -m src.eval ...` as subprocesses."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning
import numpy as np
import pytest
import tifffile
import torch
from omegaconf import OmegaConf

from src.config import PROJECT_ROOT
from src.metrics.isbi import score_probabilities, score_segmentations
from tests.cli.rank_metrics import RANK_PROBE, rank_records
from tests.cli.wandb_records import offline_run
from tests.conftest import run_cli

FAST = ["data=synthetic", "model.base_channels=4", "model.depth=3", "trainer.accelerator=cpu"]


def _runs(log_dir: Path, task: str = "train") -> list[Path]:
    return sorted((log_dir / task / "runs").iterdir()) if (log_dir / task / "runs").is_dir() else []


def _train_run(tmp_path: Path, *overrides: str, env: dict | None = None) -> tuple[Path, dict]:
    """Run ``src.train`` with ``overrides`` into ``tmp_path``; it must succeed and leave exactly one new run."""
    before = set(_runs(tmp_path))
    result = run_cli("src.train", *overrides, f"paths.log_dir={tmp_path}", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = [r for r in _runs(tmp_path) if r not in before]
    return run, json.loads((run / "metrics.json").read_text())


def _csv_series(run: Path, column: str) -> list[tuple[int, float]]:
    """(step, value) of every row of the run's CSV log that has ``column``."""
    with open(run / "csv" / "metrics.csv") as handle:
        return [(int(row["step"]), float(row[column])) for row in csv.DictReader(handle) if row.get(column)]


def test_fast_dev_run_through_the_cli(tmp_path):
    run, metrics = _train_run(tmp_path, *FAST, "debug=fast", "logger=csv")
    assert 0.0 <= metrics["metrics"]["test/vrand"] <= 1.0
    assert metrics["headline"]["slices"] == [8, 9] and (run / "report.md").is_file()
    assert (run / "figures" / "augmented_crops.png").stat().st_size > 1000
    # Provenance: the resolved config, the commit and the package versions the run used.
    resolved = (run / "config.yaml").read_text()
    assert "base_channels: 4" in resolved and "fast_dev_run: true" in resolved
    info = json.loads((run / "run_info.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert info["git_commit"].removesuffix("-dirty") == head.stdout.strip()
    assert info["packages"]["torch"] == torch.__version__ and info["packages"]["lightning"] == lightning.__version__


@pytest.mark.slow
def test_train_resume_eval_and_predict_by_the_recipe(tmp_path):
    # 1) a short real run with W&B (offline) and CSV logging, scored by the agglomeration's contour map
    recipe = ["postprocess=agglomeration", "inference.scored=contours"]
    run, metrics = _train_run(
        tmp_path,
        *FAST,
        *recipe,
        "trainer.max_epochs=2",
        "trainer.check_val_every_n_epoch=1",
        env={"WANDB_MODE": "offline"},
    )
    assert metrics["epochs"] == 2 and metrics["optimized_metric"] == "val/vrand"
    assert Path(metrics["best_checkpoint"]).is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert metrics["optimized_value"] == pytest.approx(max(v for _, v in _csv_series(run, "val/vrand")), abs=1e-6)
    assert (run / "figures" / "val_epoch_001.png").stat().st_size > 1000
    (offline,) = (run / "wandb").glob("offline-run-*/run-*.wandb")  # an offline W&B run, left to sync
    # The README's `wandb sync <run>/wandb/offline-run-*`, short of uploading (no network here).
    sync = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "sync", "--dry-run", str(offline.parent)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sync.returncode == 0 and "Would sync 1 run(s)" in sync.stderr + sync.stdout, sync.stderr
    assert offline.name in sync.stderr + sync.stdout
    # Read back from the offline run's own file: the held-out scores in its summary, the per-slice table, and the
    # results figure's slices with prediction and label masks at each validation.
    logged = offline_run(run)
    summary, headline = logged["summary"], metrics["headline"]
    assert summary["held_out/vrand"] == headline["vrand"] and summary["held_out/vinfo"] == headline["vinfo"]
    assert summary["held_out/dice/interior"] == headline["dice"]["interior"]
    table = json.loads((logged["files"] / summary["held_out/per_slice/path"]).read_text())
    contours = {row["slice"]: row for row in metrics["held_out"]["contours"]["per_slice"]}
    assert [row[0] for row in table["data"]] == [8, 9] and table["columns"][:3] == ["slice", "vrand", "vinfo"]
    assert [row[1] for row in table["data"]] == [contours[8]["vrand"], contours[9]["vrand"]]
    assert summary["val/slices/count"] == 2 and set(summary["val/slices/all_masks"][0]) == {
        "prediction",
        "ground_truth",
    }
    steps_per_epoch = metrics["global_step"] // 2
    # The held-out prediction left by training: TTA probability, cells, contour map and truth, rescored here.
    held = metrics["held_out"]
    assert held["tta"] == list(range(8)) and held["slices"] == [8, 9]
    prob, cells, contours, truth = (
        tifffile.imread(run / held["files"][f"test_{n}.tif"]) for n in ("probability", "cells", "contours", "labels")
    )
    assert prob.shape == cells.shape == truth.shape and len(prob) == 2  # the 2 held-out slices, whole
    assert prob.dtype == np.float32 and cells.dtype == np.uint32 and set(np.unique(truth)) <= {0, 255}
    assert held["threshold"]["vrand"] == pytest.approx(score_probabilities(prob, truth > 0)["vrand"], abs=1e-9)
    assert held["postprocess"]["vrand"] == pytest.approx(score_segmentations(cells, truth > 0)["vrand"], abs=1e-9)
    # One headline: the recipe's scored output, in metrics.json, report.md and the run's last line.
    headline = metrics["headline"]
    assert headline["scored"] == "contours" and headline["prediction"] == "predictions/test_contours.tif"
    assert headline["vrand"] == pytest.approx(score_probabilities(contours, truth > 0)["vrand"], abs=1e-9)
    assert f"V_rand {headline['vrand']:.4f}, V_info {headline['vinfo']:.4f}" in (run / "report.md").read_text()
    last = (run / "train.log").read_text().strip().splitlines()[-1]
    assert "headline: contour map of Agglomeration" in last and f"V_rand {headline['vrand']:.4f}" in last

    # 2) resume from last.ckpt for one more epoch: the step count goes on from where it stopped
    _, after = _train_run(
        tmp_path,
        *FAST,
        "trainer.max_epochs=3",
        "trainer.check_val_every_n_epoch=1",
        "logger=csv",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
    )
    assert after["epochs"] == 3 and after["global_step"] == 3 * steps_per_epoch

    # 3) src.eval of the best checkpoint with no recipe key: the training run's own headline
    evaluated = run_cli(
        "src.eval", "data=synthetic", f"ckpt_path={metrics['best_checkpoint']}", f"paths.log_dir={tmp_path}"
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    (eval_run,) = _runs(tmp_path, "eval")
    saved = json.loads((eval_run / "metrics.json").read_text())
    assert saved["headline"]["vrand"] == pytest.approx(headline["vrand"], abs=1e-6)
    assert saved["headline"]["vinfo"] == pytest.approx(headline["vinfo"], abs=1e-6)
    assert saved["recipe"] == held["recipe"] and saved["slices"] == [8, 9]
    assert set(saved["compared"]) == {"watershed", "components"}  # the recipe's agglomeration is the headline
    assert "headline: contour map of Agglomeration" in evaluated.stdout.strip().splitlines()[-1]
    report = (eval_run / "report.md").read_text()
    assert f"V_rand {headline['vrand']:.4f}" in report and "| 9 |" in report and "figures/test_slices.png" in report
    assert (eval_run / "figures" / "test_slices.png").stat().st_size > 1000

    # 4) src.predict with nothing but ckpt_path, input and output, scored by src.score: the same headline
    out = tmp_path / "predicted"
    images = run / held["files"]["test_images.tif"]
    predicted = run_cli("src.predict", f"ckpt_path={metrics['best_checkpoint']}", f"input={images}", f"output={out}")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert "inference: whole slices, mean of 8 flips/rotations, post-processing Agglomeration(" in predicted.stdout
    summary = json.loads(predicted.stdout[predicted.stdout.index("{") :])
    assert summary["scored"] == str(out / "test_images_contours.tif")
    scored = run_cli("src.score", f"prediction={summary['scored']}", f"labels={run / held['files']['test_labels.tif']}")
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert json.loads(scored.stdout)["vrand"] == pytest.approx(headline["vrand"], abs=1e-4)
    assert json.loads(scored.stdout)["vinfo"] == pytest.approx(headline["vinfo"], abs=1e-4)
    names = ("cells", "classes", "contours", "prob")
    assert sorted(p.name for p in out.iterdir()) == [f"test_images_{n}.tif" for n in names]


def test_config_typo_exits_with_one_line(tmp_path):
    result = run_cli("src.train", "model.dept=5", f"paths.log_dir={tmp_path}")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.dept" in lines[0], result.stderr
    assert lines[0].endswith("(did you mean model.depth?)") and "+model.dept" not in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "train").exists()


def test_bad_value_exits_with_one_line_and_no_run_dir(tmp_path):
    result = run_cli("src.train", *FAST, "model.depth=0", "logger=csv", f"paths.log_dir={tmp_path}")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "model.depth=0" in errors[0] and "Traceback" not in result.stderr
    assert _runs(tmp_path) == []


@pytest.mark.slow
def test_ddp_with_two_cpu_processes_writes_one_run(tmp_path):
    run, metrics = _train_run(
        tmp_path,
        *FAST,
        "model.depth=4",
        "trainer=ddp",  # 2 processes
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "trainer.check_val_every_n_epoch=1",
        "logger=csv",
        RANK_PROBE,
    )
    assert metrics["world_size"] == 2 and _runs(tmp_path) == [run]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_000.ckpt", "last.ckpt"]
    # Both ranks' test slices are gathered: the per-slice table covers the whole held-out block.
    assert [entry["slice"] for entry in metrics["test_per_slice"]] == [8, 9]
    # Each rank computed the same metrics (V_rand, V_info and pixel error reduced across processes) and ended
    # with the same weights. (Batch norm is not synchronised on CPUs: torch's SyncBatchNorm is CUDA-only.)
    zero, one = rank_records(run)
    assert zero["world_size"] == one["world_size"] == 2 and not zero["sync_batchnorm"]
    assert {"val/vrand", "val/vinfo", "test/vrand", "test/vinfo", "test/pixel_error"} <= set(zero["metrics"])
    assert zero["metrics"] == one["metrics"]
    assert zero["weights_checksum"] == one["weights_checksum"]
    assert metrics["metrics"]["test/vrand"] == pytest.approx(zero["metrics"]["test/vrand"], abs=1e-6)


@pytest.mark.slow
def test_ddp_processes_led_by_the_clock_keep_one_learning_rate(tmp_path):
    """A time budget far too short for the steps: the schedule follows the clock, and every process reads rank 0's,
    so they step at one learning rate and keep the same weights (each reading its own clock, they drift apart)."""
    run, _ = _train_run(
        tmp_path,
        *FAST,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=-1",
        "trainer.max_steps=100000",
        "trainer.max_time=00:00:00:06",
        "scheduler.warmup_steps=5",
        "logger=csv",
        RANK_PROBE,
    )
    zero, one = rank_records(run)
    peak = OmegaConf.load(run / "config.yaml").optimizer.lr
    assert zero["lr"] == one["lr"] < 0.5 * peak  # annealed by the clock: 100,000 steps alone would hold the peak
    assert zero["weights_checksum"] == one["weights_checksum"]


# srun as SLURM runs it on one node: the command once per task, each with the variables srun gives a task.
SRUN_ON_THIS_MACHINE = """#!/bin/bash
pids=()
for ((rank = 0; rank < SLURM_NTASKS; rank++)); do
  SLURM_PROCID=$rank SLURM_LOCALID=$rank SLURM_NODEID=0 "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
"""


@pytest.mark.slow
def test_slurm_batch_script_runs_its_tasks_into_one_run_folder(tmp_path):
    # No cluster here: the batch script runs as sbatch would start it on one node with 2 tasks, and srun starts
    # the tasks. Lightning must take rank and world size from SLURM's variables and start no process itself.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(SRUN_ON_THIS_MACHINE)
    (bin_dir / "srun").chmod(0o755)
    slurm = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_JOB_NUM_NODES": "1", "SLURM_NNODES": "1"}
    slurm |= {"SLURM_JOB_ID": "73107", "SLURM_JOB_NAME": "unet-em", "SLURM_NODELIST": "127.0.0.1"}
    env = {**os.environ, **slurm, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": sys.executable}
    overrides = [*FAST, "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1", "logger=csv", RANK_PROBE]
    script = PROJECT_ROOT / "scripts" / "slurm" / "train_multinode.sbatch"
    result = subprocess.run(
        ["bash", str(script), *overrides, f"paths.log_dir={tmp_path}"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [run.name for run in _runs(tmp_path)] == ["slurm-73107"]
    run = _runs(tmp_path)[0]
    metrics = json.loads((run / "metrics.json").read_text())
    zero, one = rank_records(run)
    assert metrics["world_size"] == zero["world_size"] == one["world_size"] == 2
    assert zero["metrics"] == one["metrics"] and zero["weights_checksum"] == one["weights_checksum"]
    assert [entry["slice"] for entry in metrics["test_per_slice"]] == [8, 9]


def test_bf16_mixed_precision_trains_on_cpu(tmp_path):
    run, metrics = _train_run(
        tmp_path, *FAST, "trainer.precision=bf16-mixed", "trainer.max_epochs=1", "logger=csv", RANK_PROBE
    )
    (record,) = rank_records(run)
    assert record["train_dtype"] == "torch.bfloat16"  # the network ran under bf16 autocast
    assert all(np.isfinite(v) for v in record["metrics"].values()) and 0.0 <= metrics["metrics"]["test/vrand"] <= 1
    assert "precision: bf16-mixed" in (run / "config.yaml").read_text()


def test_paper_experiment_runs_a_few_steps_on_cpu(tmp_path):
    # The paper's structure (valid padding, SGD 0.99, batch 1, dropout) at a small width, on generated data.
    run, metrics = _train_run(
        tmp_path,
        "experiment=isbi2012_paper",
        "data=synthetic",
        "data.crop_size=188",
        "model.base_channels=4",
        "data.batch_size=1",
        "debug=fast",
        "logger=csv",
        "trainer.accelerator=cpu",
    )
    assert metrics["global_step"] == 1 and 0.0 <= metrics["metrics"]["test/vrand"] <= 1.0
    ran = OmegaConf.load(run / "config.yaml")
    assert (ran.model.padding, ran.model.dropout, ran.optimizer.momentum) == ("valid", 0.5, 0.99) and ran.loss.weighted
    assert ran.data.weight_map.w0 == 10.0 and ran.data.augmentation.elastic_p == 1.0


def test_weights_training_ends_with_are_validated(tmp_path):
    # Validation every 2 epochs, 3 epochs of training: the third epoch's weights must still be validated.
    run, metrics = _train_run(
        tmp_path, *FAST, "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2", "logger=csv", "test=false"
    )
    validated = _csv_series(run, "val/vrand")
    validated_steps = [step for step, _ in validated]
    # one validation after epoch 2 (16 steps), one of the final weights (24 steps)
    assert len(validated_steps) == 2 and validated_steps[-1] >= metrics["global_step"] - 1 > validated_steps[0] + 1
    assert metrics["optimized_value"] == pytest.approx(max(v for _, v in validated), abs=1e-6)


# Small enough to run in seconds; 3 epochs of 24 steps, so that a kill lands inside the second.
DETERMINISTIC = [
    "data=synthetic",
    "data.train_samples=96",
    "model.base_channels=8",
    "model.depth=3",
    "trainer.accelerator=cpu",
    "trainer.deterministic=true",
    "trainer.max_epochs=3",
    "trainer.check_val_every_n_epoch=2",  # last.ckpt of epoch 0 is written without a validation
    "callbacks.model_checkpoint.last_interval_s=0",  # ... at every epoch's end, not once a minute
    "logger=csv",
    "inference.tta=false",
    "augmentation_preview=0",
    "postprocess=agglomeration",
]


def _saved_epoch(checkpoint: Path) -> int | None:
    """The epoch a checkpoint was saved at, or None while it is not there (Lightning writes it atomically)."""
    if not checkpoint.is_file():
        return None
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"]


def _kill_after_first_epoch(tmp_path: Path, *overrides: str) -> Path:
    """Start a run, SIGKILL it inside its second epoch, and return its run folder."""
    before = set(_runs(tmp_path))
    process = subprocess.Popen(
        [sys.executable, "-m", "src.train", *overrides, f"paths.log_dir={tmp_path}"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            new = [r for r in _runs(tmp_path) if r not in before]
            if new and _saved_epoch(new[0] / "checkpoints" / "last.ckpt") == 0:
                break
            time.sleep(0.05)
        # Killed as soon as epoch 0 is saved: an epoch takes under a second on a CPU with native bf16, so any
        # fixed wait could outlast the second epoch.
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    (run,) = new
    return run


@pytest.mark.slow
def test_same_seed_reproduces_and_a_killed_run_resumes_to_the_same_result(tmp_path):
    first, reference = _train_run(tmp_path / "a", *DETERMINISTIC)
    # The contour map left in predictions/ scores, by the protocol's sweep, what the run recorded.
    files = reference["held_out"]["files"]
    contours, truth = (tifffile.imread(first / files[f"test_{n}.tif"]) for n in ("contours", "labels"))
    assert contours.dtype == np.float32 and contours.shape == truth.shape
    swept = score_probabilities(contours, truth > 0)
    assert reference["held_out"]["contours"]["vrand"] == pytest.approx(swept["vrand"], abs=1e-9)
    assert reference["held_out"]["contours"]["vinfo"] == pytest.approx(swept["vinfo"], abs=1e-9)
    assert len(_csv_series(first, "val/vrand")) == 2  # after epoch 1, and of the final weights

    # A second run of the seed, killed after its first epoch: its epoch 0 is trained afresh in another process,
    # so ending where the first run did shows both that one seed reproduces and that resuming loses nothing.
    killed = _kill_after_first_epoch(tmp_path / "c", *DETERMINISTIC)
    last = killed / "checkpoints" / "last.ckpt"
    assert _saved_epoch(last) in (0, 1) and not (killed / "metrics.json").exists()  # killed before the end
    # ckpt_path=last finds the killed run's last.ckpt; the resumed run ends where the uninterrupted one did.
    resumed_run, resumed = _train_run(tmp_path / "c", *DETERMINISTIC, "ckpt_path=last")
    assert resumed["resumed_from"] == str(last)
    assert (resumed["epochs"], resumed["global_step"]) == (reference["epochs"], reference["global_step"])
    # identical validation and test metrics, bit for bit
    assert resumed["metrics"] == reference["metrics"]
    assert resumed["held_out"]["threshold"] == reference["held_out"]["threshold"]
    assert resumed["held_out"]["contours"] == reference["held_out"]["contours"]
    assert _csv_series(resumed_run, "val/vrand") == _csv_series(first, "val/vrand")
    assert last.is_file()  # the killed run's files are kept
