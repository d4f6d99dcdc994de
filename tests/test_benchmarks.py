"""The benchmark scripts' summaries (not their timings: tests never assert speed)."""

import torch

from benchmarks.train_throughput import pair_ratios, precisions
from src.utils.config import cpu_has_native_bf16


def _run(batch: int, seconds_a_step: list[float]) -> dict:
    return {"batch_size": batch, "intervals": seconds_a_step}


def test_pair_ratios_compare_each_framework_run_with_the_plain_run_beside_it():
    plains = [_run(4, [0.40, 0.40, 0.50]), _run(4, [0.20, 0.20]), _run(4, [0.30])]
    frameworks = [_run(4, [0.50]), _run(4, [0.20, 0.30, 0.20]), _run(4, [0.20, 0.20])]
    # ratios framework / plain of the pairs: 0.4/0.5 = 0.8, 0.2/0.2 = 1.0, 0.3/0.2 = 1.5 (their mean is 1.1)
    summary = pair_ratios(plains, frameworks)
    assert summary["ratio"] == 1.0
    assert abs(summary["ratio_low"] - 0.8) < 1e-12 and abs(summary["ratio_high"] - 1.5) < 1e-12


def test_precisions_auto_adds_bf16_only_where_it_is_native():
    native = torch.cuda.is_bf16_supported() if torch.cuda.is_available() else cpu_has_native_bf16()
    expected = ["32", "bf16-mixed"] if native else ["32"]
    assert precisions("auto") == expected
    assert precisions("bf16-mixed,32") == ["bf16-mixed", "32"]
