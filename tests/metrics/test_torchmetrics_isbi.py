"""The torchmetrics wrappers: same numbers as the numpy protocol, alone and synced across two DDP processes."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from scipy import ndimage

from src.metrics.isbi import STACK_KEYS, score_probabilities
from src.metrics.torchmetrics_isbi import ISBIScores, PixelError, VInfo, VRand


def _probabilities(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = (labels > 0).astype(float) + rng.normal(0, 0.7, labels.shape)
    return np.clip(ndimage.gaussian_filter(noisy, (0, 1.5, 1.5)), 0, 1).astype(np.float32)


def test_metric_matches_the_numpy_protocol_and_counts_repeated_slices_once(isbi_stack):
    labels = np.ascontiguousarray(isbi_stack[1][:3, :256, :256])  # a quarter of each slice: the sweep is per pixel
    probs = _probabilities(labels)
    expected = score_probabilities(probs, labels, slice_ids=[10, 11, 12])
    metric = ISBIScores()
    metric.update(torch.from_numpy(probs[:2]), torch.from_numpy(labels[:2]), torch.tensor([10, 11]))
    metric.update(torch.from_numpy(probs[[2, 0]]), torch.from_numpy(labels[[2, 0]]), torch.tensor([12, 10]))
    result = metric.compute()
    assert float(result["vrand"]) == pytest.approx(expected["vrand"], abs=1e-6)
    assert float(result["vinfo"]) == pytest.approx(expected["vinfo"], abs=1e-6)
    assert float(result["pixel_error"]) == pytest.approx(expected["pixel_error"], abs=1e-6)
    assert float(result["threshold"]) == pytest.approx(expected["threshold"])
    assert metric.report()["per_slice"] == expected["per_slice"]
    assert tuple(result) == STACK_KEYS  # the keys optimized_metric is checked against
    for cls, key in ((VRand, "vrand"), (VInfo, "vinfo"), (PixelError, "pixel_error")):
        single = cls()
        single.update(torch.from_numpy(probs), torch.from_numpy(labels), torch.tensor([10, 11, 12]))
        assert float(single.compute()) == pytest.approx(expected[key], abs=1e-6)


_DDP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np, torch, torch.distributed as dist
    from src.metrics.torchmetrics_isbi import ISBIScores

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    data = np.load(sys.argv[1])
    # Rank 0 sees slices 0-2, rank 1 slices 3-4 and slice 0 again (as a DistributedSampler pads).
    ids = [0, 1, 2] if rank == 0 else [3, 4, 0]
    metric = ISBIScores()
    metric.update(torch.from_numpy(data["probs"][ids]), torch.from_numpy(data["labels"][ids]), torch.tensor(ids))
    result = {k: float(v) for k, v in metric.compute().items()}
    result["per_slice"] = metric.report()["per_slice"]
    with open(os.path.join(sys.argv[2], f"rank{rank}.json"), "w") as handle:
        json.dump(result, handle)
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_scores_sync_across_two_ddp_processes(isbi_stack, tmp_path):
    labels = np.ascontiguousarray(isbi_stack[1][:5, :256, :256])
    probs = _probabilities(labels, seed=1)
    np.savez(tmp_path / "data.npz", probs=probs, labels=labels)
    script = tmp_path / "ddp_metric.py"
    script.write_text(_DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run(
        [*cmd, str(script), str(tmp_path / "data.npz"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = score_probabilities(probs, labels)
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["vrand"] == pytest.approx(expected["vrand"], abs=1e-6)
        assert result["vinfo"] == pytest.approx(expected["vinfo"], abs=1e-6)
        assert result["pixel_error"] == pytest.approx(expected["pixel_error"], abs=1e-6)
        assert [s["slice"] for s in result["per_slice"]] == [0, 1, 2, 3, 4]
        for got, want in zip(result["per_slice"], expected["per_slice"], strict=True):
            assert got == pytest.approx(want)
