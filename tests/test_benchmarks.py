"""The benchmark scripts' summaries (not their timings: tests never assert speed)."""

import torch

from benchmarks.ablation import table
from benchmarks.predict_vs_monai import convolution_seconds
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


def _row(variant: str, seed: int, machine: str, vrand: float, steps: int) -> dict:
    scores = dict.fromkeys(("vinfo", "components_vrand", "components_vinfo", "watershed_vrand", "watershed_vinfo"), 0.9)
    return {"variant": variant, "seed": seed, "machine": machine, "vrand": vrand, "steps": steps, **scores}


def test_ablation_table_keeps_each_machines_runs_apart():
    rows = [
        _row("time_budget", 1, "old CPU", 0.984, 1500),
        _row("time_budget", 2, "old CPU", 0.982, 1500),
        _row("time_budget", 1, "new CPU", 0.975, 4400),
        _row("full", 1, "new CPU", 0.980, 2700),
    ]
    empty, old, new = table(rows).split("### ")
    assert empty == "" and old.startswith("old CPU") and new.startswith("new CPU")
    # the old machine's two seeds are averaged together, never with the new machine's run of the same variant
    assert "| time_budget |" in old and "| 1500 | 0.9830 ± 0.0014 |" in old and "| full |" not in old
    assert "| 4400 | 0.9750 |" in new and "| 2700 | 0.9800 |" in new


def test_convolution_seconds_counts_only_the_networks_convolutions_and_removes_its_hooks():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.ConvTranspose2d(4, 1, 2, stride=2))
    calls = []
    net[0].register_forward_hook(lambda module, inputs, output: calls.append(output.shape))
    x = torch.randn(1, 1, 16, 16)
    total, inside = convolution_seconds(net, lambda: net(x), torch.device("cpu"))
    assert 0 < inside <= total
    assert calls == [torch.Size([1, 4, 14, 14])]  # the user's own hook still runs, once
    assert convolution_seconds(net, lambda: x.sum(), torch.device("cpu"))[1] == 0.0  # no convolution ran
    # Only the user's hook is left behind.
    assert len(net[0]._forward_hooks) == 1 and not net[0]._forward_pre_hooks and not net[2]._forward_hooks
